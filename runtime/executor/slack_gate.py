"""Keeps Python work of other threads (dashboard, SCADA server) out of the scan thread's way.

Python runs one thread at a time (the GIL). A dashboard thread that is busy when the scan thread
wakes up for its next release delays the scan by up to the GIL switch interval (0.5-5 ms), and one
that asks for the GIL during a scan stretches the scan. Measured with 4 polling pages and no gate
(bench/dashboard_load.py): wake-latency p99 went from a few µs to about 0.9 ms.

``SlackGate`` lets dashboard threads run in the slack after a scan instead. The scheduler calls
its idle hook on the scan thread after each scan that leaves slack; the hook records until when
nothing is due (the next release minus a margin for the clock's spin-wait) and wakes the waiting
threads. A dashboard thread enters the gate before its work: at once if enough quiet time is left,
otherwise at the next hook call. One thread works at a time. When no scan has happened for a
while (executor stopped, or overloaded without slack) or in virtual time, the gate stays open.

One gate serves an executor (``Executor.slack_gate()``), shared by the dashboard and the SCADA server,
so their threads also take turns among themselves. An asyncio loop uses it through
``threads.GatedSelector``: the loop holds the gate while it runs callbacks and leaves it while it
waits in ``select``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from .clock import Clock


class _IdleHooks(Protocol):
    def add_idle_hook(self, hook: Callable[[int, int], None]) -> None: ...


class GatedExecutor(Protocol):
    """What the gate needs of ``engine.Executor`` (which makes its gate: ``Executor.slack_gate()``)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def virtual(self) -> bool: ...

    @property
    def scheduler(self) -> _IdleHooks: ...


MARGIN_NS = 1_500_000  # the clock spins for the last 1 ms before a release; keep clear of it
MIN_SLOT_NS = 1_000_000  # enter only with at least this much quiet time left
STALE_NS = 50_000_000  # no idle-hook call for this long: the executor is stopped or has no slack
MAX_WAIT_S = 0.1  # never hold a request back longer than this


class SlackGate:
    def __init__(self, executor: GatedExecutor) -> None:
        self._clock = executor.clock
        self.enabled = not executor.virtual
        self._changed = threading.Condition(threading.Lock())
        self._work = threading.Lock()
        self._quiet_until_ns = 0
        self._last_hook_ns: int | None = None
        self.waits = 0  # entries that had to wait for a slack window (for the bench and tests)
        self._waiting = 0  # threads waiting for a window now (under _changed)
        executor.scheduler.add_idle_hook(self._after_scan)

    def _after_scan(self, now_ns: int, slack_ns: int) -> None:
        """Scan thread, after a scan with slack: open a window until shortly before the next release.
        The lock and the notification only when a thread waits (most periods nobody does): a waiter
        counts itself before it looks at the window, and the window is written before the count is
        read, so a waiter either sees the new window or is notified."""
        self._quiet_until_ns = now_ns + slack_ns - MARGIN_NS
        self._last_hook_ns = now_ns
        if self._waiting:
            with self._changed:
                self._changed.notify_all()

    def _open_now(self) -> bool:
        now = self._clock.now_ns()
        last = self._last_hook_ns
        if last is None or now - last > STALE_NS:
            return True
        return self._quiet_until_ns - now >= MIN_SLOT_NS

    def enter(self) -> None:
        """Block until this thread may do its work (one thread at a time); pair with ``leave``."""
        self._work.acquire()
        if not self.enabled or self._open_now():
            return
        self.waits += 1
        with self._changed:
            self._waiting += 1
            try:
                self._changed.wait_for(self._open_now, timeout=MAX_WAIT_S)
            finally:
                self._waiting -= 1

    def leave(self) -> None:
        self._work.release()
