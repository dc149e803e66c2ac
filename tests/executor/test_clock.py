"""Clocks: the virtual clock's rules and the real clock's sleep/spin logic (with a scripted time source)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
from plcrun.executor.clock import (
    MAX_SLEEP_NS,
    REAL_TIME,
    Clock,
    ManualTime,
    MonotonicClock,
    VirtualClock,
    WakeErrorTracker,
)

MS = 1_000_000


class ScriptedTime:
    """A time source that moves ``step`` ns every time it is read."""

    def __init__(self, start: int, step: int) -> None:
        self.now = start
        self.step = step
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        self.now += self.step
        return self.now


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(start_ns=1_000)
    assert clock.now_ns() == 1_000
    assert clock.now_ns() == 1_000
    assert clock.sleep_until(5_000) is True
    assert clock.now_ns() == 5_000
    clock.sleep_until(2_000)  # in the past: no jump back
    assert clock.now_ns() == 5_000
    clock.advance(250)
    assert clock.now_ns() == 5_250
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_virtual_sleep_is_cancelled_by_a_set_event() -> None:
    clock = VirtualClock()
    cancel = threading.Event()
    assert clock.sleep_until(100, cancel) is True
    cancel.set()
    assert clock.sleep_until(200, cancel) is False
    assert clock.now_ns() == 100


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(VirtualClock(), Clock)
    assert isinstance(MonotonicClock(), Clock)


def test_monotonic_spin_never_returns_before_the_deadline() -> None:
    # spin_ns larger than the whole wait: no kernel sleep, the clock is only spun on.
    source = ScriptedTime(start=0, step=7)
    clock = MonotonicClock(spin_ns=10_000_000, time_source=source)
    assert clock.sleep_until(1_000) is True
    assert source.now >= 1_000
    # It stopped at the first read at or after the deadline, not later.
    assert source.now == 1_001  # 143 * 7


def test_monotonic_spin_is_cancelled() -> None:
    source = ScriptedTime(start=0, step=1)
    clock = MonotonicClock(spin_ns=10**12, time_source=source)
    cancel = threading.Event()
    cancel.set()
    assert clock.sleep_until(10**9, cancel) is False
    assert source.now < 100  # gave up at once instead of spinning to the deadline


def test_monotonic_coarse_sleep_is_cancelled_by_the_event() -> None:
    clock = MonotonicClock()
    cancel = threading.Event()
    cancel.set()
    # A deadline an hour away: only an honoured cancel lets this test finish.
    assert clock.sleep_until(clock.now_ns() + 3600 * 10**9, cancel) is False


def test_a_long_wait_sleeps_in_pieces_and_sees_a_stop_between_them() -> None:
    source = ScriptedTime(start=0, step=100)
    cancel = threading.Event()
    naps: list[int] = []
    stop_in_nap = [3]

    def sleep(seconds: float) -> None:
        naps.append(round(seconds * 1e9))
        source.now += round(seconds * 1e9)
        if len(naps) == stop_in_nap[0]:
            cancel.set()  # a stop (signal handler or another thread) during this piece

    clock = MonotonicClock(spin_ns=0, time_source=source, sleep=sleep)
    assert clock.sleep_until(3600 * 10**9, cancel) is False
    assert naps == [MAX_SLEEP_NS] * 3  # seen at the end of that piece, not an hour later
    naps.clear()
    cancel.clear()
    stop_in_nap[0] = 0
    deadline = source.now + 120 * MS
    assert clock.sleep_until(deadline, cancel) is True
    assert len(naps) == 3 and naps[:2] == [MAX_SLEEP_NS] * 2 and sum(naps) < 120 * MS
    assert deadline <= source.now <= deadline + 100  # the last piece ends at the deadline
    naps.clear()
    reads = source.reads
    assert clock.sleep_until(source.now + 9 * MS, cancel) is True  # a 10 ms task's wait: one sleep
    assert len(naps) == 1 and source.reads - reads == 2  # a read before and after, no spin


def test_monotonic_real_sleep_reaches_its_deadline() -> None:
    clock = MonotonicClock(spin_ns=500_000)
    deadline = clock.now_ns() + 2_000_000
    assert clock.sleep_until(deadline) is True
    assert clock.now_ns() >= deadline


def test_negative_spin_is_rejected() -> None:
    with pytest.raises(ValueError, match="spin_ns"):
        MonotonicClock(spin_ns=-1)


def test_wake_error_tracker_starts_at_the_budget_and_follows_the_p99() -> None:
    tracker = WakeErrorTracker(max_ns=1_000_000, min_ns=20_000, margin_ns=30_000, window=256, every=32)
    assert tracker.spin_ns == 1_000_000  # nothing measured yet: the whole budget
    for _ in range(31):
        tracker.record(50_000)
    assert tracker.spin_ns == 1_000_000
    tracker.record(60_000)
    assert tracker.spin_ns == 90_000  # 32 samples: their largest + margin
    for _ in range(256):
        tracker.record(50_000)
    assert tracker.spin_ns == 80_000  # p99 of the window (all ~50 µs) + margin
    # Two late wake-ups in 256 are under the p99 (3rd largest): the spin stays.
    tracker.record(900_000)
    tracker.record(900_000)
    for _ in range(30):
        tracker.record(50_000)
    assert tracker.spin_ns == 80_000
    # A kernel that wakes late often raises it, clamped to the budget.
    for _ in range(64):
        tracker.record(5_000_000)
    assert tracker.spin_ns == 1_000_000
    # Early or exact wake-ups never take it below the floor.
    for _ in range(256):
        tracker.record(-10)
    assert tracker.spin_ns == 30_000  # 0 + margin
    floor = WakeErrorTracker(max_ns=1_000_000, min_ns=20_000, margin_ns=0, window=64, every=64)
    for _ in range(64):
        floor.record(1_000)
    assert floor.spin_ns == 20_000


def test_wake_error_tracker_rejects_a_floor_above_the_budget() -> None:
    with pytest.raises(ValueError, match="min_ns"):
        WakeErrorTracker(max_ns=10, min_ns=20)


def test_adaptive_clock_spins_as_long_as_the_kernel_oversleeps() -> None:
    # A kernel that wakes the thread 70 µs late: the clock measures it and spins 70 + 30 µs.
    source = ScriptedTime(start=0, step=100)

    def late_sleep(seconds: float) -> None:
        source.now += round(seconds * 1e9) + 70_000

    clock = MonotonicClock(time_source=source, sleep=late_sleep, max_spin_ns=1_000_000)
    assert clock.tracker is not None and clock.spin_ns == 1_000_000  # the budget until measured
    deadline = 0
    lateness = []
    for _ in range(256):
        deadline += 10_000_000
        assert clock.sleep_until(deadline) is True
        lateness.append(source.now - deadline)
    assert clock.spin_ns == 100_100  # 70 µs late + one clock read + 30 µs margin
    assert max(lateness) <= 100  # spun up to the deadline: the first read at or after it
    # Spinning costs what the error needs: now 100 µs before the deadline, not 1 ms.
    reads = source.reads
    deadline += 10_000_000
    clock.sleep_until(deadline)
    assert (source.reads - reads) * 100 < 40_000


def test_with_a_tolerance_the_spin_is_what_the_p99_exceeds_it_by_without_floor_or_margin() -> None:
    tracker = WakeErrorTracker(max_ns=1_000_000, tolerance_ns=100_000, window=256, every=32)
    assert tracker.spin_ns == 1_000_000  # nothing measured yet: the whole budget
    for _ in range(256):
        tracker.record(60_000)  # SCHED_FIFO on a quiet VM: the tolerance covers the error
    assert tracker.spin_ns == 0  # no 20 µs floor, no margin: a plain clock_nanosleep
    for _ in range(256):
        tracker.record(250_000)  # a kernel that wakes 250 µs late
    assert tracker.spin_ns == 150_000  # spin only the part beyond the 100 µs accepted
    for _ in range(254):
        tracker.record(10_000)
    tracker.record(3_000_000)
    tracker.record(3_000_000)
    assert tracker.spin_ns == 0  # two 3 ms outliers in 256 are above the p99 (the 3rd largest)
    for _ in range(256):
        tracker.record(4_000_000)  # no SCHED_FIFO, a loaded VM: the budget caps it
    assert tracker.spin_ns == 1_000_000
    assert tracker.spin_for(100_000) == 0 and tracker.spin_for(100_001) == 1
    precise = WakeErrorTracker(max_ns=1_000_000, min_ns=20_000, margin_ns=30_000)
    assert precise.spin_for(0) == 30_000 and precise.spin_for(60_000) == 90_000


def test_the_default_window_spins_for_a_lasting_error_not_for_a_burst_of_stalls() -> None:
    # 10 s of 70 µs wake-ups (the tolerance covers them), then a stall of the VM: three wake-ups
    # 1.5 ms late. The p99 of the last 1,024 (the 11th largest) does not move: no spin.
    tracker = WakeErrorTracker(max_ns=1_000_000, tolerance_ns=100_000)
    for _ in range(1024):
        tracker.record(70_000)
    assert tracker.spin_ns == 0
    for _ in range(3):
        tracker.record(1_500_000)
    for _ in range(29):
        tracker.record(70_000)
    assert tracker.spin_ns == 0
    # twelve more within the window: more than 1 % of the last 10 s were late, the budget is spun
    for _ in range(12):
        tracker.record(1_500_000)
    for _ in range(20):
        tracker.record(70_000)
    assert tracker.spin_ns == 1_000_000
    # ... until they have left the window
    for _ in range(1024):
        tracker.record(70_000)
    assert tracker.spin_ns == 0


def test_the_clock_works_the_spin_out_before_its_next_sleep_not_after_a_wake_up() -> None:
    source = ScriptedTime(start=0, step=100)
    clock = MonotonicClock(time_source=source, sleep=late_kernel(source, 250_000), wake_tolerance_ns=100_000)
    tracker = clock.tracker
    assert tracker is not None
    run_against_a_late_kernel(clock, source, tracker.every)
    assert tracker.due and clock.spin_ns == 1_000_000  # measured, not yet worked out: the budget
    run_against_a_late_kernel(clock, source, 1)  # that sleep works it out first, then waits
    assert not tracker.due and clock.spin_ns == 150_100  # the error (250 µs and a read) less 100 µs
    plain = WakeErrorTracker(max_ns=1_000_000, tolerance_ns=100_000)
    for _ in range(plain.every):
        plain.record(250_000)
    assert plain.spin_ns == 150_000  # record() alone: the same spin at once


def test_a_tolerance_below_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance_ns"):
        WakeErrorTracker(tolerance_ns=-1)
    with pytest.raises(ValueError, match="tolerance_ns"):
        MonotonicClock(wake_tolerance_ns=-1)
    with pytest.raises(ValueError, match="spin budget"):
        MonotonicClock().set_wait(0, -1)


def run_against_a_late_kernel(clock: MonotonicClock, source: ScriptedTime, wakes: int) -> list[int]:
    lateness = []
    deadline = source.now
    for _ in range(wakes):
        deadline += 10_000_000
        assert clock.sleep_until(deadline) is True
        lateness.append(source.now - deadline)
    return lateness


def late_kernel(source: ScriptedTime, late_ns: int) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        source.now += round(seconds * 1e9) + late_ns

    return sleep


def test_a_tolerance_that_covers_the_kernel_error_sleeps_to_the_deadline_without_spinning() -> None:
    source = ScriptedTime(start=0, step=100)
    clock = MonotonicClock(time_source=source, sleep=late_kernel(source, 70_000), wake_tolerance_ns=100_000)
    run_against_a_late_kernel(clock, source, 64)
    assert clock.spin_ns == 0
    reads = source.reads
    lateness = run_against_a_late_kernel(clock, source, 10)
    assert lateness == [70_100] * 10  # the kernel's 70 µs and the read after it: within the 100 µs
    assert source.reads - reads == 20  # per wake-up: one read before the sleep, one after, no spin


def test_a_tolerance_below_the_kernel_error_spins_the_rest() -> None:
    source = ScriptedTime(start=0, step=100)
    clock = MonotonicClock(time_source=source, sleep=late_kernel(source, 300_000), wake_tolerance_ns=100_000)
    run_against_a_late_kernel(clock, source, 64)
    assert clock.spin_ns == 200_100  # 300 µs late + one read, less the 100 µs accepted
    lateness = run_against_a_late_kernel(clock, source, 10)
    assert all(99_000 <= late <= 100_100 for late in lateness)  # late by the tolerance, not more


def test_set_wait_switches_a_fixed_spin_to_the_measured_one_and_describes_it() -> None:
    clock = MonotonicClock(spin_ns=300_000)
    assert "fixed spin of 300 µs" in clock.describe()
    clock.set_wait(150_000, 500_000)
    assert clock.tracker is not None and clock.spin_ns == 500_000  # the budget until measured
    assert clock.tracker.tolerance_ns == 150_000
    assert "exceeds 150 µs" in clock.describe() and "budget 500 µs" in clock.describe()
    clock.set_wait(0, 10_000)  # a budget below the precise mode's floor: the floor follows it
    assert clock.tracker is not None and clock.tracker.min_ns == 10_000
    assert "+ 30 µs" in MonotonicClock().describe()


def test_fixed_spin_has_no_tracker() -> None:
    clock = MonotonicClock(spin_ns=300_000)
    assert clock.tracker is None and clock.spin_ns == 300_000


def test_manual_time_times_out_a_request_only_when_the_test_steps_past_its_timeout() -> None:
    time = ManualTime()
    ours, peer = socket.socketpair()
    stopping = threading.Event()
    results: list[tuple[bool, int]] = []

    def request() -> None:
        results.append((time.wait_readable(ours, 0.15, stopping), time.now_ns()))

    try:
        worker = threading.Thread(target=request)
        worker.start()
        with pytest.raises(TimeoutError):  # a request in flight is busy: its answer is on the way
            time.settle(timeout_s=0.05)
        time.run_for(140 * MS, 10 * MS, answers_held=True)  # the peer holds it: time may pass
        assert results == []
        time.advance(10 * MS)
        worker.join(5)
        assert results == [(False, 150 * MS)]  # timed out exactly at 150 ms of virtual time

        results.clear()
        worker = threading.Thread(target=request)
        worker.start()
        time.settle(answers_held=True)
        peer.send(b"x")  # the answer arrives: no virtual time passes
        worker.join(5)
        assert results == [(True, 150 * MS)]
    finally:
        ours.close()
        peer.close()


def test_real_time_waits_for_a_readable_socket() -> None:
    ours, peer = socket.socketpair()
    try:
        assert not REAL_TIME.wait_readable(ours, 0.0, threading.Event())
        peer.send(b"x")
        assert REAL_TIME.wait_readable(ours, 1.0, threading.Event())
    finally:
        ours.close()
        peer.close()
