"""Child of test_backstop.py: one abort of the runaway backstop on a virtual clock, delivered in the
'body' (this thread, waiting in C while the monitor's poll runs on another), then ``leave_body`` as
the engine calls it; then one function call under ``sys.settrace``. Prints what happened as JSON.

Clearing the abort with ``PyThreadState_SetAsyncExc(id, NULL)`` (before e617853 / 6023540) left the
interpreter's "asynchronous exception pending" signal set for good: CPython 3.11 then checks it again
at the first instruction of every traced function and never gets past it, so the traced call below
never returns (the whole suite hung that way)."""

from __future__ import annotations

import json
import sys
import threading
from types import FrameType
from typing import Any

from plcrun.executor.watchdog import RunawayMonitor
from plcrun.state.support import ScanAborted


def main() -> None:
    monitor = RunawayMonitor({"t": 10}, lambda: 10**12)  # virtual time: any body is long overdue
    monitor.set_target(threading.get_ident())
    polled: list[bool] = []
    poller = threading.Thread(target=lambda: polled.append(monitor.poll()), name="monitor")
    aborted = False
    monitor.enter_body("t", 0)
    try:
        try:
            poller.start()
            poller.join()  # the abort is injected while this waits in C, delivered as it returns
        finally:
            monitor.leave_body()
    except ScanAborted:
        aborted = True

    calls: list[str] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    def traced() -> int:
        return 1

    sys.settrace(tracer)
    try:
        traced()
    finally:
        sys.settrace(None)
    print(json.dumps({"polled": polled, "aborted": aborted, "aborts": monitor.aborts, "calls": calls}))


if __name__ == "__main__":
    main()
