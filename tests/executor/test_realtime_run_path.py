"""The scheduler's run path of one task on a real clock (``_run_one``) against the general loop:
the same scans, stop reasons, clock, statistics, observer records and idle-hook calls. The real
clock is stood in for by a scripted one (not a ``VirtualClock``, so the scheduler takes the real-time
path): its wake-ups land late by scripted amounts and scans move it by scripted durations, in
virtual time. ``single_task_path = False`` makes the scheduler take the general loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from plcrun.executor.scheduler import ScanRecord, Scheduler, StopReason

MS = 1_000_000


class ScriptedClock:
    """Time moves only in ``sleep_until`` (to the deadline plus the next scripted lateness, as a
    kernel waking late does) and ``advance`` (a scan taking time)."""

    def __init__(self, start_ns: int, lateness_ns: list[int]) -> None:
        self.now = start_ns
        self.lateness = list(lateness_ns)
        self.sleeps = 0

    def now_ns(self) -> int:
        return self.now

    def sleep_until(self, deadline_ns: int, cancel: threading.Event | None = None) -> bool:
        if cancel is not None and cancel.is_set():
            return False
        late = self.lateness[self.sleeps % len(self.lateness)]
        self.sleeps += 1
        self.now = max(self.now, deadline_ns + late)
        return True

    def advance(self, delta_ns: int) -> None:
        self.now += delta_ns


# the scan durations by release (ms after the epoch): 27 ms (an overrun, then the release after
# next served 7 ms late with one skip), 10.05 ms (an overrun) and 9.9 ms (an overrun only because
# its wake-up was 130 µs late)
DURATIONS_MS = {30: 27, 70: 10.05, 100: 9.9}
LATENESS_NS = [40_000, 130_000, 0, 75_000, 2_400_000, 9_000]


def both(
    run: Callable[[Scheduler], Any],
    build: Callable[[Scheduler, ScriptedClock], None] | None = None,
    window: int = 100_000,
) -> list[tuple[Any, int, dict[str, Any], list[ScanRecord], list[tuple[int, int]], Scheduler]]:
    """(what run returned, clock, statistics, observer records, idle-hook calls, scheduler) of the
    real-time path and of the general loop, each on its own scripted clock."""
    out = []
    for single in (True, False):
        clock = ScriptedClock(2_345_678, LATENESS_NS)
        scheduler = Scheduler(clock, stats_window=window)
        scheduler.single_task_path = single
        records: list[ScanRecord] = []
        idle: list[tuple[int, int]] = []

        def scan(start: int, release: int, s: Scheduler = scheduler, c: ScriptedClock = clock) -> None:
            epoch = s.epoch_ns
            assert epoch is not None
            c.advance(int(DURATIONS_MS.get((release - epoch) // MS, 0.3) * MS))

        scheduler.add_task("main", 10 * MS, scan)
        scheduler.add_scan_observer(records.append)
        scheduler.add_idle_hook(lambda now, slack, calls=idle: calls.append((now, slack)))
        if build is not None:
            build(scheduler, clock)
        result = run(scheduler)
        out.append((result, clock.now, scheduler.stats.to_json(), records, idle, scheduler))
    return out


def test_a_run_with_late_wake_ups_overruns_and_skips_is_that_of_the_general_loop() -> None:
    fast, general = both(lambda s: s.run(max_scans=40), window=17)
    assert fast[:5] == general[:5]
    stats = fast[5].stats.task("main")
    assert stats.scans == 40
    assert stats.overruns == 3 and stats.skipped_periods == 1
    assert 2_400_000 in stats.wake_latency.window().tolist()
    assert [r.skipped for r in fast[3]].count(1) == 1
    assert len(fast[4]) == 36  # no idle hook after the four scans that left too little slack


def test_stops_are_those_of_the_general_loop() -> None:
    runs: list[Callable[[Scheduler], StopReason]] = [
        lambda s: s.run(max_scans=7),
        lambda s: s.run(scans_per_task=5),
        lambda s: s.run(until_ns=2_345_678 + 95 * MS),
        lambda s: s.run(until_ns=3 * MS + 50 * MS + 500_000),  # a release exactly at until is not run
        lambda s: s.run(max_scans=0),
    ]
    for run in runs:
        fast, general = both(run)
        assert fast[:5] == general[:5]


def test_a_stop_event_set_by_a_scan_or_before_the_run_stops_both_alike() -> None:
    event = threading.Event()

    def build(s: Scheduler, _clock: ScriptedClock) -> None:
        event.clear()
        observer = s._observers[0]

        def stop_after_the_fifth(record: ScanRecord) -> None:
            observer(record)
            if s.stats.task("main").scans == 5:
                event.set()

        s._observers[0] = stop_after_the_fifth

    fast, general = both(lambda s: s.run(until_ns=10**12, stop_event=event), build)
    assert fast[0] is StopReason.STOPPED
    assert fast[:5] == general[:5]
    assert fast[5].stats.task("main").scans == 5
    # a second run with the event still set stops before any scan, on both paths
    assert fast[5].run(max_scans=3, stop_event=event) is StopReason.STOPPED
    assert fast[5].stats.task("main").scans == 5


def test_later_runs_continue_the_schedule_and_a_replaced_scan_function_is_used() -> None:
    def run(s: Scheduler) -> list[StopReason]:
        calls: list[int] = []
        reasons = [s.run(max_scans=4)]
        s.tasks[0].run_scan = lambda _start, release: calls.append(release)
        reasons.append(s.run(max_scans=3))
        s.restart_schedule()
        reasons.append(s.run(scans_per_task=2))
        reasons.append(calls)  # type: ignore[arg-type]
        return reasons

    fast, general = both(run)
    assert fast[:5] == general[:5]
    assert len(fast[0][3]) == 5


def test_an_exception_from_a_scan_leaves_the_statistics_of_the_scans_before_it() -> None:
    def build(s: Scheduler, clock: ScriptedClock) -> None:
        plain = s.tasks[0].run_scan
        raised: list[int] = []

        def scan(start: int, release: int) -> None:
            plain(start, release)
            if s.stats.task("main").scans == 6 and not raised:
                raised.append(release)
                raise RuntimeError("boom")

        s.tasks[0].run_scan = scan

    def run(s: Scheduler) -> int:
        with pytest.raises(RuntimeError):
            s.run(max_scans=20)
        assert s.current_scan() is None and s.stats.current is None
        s.run(max_scans=2)  # the schedule goes on after the failed scan
        return s.tasks[0].scan_index

    fast, general = both(run, build)
    assert fast[:5] == general[:5]
    assert fast[0] == 9


def test_the_real_time_path_is_taken_for_one_task_only() -> None:
    clock = ScriptedClock(0, [0])
    scheduler = Scheduler(clock)
    seen: list[str] = []
    scheduler.add_task("fast", 10 * MS, lambda _s, _r: seen.append("fast"))
    scheduler.add_task("slow", 30 * MS, lambda _s, _r: seen.append("slow"), priority=1)
    taken: list[bool] = []
    one = scheduler._run_one
    scheduler._run_one = lambda *args: taken.append(True) or one(*args)  # type: ignore[method-assign]
    assert scheduler.run(max_scans=8) is StopReason.MAX_SCANS
    assert taken == [] and seen.count("slow") == 2  # two tasks: the general loop, by priority
