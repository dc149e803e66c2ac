"""runaway_for.st on a scan thread of its own: the executor started on the caller's thread (as
``plcrun run`` starts it before its scan thread runs), the FOR loop switched on, four scans asked for;
returns once the thread has ended (the backstop's tests, interpreted and native)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from plcrun.executor.clock import MonotonicClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.executor.watchdog import WatchdogConfig
from plcrun.state.program import CompiledProgram

from tests.executor.scripted_driver import ScriptedDriver

RUNAWAY_FOR = Path(__file__).parent / "programs" / "runaway_for.st"


@dataclass
class RunawayRun:
    executor: Executor
    driver: ScriptedDriver
    runner: threading.Thread
    outcome: list[object]  # what run() returned, or what it raised


def run_runaway_on_a_thread(program: CompiledProgram) -> RunawayRun:
    driver = ScriptedDriver("out", [], ["burn.p_set"])
    executor = Executor(
        program,
        clock=MonotonicClock(),
        drivers=[driver],
        config=ExecutorConfig(watchdog=WatchdogConfig(time_factor=2.0, overrun_limit=0)),
    )
    executor.start()  # here, on the caller's thread
    executor.journal.write("burn.go", True)
    outcome: list[object] = []

    def scan_thread() -> None:
        try:
            outcome.append(executor.run(max_scans=4))
        except BaseException as error:
            outcome.append(error)

    run = RunawayRun(executor, driver, threading.Thread(target=scan_thread, name="scans"), outcome)
    try:
        run.runner.start()
        # only a hang guard: the abort comes after 2 x 20 ms of the FOR loop (a native loop that never
        # entered the interpreter would hold the GIL for tens of seconds, and the monitor never ran)
        run.runner.join(60)
        assert not run.runner.is_alive()
    finally:
        executor.stop()
        executor.shutdown()
    return run
