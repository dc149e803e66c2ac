"""Scheduler behaviour in virtual time: deadlines, skips, overruns, priorities, idle hooks, stopping."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from plcrun.executor.clock import MonotonicClock, VirtualClock
from plcrun.executor.scheduler import ScanRecord, Scheduler, StopReason

MS = 1_000_000


class ScanLog:
    """Collects (task, start, deadline) of every scan."""

    def __init__(self) -> None:
        self.scans: list[tuple[str, int, int]] = []

    def task(self, name: str) -> Callable[[int, int], None]:
        def run_scan(start_ns: int, deadline_ns: int) -> None:
            self.scans.append((name, start_ns, deadline_ns))

        return run_scan

    def starts(self, name: str) -> list[int]:
        return [start for task, start, _ in self.scans if task == name]


def costs(table: dict[int, int], default: int) -> Callable[[str, int], int]:
    return lambda _task, index: table.get(index, default)


def test_scans_start_exactly_on_absolute_deadlines() -> None:
    clock = VirtualClock(start_ns=3_200_000)
    log = ScanLog()
    scheduler = Scheduler(clock, cost_model=costs({}, 1 * MS))
    scheduler.add_task("main", 10 * MS, log.task("main"))
    assert scheduler.run(until_ns=104 * MS) is StopReason.UNTIL
    # Epoch: next whole millisecond after 3.2 ms, plus the 0.5 ms phase offset.
    assert scheduler.epoch_ns == 4_500_000
    expected = [4_500_000 + k * 10 * MS for k in range(10)]
    assert log.starts("main") == expected
    assert [deadline for _, _, deadline in log.scans] == expected
    stats = scheduler.stats.task("main")
    assert (stats.scans, stats.overruns, stats.skipped_periods) == (10, 0, 0)
    assert stats.wake_latency.max == 0
    assert stats.period.min == stats.period.max == 10 * MS
    assert clock.now_ns() == 104 * MS


def test_a_slow_scan_skips_the_missed_periods_without_a_burst() -> None:
    clock = VirtualClock()
    log = ScanLog()
    # Scan #2 (released at 20 ms) takes 35 ms and ends at 55 ms.
    scheduler = Scheduler(clock, cost_model=costs({2: 35 * MS}, 1 * MS), phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, log.task("main"))
    scheduler.run(until_ns=100 * MS)
    # Releases 30 and 40 are skipped; the scan at 55 ms serves release 50 (5 ms late); no catch-up.
    assert log.starts("main") == [0, 10 * MS, 20 * MS, 55 * MS, 60 * MS, 70 * MS, 80 * MS, 90 * MS]
    assert [d for _, _, d in log.scans][3] == 50 * MS
    stats = scheduler.stats.task("main")
    assert stats.skipped_periods == 2
    assert stats.overruns == 1
    assert stats.wake_latency.max == 5 * MS
    assert stats.last_overrun_start_ns == 20 * MS


def test_skips_accumulate_over_several_slow_scans() -> None:
    clock = VirtualClock()
    # Every 5th scan takes 3.5 periods: skips 2 each time (the scan after it starts 5 ms late).
    scheduler = Scheduler(
        clock, cost_model=lambda _t, i: 35 * MS if i % 5 == 4 else 2 * MS, phase_offset_ns=0
    )
    scheduler.add_task("main", 10 * MS, lambda _s, _d: None)
    scheduler.run(max_scans=50)
    stats = scheduler.stats.task("main")
    assert stats.overruns == 10
    # Skips are counted when the scan after them starts: the last overrun's 2 are still pending.
    assert stats.skipped_periods == 18
    scheduler.run(max_scans=1)
    assert stats.skipped_periods == 20
    assert stats.scans == 51


def test_overrun_means_ending_strictly_after_the_next_release() -> None:
    clock = VirtualClock()
    table = {1: 10 * MS, 3: 10 * MS + 1}
    scheduler = Scheduler(clock, cost_model=costs(table, 3 * MS), phase_offset_ns=0)
    records: list[ScanRecord] = []
    scheduler.add_scan_observer(records.append)
    scheduler.add_task("main", 10 * MS, lambda _s, _d: None)
    scheduler.run(max_scans=6)
    assert [r.overrun for r in records] == [False, False, False, True, False, False]
    # Ending exactly on the next release is on time: the next scan starts with zero latency.
    assert records[2].start_ns == records[2].deadline_ns
    # One ns late: not a skip, one ns of wake latency.
    assert records[4].start_ns - records[4].deadline_ns == 1
    assert records[4].skipped == 0
    assert scheduler.stats.task("main").overruns == 1


def test_higher_priority_runs_first_when_both_are_due() -> None:
    clock = VirtualClock()
    log = ScanLog()
    scheduler = Scheduler(clock, cost_model=costs({}, 2 * MS), phase_offset_ns=0)
    # Added first but lower priority (larger number).
    scheduler.add_task("slow", 20 * MS, log.task("slow"), priority=5)
    scheduler.add_task("fast", 10 * MS, log.task("fast"), priority=0)
    scheduler.run(until_ns=40 * MS)
    assert log.scans == [
        ("fast", 0, 0),
        ("slow", 2 * MS, 0),
        ("fast", 10 * MS, 10 * MS),
        ("fast", 20 * MS, 20 * MS),
        ("slow", 22 * MS, 20 * MS),
        ("fast", 30 * MS, 30 * MS),
    ]
    assert scheduler.stats.task("slow").wake_latency.max == 2 * MS
    assert scheduler.stats.task("fast").wake_latency.max == 0


def test_scans_are_not_preempted_a_due_high_priority_task_waits() -> None:
    clock = VirtualClock()
    log = ScanLog()
    # The low-priority scan takes 7 ms; the high-priority task released at 5 ms waits for it.
    scheduler = Scheduler(
        clock, cost_model=lambda task, _i: 7 * MS if task == "low" else 1 * MS, phase_offset_ns=0
    )
    scheduler.add_task("low", 20 * MS, log.task("low"), priority=3)
    scheduler.add_task("high", 10 * MS, log.task("high"), priority=1, offset_ns=5 * MS)
    scheduler.run(until_ns=20 * MS)
    assert log.scans == [("low", 0, 0), ("high", 7 * MS, 5 * MS), ("high", 15 * MS, 15 * MS)]
    assert scheduler.stats.task("high").wake_latency.max == 2 * MS


def test_equal_priorities_go_by_release_then_by_order_added() -> None:
    clock = VirtualClock()
    log = ScanLog()
    scheduler = Scheduler(clock, cost_model=costs({}, 4 * MS), phase_offset_ns=0)
    scheduler.add_task("a", 10 * MS, log.task("a"), priority=2, offset_ns=1 * MS)
    scheduler.add_task("b", 10 * MS, log.task("b"), priority=2)
    scheduler.add_task("c", 10 * MS, log.task("c"), priority=2)
    scheduler.run(max_scans=3)
    # At 0 b and c are due (b first: added earlier); at 4 ms c (released at 0) beats a (released at 1 ms).
    assert [(n, s) for n, s, _ in log.scans] == [("b", 0), ("c", 4 * MS), ("a", 8 * MS)]


def test_low_priority_task_starved_by_a_busy_high_priority_task_counts_skips() -> None:
    clock = VirtualClock()
    log = ScanLog()
    scheduler = Scheduler(
        clock, cost_model=lambda task, _i: 9 * MS if task == "high" else 1 * MS, phase_offset_ns=0
    )
    scheduler.add_task("high", 10 * MS, log.task("high"), priority=0)
    scheduler.add_task("low", 5 * MS, log.task("low"), priority=1)
    scheduler.run(until_ns=30 * MS)
    # low is released every 5 ms but only gets the 1 ms gap after each high scan.
    assert log.starts("low") == [9 * MS, 19 * MS, 29 * MS]
    # At 9 ms releases 0 and 5 have passed: 0 is skipped, the scan serves 5 (4 ms late).
    assert [d for n, _, d in log.scans if n == "low"] == [5 * MS, 15 * MS, 25 * MS]
    low = scheduler.stats.task("low")
    assert low.skipped_periods == 3
    assert low.wake_latency.min == low.wake_latency.max == 4 * MS
    # Each ends at 10/20/30 ms, exactly its next release: late, but not an overrun.
    assert low.overruns == 0


def test_until_is_exclusive_and_a_second_run_continues_the_schedule() -> None:
    clock = VirtualClock()
    log = ScanLog()
    scheduler = Scheduler(clock, phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, log.task("main"))
    scheduler.run(until_ns=30 * MS)
    assert log.starts("main") == [0, 10 * MS, 20 * MS]
    assert clock.now_ns() == 30 * MS
    scheduler.run(until_ns=50 * MS)
    assert log.starts("main") == [0, 10 * MS, 20 * MS, 30 * MS, 40 * MS]
    assert scheduler.stats.task("main").skipped_periods == 0


def test_max_scans_and_stop_event() -> None:
    clock = VirtualClock()
    stop = threading.Event()
    count = 0

    def run_scan(_start: int, _deadline: int) -> None:
        nonlocal count
        count += 1
        if count == 4:
            stop.set()

    scheduler = Scheduler(clock, phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, run_scan)
    assert scheduler.run(max_scans=2) is StopReason.MAX_SCANS
    assert count == 2
    assert scheduler.run(stop_event=stop) is StopReason.STOPPED
    assert count == 4


def test_restart_schedule_does_not_count_the_pause_as_skips() -> None:
    clock = VirtualClock()
    scheduler = Scheduler(clock, phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, lambda _s, _d: None)
    scheduler.run(max_scans=3)
    clock.advance(1_000 * MS + 123)  # e.g. the executor was stopped for a second
    scheduler.restart_schedule()
    scheduler.run(max_scans=2)
    stats = scheduler.stats.task("main")
    assert stats.skipped_periods == 0
    assert stats.wake_latency.max == 0
    assert stats.period.max == 10 * MS  # no period sample spans the pause
    assert scheduler.epoch_ns == 1_021 * MS


def test_idle_hook_runs_only_with_enough_slack() -> None:
    clock = VirtualClock()
    calls: list[tuple[int, int]] = []
    # Threshold 30 % of 10 ms = 3 ms. Scan costs alternate 1 ms (slack 9 ms) and 8 ms (slack 2 ms).
    scheduler = Scheduler(clock, cost_model=lambda _t, i: 8 * MS if i % 2 else 1 * MS, phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, lambda _s, _d: None)
    scheduler.add_idle_hook(lambda now, slack: calls.append((now, slack)))
    scheduler.run(max_scans=4)
    assert scheduler.idle_threshold_ns == 3 * MS
    assert calls == [(1 * MS, 9 * MS), (21 * MS, 9 * MS)]


def test_idle_hook_sees_the_next_release_of_any_task() -> None:
    clock = VirtualClock()
    calls: list[int] = []
    scheduler = Scheduler(clock, cost_model=costs({}, 1 * MS), phase_offset_ns=0, idle_threshold_fraction=0.1)
    scheduler.add_task("a", 10 * MS, lambda _s, _d: None)
    scheduler.add_task("b", 50 * MS, lambda _s, _d: None, offset_ns=3 * MS)
    scheduler.add_idle_hook(lambda _now, slack: calls.append(slack))
    scheduler.run(max_scans=2)
    # After a (ends 1 ms) b is due at 3 ms: slack 2 ms > 1 ms threshold; after b (ends 4 ms): 6 ms.
    assert calls == [2 * MS, 6 * MS]


def test_a_failing_scan_propagates_and_the_schedule_continues() -> None:
    clock = VirtualClock()
    fail = [True]

    def run_scan(_start: int, _deadline: int) -> None:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("division by zero in main")

    scheduler = Scheduler(clock, phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, run_scan)
    with pytest.raises(RuntimeError, match="division by zero"):
        scheduler.run(max_scans=5)
    assert scheduler.current_scan() is None
    scheduler.run(max_scans=2)
    assert clock.now_ns() == 20 * MS  # the failed scan's release (0) was consumed
    assert scheduler.stats.task("main").scans == 2


def test_current_scan_is_visible_during_a_scan() -> None:
    clock = VirtualClock(start_ns=7)
    seen: list[tuple[str, int] | None] = []
    scheduler = Scheduler(clock, phase_offset_ns=0)
    scheduler.add_task("main", 10 * MS, lambda _s, _d: seen.append(scheduler.current_scan()))
    scheduler.run(max_scans=1)
    assert seen == [("main", 1 * MS)]
    assert scheduler.current_scan() is None


def test_run_scan_can_be_replaced_between_scans() -> None:
    clock = VirtualClock()
    log = ScanLog()
    scheduler = Scheduler(clock, phase_offset_ns=0)
    task = scheduler.add_task("main", 10 * MS, log.task("old"))
    scheduler.run(max_scans=1)
    task.run_scan = log.task("new")
    scheduler.run(max_scans=1)
    assert [name for name, _, _ in log.scans] == ["old", "new"]


def test_the_same_loop_runs_on_the_real_clock() -> None:
    clock = MonotonicClock(spin_ns=200_000)
    log = ScanLog()
    scheduler = Scheduler(clock)
    scheduler.add_task("main", 1 * MS, log.task("main"))
    assert scheduler.run(max_scans=3) is StopReason.MAX_SCANS
    assert len(log.scans) == 3
    epoch = scheduler.epoch_ns
    assert epoch is not None
    for _, start, deadline in log.scans:
        assert start >= deadline  # the spin never wakes early
        assert (deadline - epoch) % MS == 0


def test_configuration_errors_are_clear() -> None:
    clock = VirtualClock()
    scheduler = Scheduler(clock)
    noop: Callable[[int, int], None] = lambda _s, _d: None  # noqa: E731
    with pytest.raises(RuntimeError, match="no tasks"):
        scheduler.run(max_scans=1)
    scheduler.add_task("main", 10 * MS, noop)
    with pytest.raises(ValueError, match="'main' is defined twice"):
        scheduler.add_task("main", 10 * MS, noop)
    with pytest.raises(ValueError, match="interval must be a positive"):
        scheduler.add_task("x", 0, noop)
    with pytest.raises(ValueError, match="priority must be an integer >= 0"):
        scheduler.add_task("x", 10 * MS, noop, priority=-1)
    with pytest.raises(ValueError, match="offset must be in"):
        scheduler.add_task("x", 10 * MS, noop, offset_ns=10 * MS)
    with pytest.raises(ValueError, match="needs a VirtualClock"):
        Scheduler(MonotonicClock(), cost_model=lambda _t, _i: 0)
    scheduler.run(max_scans=1)
    with pytest.raises(RuntimeError, match="before the scheduler first runs"):
        scheduler.add_task("late", 10 * MS, noop)
