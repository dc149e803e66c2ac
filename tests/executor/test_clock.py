"""Clocks: the virtual clock's rules and the real clock's sleep/spin logic (with a scripted time source)."""

from __future__ import annotations

import threading

import pytest
from plcrun.executor.clock import Clock, MonotonicClock, VirtualClock


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


def test_monotonic_real_sleep_reaches_its_deadline() -> None:
    clock = MonotonicClock(spin_ns=500_000)
    deadline = clock.now_ns() + 2_000_000
    assert clock.sleep_until(deadline) is True
    assert clock.now_ns() >= deadline


def test_negative_spin_is_rejected() -> None:
    with pytest.raises(ValueError, match="spin_ns"):
        MonotonicClock(spin_ns=-1)
