"""Clocks of the executor: monotonic nanoseconds, real (``MonotonicClock``) or virtual (``VirtualClock``).

All timing in the executor goes through one clock object. ``MonotonicClock`` wakes up with the
strategy chosen by measurement on the target VMs: sleep until about 1 ms before the deadline (the
kernel wakes a sleeping thread 0.1-4 ms late), then spin on the clock for the rest. ``VirtualClock``
only moves when someone sleeps or advances it, so timing behaviour is reproducible in tests.

I/O worker threads take a ``WorkerTime`` (``now_ns`` and a way to wait on their wake-up event):
``REAL_TIME`` in production, ``ManualTime`` in tests, which step virtual time and let the workers
settle, so poll schedules, retries, backoff and heartbeats are tested without wall-clock waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Monotonic nanoseconds plus an absolute-deadline sleep.

    ``sleep_until`` returns True when the deadline was reached and False when ``cancel`` was set
    before that (the caller then re-checks why it was woken).
    """

    def now_ns(self) -> int: ...

    def sleep_until(self, deadline_ns: int, cancel: threading.Event | None = None) -> bool: ...


DEFAULT_SPIN_NS = 1_000_000


class MonotonicClock:
    """Real monotonic time (``time.perf_counter_ns``, CLOCK_MONOTONIC on Linux).

    ``sleep_until`` sleeps in the kernel until ``spin_ns`` before the deadline and then spins on
    the clock. Spinning costs up to ``spin_ns`` of CPU per wake-up, which buys wake latencies of tens
    of microseconds instead of the 0.1-4 ms a plain sleep shows on a virtual machine.
    """

    def __init__(
        self, spin_ns: int = DEFAULT_SPIN_NS, time_source: Callable[[], int] = time.perf_counter_ns
    ) -> None:
        if spin_ns < 0:
            raise ValueError(f"spin_ns must be >= 0, got {spin_ns}")
        self.spin_ns = spin_ns
        self._time = time_source

    def now_ns(self) -> int:
        return self._time()

    def sleep_until(self, deadline_ns: int, cancel: threading.Event | None = None) -> bool:
        now = self._time
        coarse_ns = deadline_ns - self.spin_ns - now()
        if coarse_ns > 0:
            if cancel is None:
                time.sleep(coarse_ns / 1e9)
            elif cancel.wait(coarse_ns / 1e9):
                return False
        if cancel is None:
            while now() < deadline_ns:
                pass
            return True
        is_set = cancel.is_set
        while now() < deadline_ns:
            if is_set():
                return False
        return True


class VirtualClock:
    """Deterministic time: ``now_ns`` changes only in ``sleep_until`` and ``advance``.

    Sleeping never blocks; it jumps the clock forward to the deadline (never backwards).
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def sleep_until(self, deadline_ns: int, cancel: threading.Event | None = None) -> bool:
        if cancel is not None and cancel.is_set():
            return False
        if deadline_ns > self._now:
            self._now = deadline_ns
        return True

    def advance(self, delta_ns: int) -> None:
        """Let ``delta_ns`` of virtual time pass (e.g. the modelled cost of a scan)."""
        if delta_ns < 0:
            raise ValueError(f"virtual time cannot go backwards (advance by {delta_ns} ns)")
        self._now += delta_ns


class WorkerTime(Protocol):
    """The time of an I/O worker thread (simple-pid's injected ``time_fn`` is the model): what the
    worker reads to schedule polls, retries, backoff and heartbeats, and how it waits."""

    def now_ns(self) -> int: ...

    def wait(self, wake: threading.Event, timeout_s: float) -> bool:
        """Block until ``wake`` is set (True) or ``timeout_s`` passed (False)."""
        ...


class RealTime:
    """``time.monotonic_ns`` and ``Event.wait``: what workers use in production."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def wait(self, wake: threading.Event, timeout_s: float) -> bool:
        return wake.wait(max(0.0, timeout_s))


REAL_TIME = RealTime()


class ManualTime:
    """Virtual time for worker threads: it moves only when a test calls ``advance``. A worker's
    ``wait`` returns when its event is set or the virtual time reaches its deadline; ``settle``
    waits (in real time) until every worker is back waiting for a deadline still ahead, so a test
    can step time and then look at what the workers did."""

    _POLL_S = 0.002  # how often a waiting worker looks at its event (Event.set does not notify us)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._cond = threading.Condition()
        self._waiting: dict[int, tuple[int, threading.Event]] = {}  # thread -> (deadline, its event)
        self._waits = 0

    def now_ns(self) -> int:
        with self._cond:
            return self._now

    def wait(self, wake: threading.Event, timeout_s: float) -> bool:
        me = threading.get_ident()
        with self._cond:
            deadline = self._now + max(0, round(timeout_s * 1e9))
            self._waiting[me] = (deadline, wake)
            self._waits += 1
            self._cond.notify_all()
            try:
                while not wake.is_set() and self._now < deadline:
                    self._cond.wait(self._POLL_S)
            finally:
                del self._waiting[me]
                self._cond.notify_all()
        return wake.is_set()

    @property
    def waits(self) -> int:
        """How many times workers waited so far (a worker that waited again has finished its step)."""
        with self._cond:
            return self._waits

    def advance(self, delta_ns: int) -> None:
        with self._cond:
            self._now += delta_ns
            self._cond.notify_all()

    def settle(self, workers: int = 1, timeout_s: float = 10.0) -> None:
        """Wait until ``workers`` threads wait for deadlines after now with nothing to wake them
        (raises TimeoutError)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while not (
                len(self._waiting) >= workers
                and all(d > self._now and not e.is_set() for d, e in self._waiting.values())
            ):
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"workers did not settle: {len(self._waiting)} waiting")
                self._cond.wait(min(left, self._POLL_S))

    def run_for(self, duration_ns: int, step_ns: int, workers: int = 1) -> None:
        """Advance ``duration_ns`` in steps of ``step_ns``, letting the workers settle after each."""
        self.settle(workers)
        for _ in range(duration_ns // step_ns):
            self.advance(step_ns)
            self.settle(workers)
