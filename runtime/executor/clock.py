"""Clocks of the executor: monotonic nanoseconds, real (``MonotonicClock``) or virtual (``VirtualClock``).

All timing in the executor goes through one clock object. ``MonotonicClock`` wakes up with the
strategy chosen by measurement on the target VMs: sleep in the kernel (clock_nanosleep) until
shortly before the deadline, then spin on the clock for the rest. The spin follows the measured
wake-up error: its p99, minus the lateness the site accepts (``wake_tolerance_ns``), within the
documented spin budget (``DEFAULT_SPIN_NS``, 1 ms: what a thread without SCHED_FIFO ends up
spinning, since the kernel wakes it 0.1-4 ms late). With a tolerance of 0 (the library default) it
spins the p99 plus a margin, for wake-ups of a few µs; ``plcrun run`` accepts
``PRODUCT_WAKE_TOLERANCE_NS`` (100 µs), which under SCHED_FIFO usually means no spin at all.
``VirtualClock`` only moves when someone sleeps or advances it, so timing behaviour is
reproducible in tests.

I/O worker threads take a ``WorkerTime`` (``now_ns``, a way to wait on their wake-up event and a
way to wait for a device's answer on a socket): ``REAL_TIME`` in production, ``ManualTime`` in
tests, which step virtual time and let the workers settle, so poll schedules, retries, backoff,
heartbeats and request timeouts are tested without wall-clock waits.
"""

from __future__ import annotations

import select
import socket
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
"""The spin budget: the most a wake-up spins (also the fixed spin of ``MonotonicClock(spin_ns=...)``).
Without SCHED_FIFO the kernel wakes a thread 0.5-4 ms late at p99 here, so the adaptive clock ends
up spinning this much; under SCHED_FIFO the measured error is tens of µs and it spins far less."""
MIN_SPIN_NS = 20_000
"""The least the precise mode (tolerance 0) spins, whatever the measured error."""
SPIN_MARGIN_NS = 30_000
"""Added to the measured p99 in the precise mode (tolerance 0)."""
PRODUCT_WAKE_TOLERANCE_NS = 100_000
"""``plcrun run``'s default lateness allowance (``--wake-tolerance-us``, ``[runtime]
wake_tolerance_us``): scans start within about 100 µs at p99 (the issue's bound is 200 µs) for
about 1 % of a core less than the precise mode (bench/README.md, "Waiting modes"). 150 µs was tried
(issue 17, sixth session): 0.2 % of a core less, but wake p99 160-194 µs, too near the 200 allowed."""
MAX_SLEEP_NS = 50_000_000
"""The longest single kernel sleep of ``MonotonicClock.sleep_until`` with a cancel event: how long a
stop may go unseen while the scan thread sleeps."""
MAX_WAIT_SETTING_NS = 5_000_000
"""The largest tolerance or spin budget a site may configure (half a 10 ms period)."""


