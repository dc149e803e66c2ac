"""The scheduler's virtual-time run path (one task, ``VirtualClock``, no cost model) against the
general loop: the same scans, stop reasons, clock, statistics and observer calls. A cost model that
always answers 0 makes the scheduler take the general loop with otherwise identical scans, so each
test runs both and compares what a caller can see."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.executor.scheduler import ScanRecord, Scheduler, StopReason
from scripted_driver import ScriptedDriver

PROGRAMS = Path(__file__).parent / "programs"
MS = 1_000_000


def zero_cost(_task: str, _index: int) -> int:
    return 0


def both(
    build: Callable[[Scheduler], None], run: Callable[[Scheduler], StopReason], window: int = 100_000
) -> list[tuple[StopReason, int, dict[str, Any], Scheduler]]:
    """(stop reason, clock, statistics, scheduler) of the run path and of the general loop."""
    out = []
    for cost in (None, zero_cost):
        clock = VirtualClock(start_ns=2_300_000)
        scheduler = Scheduler(clock, cost_model=cost, stats_window=window)
        build(scheduler)
        reason = run(scheduler)
        out.append((reason, clock.now_ns(), scheduler.stats.to_json(), scheduler))
    return out


def test_statistics_of_a_long_run_are_those_of_the_general_loop_across_the_ring() -> None:
    # 1,000 scans through a 97-sample window: batches of on-time scans wrap the ring several times
    def build(s: Scheduler) -> None:
        s.add_task("main", 10 * MS, lambda _s, _d: None)

    fast, general = both(build, lambda s: s.run(until_ns=10_003 * MS), window=97)
    assert fast[:3] == general[:3]
    stats = fast[3].stats.task("main")
    assert stats.scans == 1000 and stats.period.count == 999
    assert sorted(stats.period.window().tolist()) == [10 * MS] * 97


def test_stops_are_those_of_the_general_loop() -> None:
    def build(s: Scheduler) -> None:
        s.add_task("main", 10 * MS, lambda _s, _d: None)

    runs: list[Callable[[Scheduler], StopReason]] = [
        lambda s: s.run(max_scans=7),
        lambda s: s.run(scans_per_task=5),
        lambda s: s.run(until_ns=55 * MS),
        lambda s: s.run(until_ns=53_500_000),  # a release exactly at until is not run
        lambda s: s.run(max_scans=0),
    ]
    for run in runs:
        fast, general = both(build, run)
        assert fast[:3] == general[:3]


def test_a_stop_event_set_by_a_scan_stops_both_alike() -> None:
    event = threading.Event()

    def build(s: Scheduler) -> None:
        event.clear()
        s.add_task("main", 10 * MS, lambda _s, deadline: event.set() if deadline >= 40 * MS else None)

    fast, general = both(build, lambda s: s.run(until_ns=1_000 * MS, stop_event=event))
    assert fast[0] is StopReason.STOPPED
    assert fast[:3] == general[:3]


def test_observers_see_the_same_records_and_a_short_form_replaces_the_record() -> None:
    records: dict[bool, list[ScanRecord]] = {True: [], False: []}
    with_short_form: dict[bool, list[ScanRecord]] = {True: [], False: []}
    short: dict[bool, list[tuple[str, int]]] = {True: [], False: []}
    for fast in (True, False):
        scheduler = Scheduler(VirtualClock(), cost_model=None if fast else zero_cost)
        scheduler.add_task("main", 10 * MS, lambda _s, _d: None)
        scheduler.add_scan_observer(records[fast].append)
        scheduler.add_scan_observer(
            with_short_form[fast].append, lambda task, release, f=fast: short[f].append((task, release))
        )
        scheduler.run(max_scans=4)
    assert records[True] == records[False] == with_short_form[False]
    assert with_short_form[True] == [] and short[False] == []  # the general loop never uses it
    assert short[True] == [("main", r.deadline_ns) for r in records[True]]
    assert all(r.start_ns == r.end_ns == r.deadline_ns for r in records[True])


def test_idle_hooks_run_after_every_scan_with_the_same_slack() -> None:
    def build(s: Scheduler) -> None:
        calls: list[tuple[int, int]] = []
        s.add_task("main", 10 * MS, lambda _s, _d: None)
        s.add_idle_hook(lambda now, slack: calls.append((now, slack)))
        s.calls = calls  # type: ignore[attr-defined]

    fast, general = both(build, lambda s: s.run(max_scans=6))
    assert fast[3].calls == general[3].calls  # type: ignore[attr-defined]
    assert len(fast[3].calls) == 6  # type: ignore[attr-defined]


def test_a_scan_that_moves_the_clock_is_recorded_like_the_general_loop_and_skips_count() -> None:
    def build(s: Scheduler) -> None:
        clock = s.clock
        assert isinstance(clock, VirtualClock)

        def scan(_start: int, deadline: int) -> None:
            if deadline == s.epoch_ns + 30 * MS:  # type: ignore[operator]
                clock.advance(25 * MS)  # ends 15 ms after the next release: one skip, an overrun
            elif deadline == s.epoch_ns + 100 * MS:  # type: ignore[operator]
                clock.advance(2 * MS)  # takes time, still on time for the next release

        s.add_task("main", 10 * MS, scan)
        s.records = []  # type: ignore[attr-defined]
        s.add_scan_observer(s.records.append)  # type: ignore[attr-defined]

    fast, general = both(build, lambda s: s.run(until_ns=200 * MS))
    assert fast[:3] == general[:3]
    assert fast[3].records == general[3].records  # type: ignore[attr-defined]
    stats = fast[3].stats.task("main")
    assert (stats.overruns, stats.skipped_periods) == (1, 1)
    # a later run() takes the run path again
    fast[3].run(until_ns=300 * MS)
    general[3].run(until_ns=300 * MS)
    assert fast[3].stats.to_json() == general[3].stats.to_json()


def test_an_exception_from_a_scan_leaves_the_statistics_of_the_scans_before_it() -> None:
    def build(s: Scheduler) -> None:
        def scan(_start: int, deadline: int) -> None:
            if deadline >= 52_500_000:
                raise RuntimeError("boom")

        s.add_task("main", 10 * MS, scan)

    def run(s: Scheduler) -> StopReason:
        with pytest.raises(RuntimeError):
            s.run(max_scans=20)
        return StopReason.STOPPED

    fast, general = both(build, run)
    assert fast[:3] == general[:3]
    assert fast[3].stats.task("main").scans == 5


def plant(cost: bool) -> tuple[Executor, ScriptedDriver]:
    program = compile_file(PROGRAMS / "plant.st")
    driver = ScriptedDriver(
        "meter", ["plant.hz"], ["plant.p_set"], [(0, {"plant.hz": 50.0}), (30 * MS, {"plant.hz": 49.9})]
    )
    executor = Executor(
        program, clock=VirtualClock(), drivers=[driver], cost_model=zero_cost if cost else None
    )
    return executor, driver


def test_the_executor_gives_the_same_outputs_statistics_and_task_counters_on_both_paths() -> None:
    results = []
    for cost in (False, True):
        executor, driver = plant(cost)
        executor.run(max_scans=40)
        executor.request_stats_reset()  # handled after the next scan, on either path
        executor.run(max_scans=25)
        info = executor.state.task_infos["DEFAULT"]
        results.append(
            (
                driver.written,
                executor.scheduler.stats.to_json(),
                (info.scans, info.overruns, info.last_exec_ns),
                executor.supervisors["DEFAULT"].to_json(),
                executor.read("plant.now"),
            )
        )
    assert results[0] == results[1]
    assert results[0][1]["tasks"]["DEFAULT"]["scans"] == 24  # the reset came after the 41st scan


class SlowDriver(ScriptedDriver):
    """Its output hand-over takes 12 ms of virtual time in the scans listed (an overrun each)."""

    def __init__(self, slow: set[int]) -> None:
        super().__init__("meter", ["plant.hz"], ["plant.p_set"], [(0, {"plant.hz": 50.0})])
        self.slow = slow
        self.index = 0

    def write_outputs(self, now_ns: int, values: Any) -> None:
        super().write_outputs(now_ns, values)
        if self.index in self.slow and isinstance(self.clock, VirtualClock):
            self.clock.advance(12 * MS)
        self.index += 1


def test_on_time_scans_reset_the_watchdogs_overrun_run_like_the_general_loop() -> None:
    # two overruns, a new schedule (the next scan is on time again), two more: never three in a row
    outcomes = []
    for cost in (None, zero_cost):
        driver = SlowDriver({3, 4, 8, 9})
        executor = Executor(
            compile_file(PROGRAMS / "plant.st"), clock=VirtualClock(), drivers=[driver], cost_model=cost
        )
        executor.run(max_scans=5)
        executor.scheduler.restart_schedule()
        executor.run(max_scans=8)
        outcomes.append(
            (
                executor.supervisors["DEFAULT"].to_json(),
                executor.scheduler.stats.to_json(),
                driver.written,
                executor.read("plant.overruns"),
            )
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]["state"] == "running"
    assert outcomes[0][1]["tasks"]["DEFAULT"]["overruns"] == 4
