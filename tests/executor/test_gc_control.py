"""GC control: freeze/disable at start, collections only in idle slack, pauses recorded in the statistics."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from plcrun.executor.clock import VirtualClock
from plcrun.executor.gc_control import GcController, GcPolicy
from plcrun.executor.scheduler import Scheduler
from plcrun.executor.stats import ExecutorStats

MS = 1_000_000
S = 1_000_000_000


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def make_cycles(count: int) -> list[weakref.ref[Node]]:
    """``count`` unreachable reference cycles; only the collector can free them."""
    refs = []
    for _ in range(count):
        a, b = Node(), Node()
        a.other, b.other = b, a
        refs.append(weakref.ref(a))
    return refs


@pytest.fixture
def stats() -> ExecutorStats:
    return ExecutorStats(window=64)


@pytest.fixture
def controller(stats: ExecutorStats) -> Iterator[GcController]:
    was_enabled = gc.isenabled()
    ctl = GcController(stats, GcPolicy(young_min_objects=50, middle_every=3, full_every_ns=1 * S))
    ctl.start(now_ns=0)
    try:
        yield ctl
    finally:
        ctl.stop()
        assert gc.isenabled() == was_enabled
        assert gc.get_freeze_count() == 0


def test_start_freezes_and_disables_automatic_collection(controller: GcController) -> None:
    assert controller.active
    assert not gc.isenabled()
    assert controller.frozen_objects > 1000  # the interpreter, pytest and plcrun modules
    assert gc.get_freeze_count() > 1000
    # With automatic collection off, garbage cycles stay until we collect in the slack.
    refs = make_cycles(2000)
    assert all(ref() is not None for ref in refs)


def test_idle_collects_garbage_and_records_the_pause(controller: GcController, stats: ExecutorStats) -> None:
    refs = make_cycles(500)
    controller.idle(now_ns=1 * MS, slack_ns=9 * MS)
    assert all(ref() is None for ref in refs)
    assert stats.gc.count == 1
    assert stats.gc.total_ns > 0 and stats.gc.max_ns == stats.gc.total_ns
    assert stats.gc.in_scan == 0
    assert controller.collections_in_idle == 1


def test_idle_skips_the_collection_when_few_objects_were_allocated(stats: ExecutorStats) -> None:
    ctl = GcController(stats, GcPolicy(young_min_objects=10**9))
    ctl.start(now_ns=0)
    try:
        make_cycles(100)
        ctl.idle(now_ns=1 * MS, slack_ns=9 * MS)
        assert stats.gc.count == 0
    finally:
        ctl.stop()


def test_middle_generation_every_nth_idle_collection(controller: GcController, stats: ExecutorStats) -> None:
    for k in range(6):
        make_cycles(100)
        controller.idle(now_ns=(k + 1) * MS, slack_ns=9 * MS)
    # middle_every=3: young, young, middle, young, young, middle
    assert stats.gc.by_generation == [4, 2, 0]


def test_full_collection_only_when_due_and_the_slack_is_long(
    controller: GcController, stats: ExecutorStats
) -> None:
    make_cycles(100)
    controller.idle(now_ns=500 * MS, slack_ns=9 * MS)  # not due yet (every 1 s)
    assert stats.gc.by_generation[2] == 0
    make_cycles(100)
    controller.idle(now_ns=1_500 * MS, slack_ns=1 * MS)  # due, but 1 ms < full_min_slack (5 ms)
    assert stats.gc.by_generation[2] == 0
    assert controller.full_deferred == 1
    make_cycles(100)
    controller.idle(now_ns=1_510 * MS, slack_ns=9 * MS)
    assert stats.gc.by_generation[2] == 1
    make_cycles(100)
    controller.idle(now_ns=1_520 * MS, slack_ns=9 * MS)  # the next full is a second away again
    assert stats.gc.by_generation[2] == 1


def test_a_collection_inside_a_scan_is_attributed_to_that_task(controller: GcController) -> None:
    clock = VirtualClock()
    scheduler = Scheduler(clock, phase_offset_ns=0)
    controller_stats = scheduler.stats
    # A controller recording into this scheduler's statistics, replacing the fixture's for this test.
    controller.stop()
    ctl = GcController(controller_stats)
    ctl.start(now_ns=0)
    try:

        def run_scan(_start: int, _deadline: int) -> None:
            make_cycles(10)
            gc.collect(0)  # e.g. a library calling the collector in the middle of a scan

        scheduler.add_task("main", 10 * MS, run_scan)
        scheduler.add_task("idle", 10 * MS, lambda _s, _d: None, priority=1)
        scheduler.run(max_scans=4)
    finally:
        ctl.stop()
    main, other = controller_stats.task("main"), controller_stats.task("idle")
    assert main.gc.count == 2 and main.gc.by_generation == [2, 0, 0]
    assert other.gc.count == 0
    assert controller_stats.gc.in_scan == 2


def test_stop_is_idempotent_and_restores_the_collector(stats: ExecutorStats) -> None:
    was_enabled = gc.isenabled()
    ctl = GcController(stats)
    ctl.start(now_ns=0)
    ctl.stop()
    ctl.stop()
    assert gc.isenabled() == was_enabled
    count_before = stats.gc.count
    gc.collect(0)
    assert stats.gc.count == count_before  # no longer recording
    ctl.idle(0, 10 * MS)  # inactive: does nothing
    assert stats.gc.count == count_before