class WakeErrorTracker:
    """How late the kernel wakes us, and so how long to spin.

    Keeps the last ``window`` oversleeps and every ``every`` samples takes their p99 (the 11th
    largest of the last 1,024, about 10 s at 10 ms): the p99 a run is judged by, which a burst of
    a few very late wake-ups (a stall of the VM) does not move. Shorter windows (128, 256) spun the
    whole budget for seconds after such a burst, for the same p99 (bench/README.md, "Waiting
    modes"). ``MonotonicClock`` works the spin out (``update``) in the slack before its next sleep,
    not between a wake-up and the scan it starts. Precise mode (``tolerance_ns`` 0): spin the p99 plus ``margin_ns``, at least
    ``min_ns``. With a tolerance: spin only what the p99 exceeds it by, ``max(0, p99 -
    tolerance_ns)``, no floor and no margin, so a tolerance that covers the kernel's error means no
    spin at all and the scan starts as late as the kernel wakes it. Both within ``max_ns`` (the spin
    budget); until the first ``every`` samples are in, the spin is the whole budget."""

    __slots__ = (
        "_count",
        "_index",
        "_samples",
        "due",
        "every",
        "margin_ns",
        "max_ns",
        "min_ns",
        "spin_ns",
        "tolerance_ns",
        "window",
    )

    def __init__(
        self,
        max_ns: int = DEFAULT_SPIN_NS,
        min_ns: int = MIN_SPIN_NS,
        margin_ns: int = SPIN_MARGIN_NS,
        window: int = 1024,
        every: int = 32,
        tolerance_ns: int = 0,
    ) -> None:
        if not 0 <= min_ns <= max_ns:
            raise ValueError(f"need 0 <= min_ns <= max_ns, got {min_ns}, {max_ns}")
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        self._samples: list[int] = []
        self._index = 0
        self._count = 0
        self.window = window
        self.every = every
        self.max_ns = max_ns
        self.min_ns = min_ns
        self.margin_ns = margin_ns
        self.tolerance_ns = tolerance_ns
        self.spin_ns = max_ns
        self.due = False  # the clock's: an update waits for the slack before the next sleep

    def record(self, oversleep_ns: int) -> None:
        """``add`` and, when due, ``update``: the spin for the next wake-up."""
        if self.add(oversleep_ns):
            self.update()

    def add(self, oversleep_ns: int) -> bool:
        """Keep one oversleep; True when the spin is due to be worked out again (``update``)."""
        samples = self._samples
        value = oversleep_ns if oversleep_ns > 0 else 0
        if len(samples) < self.window:
            samples.append(value)
        else:
            samples[self._index] = value
            self._index = (self._index + 1) % self.window
        self._count += 1
        return self._count % self.every == 0

    def update(self) -> None:
        """The spin from the p99 of the oversleeps kept."""
        samples = self._samples
        if samples:
            self.spin_ns = self.spin_for(sorted(samples)[-(len(samples) // 100 + 1)])

    def spin_for(self, p99_ns: int) -> int:
        """The spin for a measured p99 wake-up error."""
        if self.tolerance_ns:
            return min(self.max_ns, max(0, p99_ns - self.tolerance_ns))
        return min(self.max_ns, max(self.min_ns, p99_ns + self.margin_ns))


class MonotonicClock:
    """Real monotonic time (``time.perf_counter_ns``, CLOCK_MONOTONIC on Linux).

    ``sleep_until`` sleeps in the kernel (clock_nanosleep, in pieces of at most ``MAX_SLEEP_NS``
    with a look at the cancel event between them) until the spin before the deadline and then spins
    on the clock. With ``spin_ns`` the spin is fixed;
    without it (the default) it is measured: ``WakeErrorTracker`` keeps it at the p99 of how late
    the kernel actually wakes this thread, less ``wake_tolerance_ns`` (the lateness accepted; 0:
    plus a margin instead), within ``max_spin_ns`` (the documented spin budget). Spinning costs CPU
    per wake-up; it buys wake latencies of a few microseconds instead of the tens (SCHED_FIFO) to
    thousands (without) a plain sleep shows on a virtual machine. ``set_wait`` changes the mode
    before the run (``plcrun run``'s options).
    """

    def __init__(
        self,
        spin_ns: int | None = None,
        time_source: Callable[[], int] = time.perf_counter_ns,
        max_spin_ns: int = DEFAULT_SPIN_NS,
        sleep: Callable[[float], None] = time.sleep,
        wake_tolerance_ns: int = 0,
    ) -> None:
        if spin_ns is not None and spin_ns < 0:
            raise ValueError(f"spin_ns must be >= 0, got {spin_ns}")
        self.tracker: WakeErrorTracker | None = None
        self._fixed_spin_ns = spin_ns
        self._time = time_source
        # the time source itself, not a method calling it: a Python call costs ~1.5 µs with the
        # cold caches of a real-time period, and the scan thread reads the clock several times
        self.now_ns: Callable[[], int] = time_source
        self._sleep = sleep
        if spin_ns is None:
            self.set_wait(wake_tolerance_ns, max_spin_ns)

    def set_wait(self, wake_tolerance_ns: int, max_spin_ns: int = DEFAULT_SPIN_NS) -> None:
        """The adaptive spin with this tolerance and budget, measured afresh (call it before the
        run: the first wake-ups after it spin the whole budget)."""
        if max_spin_ns < 0:
            raise ValueError(f"the spin budget must be >= 0, got {max_spin_ns}")
        self.tracker = WakeErrorTracker(
            max_ns=max_spin_ns, min_ns=min(MIN_SPIN_NS, max_spin_ns), tolerance_ns=wake_tolerance_ns
        )
        self._fixed_spin_ns = None

    def describe(self) -> str:
        """The waiting mode in one phrase, for the start-up log."""
        tracker = self.tracker
        if tracker is None:
            return f"sleep, then a fixed spin of {self.spin_ns / 1e3:g} µs"
        budget = f"spin budget {tracker.max_ns / 1e3:g} µs"
        if tracker.tolerance_ns:
            return (
                f"sleep, then spin what the p99 of the kernel's wake-up error exceeds "
                f"{tracker.tolerance_ns / 1e3:g} µs by ({budget})"
            )
        return f"sleep, then spin the p99 of the kernel's wake-up error + {tracker.margin_ns / 1e3:g} µs ({budget})"

    @property
    def spin_ns(self) -> int:
        """The spin before a deadline now in use."""
        if self.tracker is not None:
            return self.tracker.spin_ns
        assert self._fixed_spin_ns is not None
        return self._fixed_spin_ns

    def sleep_until(self, deadline_ns: int, cancel: threading.Event | None = None) -> bool:
        if cancel is not None and cancel.is_set():
            return False
        now = self._time
        tracker = self.tracker
        if tracker is not None and tracker.due:  # here, in the slack after a scan, not before one
            tracker.due = False
            tracker.update()
        wake_at = deadline_ns - (tracker.spin_ns if tracker is not None else self.spin_ns)
        coarse_ns = wake_at - now()
        if coarse_ns > 0:
            # clock_nanosleep, not the cancel event's timed wait (a Condition and a new lock per
            # call: ~5 µs more CPU per wake-up here); a long wait goes in pieces, with a look at
            # the event between them, so a stop is seen within MAX_SLEEP_NS
            sleep = self._sleep
            while coarse_ns > MAX_SLEEP_NS:
                sleep(MAX_SLEEP_NS / 1e9)
                if cancel is not None and cancel.is_set():
                    return False
                coarse_ns = wake_at - now()
            if coarse_ns > 0:
                sleep(coarse_ns / 1e9)
            if cancel is not None and cancel.is_set():
                return False
            woke = now()
            if tracker is not None and tracker.add(woke - wake_at):
                tracker.due = True
            if woke >= deadline_ns:  # nothing left to spin (a tolerance that covers the error)
                return True
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

    def wait_readable(self, sock: socket.socket, timeout_s: float, stopping: threading.Event) -> bool:
        """Block until ``sock`` has data (or EOF) to read (True) or ``timeout_s`` passed (False):
        how a worker waits for a device's answer, so request timeouts run on this time too.
        ``stopping``: the worker is stopping (its last exchange, e.g. safe values, still waits)."""
        ...


class RealTime:
    """``time.monotonic_ns``, ``Event.wait`` and ``select``: what workers use in production."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def wait(self, wake: threading.Event, timeout_s: float) -> bool:
        return wake.wait(max(0.0, timeout_s))

    def wait_readable(self, sock: socket.socket, timeout_s: float, stopping: threading.Event) -> bool:
        return bool(select.select([sock], [], [], max(0.0, timeout_s))[0])


REAL_TIME = RealTime()


class ManualTime:
    """Virtual time for worker threads: it moves only when a test calls ``advance``. A worker's
    ``wait`` returns when its event is set or the virtual time reaches its deadline, and its
    ``wait_readable`` when the device's answer is there or the virtual time reaches the request's
    timeout; ``settle`` waits (in real time) until every worker is back waiting for a deadline
    still ahead with nothing to wake it, so a test can step time and then look at what the workers
    did. A peer that holds its answer makes a request time out exactly when the test says."""

    _POLL_S = 0.002  # how often a waiting worker looks at its event (Event.set does not notify us)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._cond = threading.Condition()
        # thread -> (deadline, what would wake it (its event set, its socket readable), an answer?)
        self._waiting: dict[int, tuple[int, Callable[[], bool], bool]] = {}
        self._waits = 0

    def now_ns(self) -> int:
        with self._cond:
            return self._now

    def wait(self, wake: threading.Event, timeout_s: float) -> bool:
        me = threading.get_ident()
        with self._cond:
            deadline = self._now + max(0, round(timeout_s * 1e9))
            self._waiting[me] = (deadline, wake.is_set, False)
            self._waits += 1
            self._cond.notify_all()
            try:
                while not wake.is_set() and self._now < deadline:
                    self._cond.wait(self._POLL_S)
            finally:
                del self._waiting[me]
                self._cond.notify_all()
        return wake.is_set()

    def wait_readable(self, sock: socket.socket, timeout_s: float, stopping: threading.Event) -> bool:
        """Until ``sock`` is readable or the virtual time reaches the deadline. Once ``stopping`` is
        set nobody steps the time any more: the rest of the timeout runs on the wall clock."""
        me = threading.get_ident()

        def readable() -> bool:
            return bool(select.select([sock], [], [], 0)[0])

        with self._cond:
            start = self._now
            deadline = start + max(0, round(timeout_s * 1e9))
            self._waiting[me] = (deadline, readable, True)
            self._waits += 1
            self._cond.notify_all()
        try:
            while True:
                if select.select([sock], [], [], self._POLL_S)[0]:
                    return True
                with self._cond:
                    if self._now >= deadline:
                        return False
                    left_s = (deadline - self._now) / 1e9
                if stopping.is_set():
                    return bool(select.select([sock], [], [], left_s)[0])
        finally:
            with self._cond:
                del self._waiting[me]
                self._cond.notify_all()

    @property
    def waits(self) -> int:
        """How many times workers waited so far (a worker that waited again has finished its step)."""
        with self._cond:
            return self._waits

    def advance(self, delta_ns: int) -> None:
        with self._cond:
            self._now += delta_ns
            self._cond.notify_all()

    def settle(self, workers: int = 1, timeout_s: float = 10.0, answers_held: bool = False) -> None:
        """Wait until ``workers`` threads wait for deadlines after now with nothing to wake them
        (raises TimeoutError). A worker waiting for a device's answer is busy (the answer is on
        its way: requests take no virtual time), unless ``answers_held``: the test's peer holds
        its answers, so time may pass and the request time out."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while not (
                len(self._waiting) >= workers
                and all(
                    d > self._now and not woken() and (answers_held or not answer)
                    for d, woken, answer in self._waiting.values()
                )
            ):
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"workers did not settle: {len(self._waiting)} waiting")
                self._cond.wait(min(left, self._POLL_S))

    def run_for(self, duration_ns: int, step_ns: int, workers: int = 1, answers_held: bool = False) -> None:
        """Advance ``duration_ns`` in steps of ``step_ns``, letting the workers settle after each."""
        self.settle(workers, answers_held=answers_held)
        for _ in range(duration_ns // step_ns):
            self.advance(step_ns)
            self.settle(workers, answers_held=answers_held)
