"""Clocks of the executor: monotonic nanoseconds, real (``MonotonicClock``) or virtual (``VirtualClock``).

All timing in the executor goes through one clock object. ``MonotonicClock`` wakes up with the
strategy chosen by measurement on the target VMs: sleep until about 1 ms before the deadline (the
kernel wakes a sleeping thread 0.1-4 ms late), then spin on the clock for the rest. ``VirtualClock``
only moves when someone sleeps or advances it, so timing behaviour is reproducible in tests.
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
