"""Scan statistics from known virtual-time sequences: percentiles, histogram, window, reset, JSON."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from plcrun.executor.clock import VirtualClock
from plcrun.executor.scheduler import Scheduler
from plcrun.executor.stats import HISTOGRAM_EDGES_NS, ExecutorStats, SampleSeries, TaskStats, format_ns

US = 1_000
MS = 1_000_000


def run_with_costs(costs: list[int], interval_ns: int = 10 * MS, window: int = 100_000) -> Scheduler:
    clock = VirtualClock()
    scheduler = Scheduler(clock, cost_model=lambda _t, i: costs[i], phase_offset_ns=0, stats_window=window)
    scheduler.add_task("main", interval_ns, lambda _s, _d: None)
    scheduler.run(max_scans=len(costs))
    return scheduler


def test_execution_time_percentiles_from_a_known_sequence() -> None:
    costs = [k * US for k in range(1, 1001)]  # 1 µs ... 1000 µs
    random.Random(7).shuffle(costs)
    summary = run_with_costs(costs).stats.task("main").to_json()["execution_ns"]
    assert isinstance(summary, dict)
    assert summary["count"] == 1000
    assert summary["min"] == 1 * US
    assert summary["max"] == 1000 * US
    assert summary["mean"] == pytest.approx(500.5 * US)
    assert summary["last"] == costs[-1]
    # Linear interpolation between ranks: rank = p/100 * (n-1) over the sorted samples.
    assert summary["p50"] == 500_500  # halfway between 500 µs and 501 µs
    assert summary["p99"] == 990_010  # rank 989.01
    assert summary["p99_9"] == 999_001  # rank 998.001


def test_wake_latency_and_period_from_a_delaying_higher_priority_task() -> None:
    # A high-priority task released together with "main" costs d_k; main starts d_k late.
    delays = [0, 1 * MS, 2 * MS, 0, 3 * MS, 0, 0, 5 * MS, 0, 0]
    clock = VirtualClock()
    scheduler = Scheduler(
        clock, cost_model=lambda task, i: delays[i] if task == "io" else 100 * US, phase_offset_ns=0
    )
    scheduler.add_task("main", 10 * MS, lambda _s, _d: None, priority=1)
    scheduler.add_task("io", 10 * MS, lambda _s, _d: None, priority=0)
    scheduler.run(until_ns=100 * MS)
    main = scheduler.stats.task("main")
    assert main.scans == 10
    latency = main.to_json()["wake_latency_ns"]
    assert isinstance(latency, dict)
    assert (latency["min"], latency["max"], latency["last"]) == (0, 5 * MS, 0)
    assert latency["mean"] == pytest.approx(1.1 * MS)
    assert latency["p50"] == 0
    assert latency["p99"] == round(np.percentile(delays, 99))
    period = main.to_json()["period_ns"]
    assert isinstance(period, dict)
    assert period["count"] == 9
    # start_k+1 - start_k = 10 ms + d_k+1 - d_k
    assert period["min"] == 10 * MS - 5 * MS
    assert period["max"] == 10 * MS + 5 * MS


def test_histogram_bins() -> None:
    costs = [5 * US, 10 * US, 15 * US, 99 * US, 100 * US, 3 * MS, 3 * MS, 60 * MS]
    scheduler = run_with_costs(costs, interval_ns=100 * MS)
    histogram = scheduler.stats.task("main").to_json()["histogram"]
    assert isinstance(histogram, dict)
    assert histogram["edges_ns"] == list(HISTOGRAM_EDGES_NS)
    counts = histogram["execution"]
    assert isinstance(counts, list)
    assert len(counts) == len(HISTOGRAM_EDGES_NS) + 1
    expected = [0] * (len(HISTOGRAM_EDGES_NS) + 1)
    expected[0] = 1  # 5 µs < 10 µs
    expected[1] = 2  # 10 µs, 15 µs in [10, 20)
    expected[3] = 1  # 99 µs in [50, 100)
    expected[4] = 1  # 100 µs in [100, 200)
    expected[8] = 2  # 3 ms in [2, 5) ms
    expected[-1] = 1  # 60 ms >= 50 ms
    assert counts == expected
    assert sum(histogram["wake_latency"]) == len(costs)  # type: ignore[arg-type]


def test_ring_window_keeps_the_last_samples_while_min_max_mean_cover_everything() -> None:
    series = SampleSeries(window=10)
    for value in range(1, 26):  # 1 .. 25
        series.add(value)
    assert list(series.window()) == list(range(16, 26))
    summary = series.summary()
    assert (summary["min"], summary["max"], summary["count"], summary["window"]) == (1, 25, 25, 10)
    assert summary["mean"] == pytest.approx(13.0)
    assert summary["p50"] == round(np.percentile(np.arange(16, 26), 50))


def test_reset_clears_counters_and_samples() -> None:
    costs = [1 * MS, 25 * MS, 1 * MS, 1 * MS]  # one overrun, one skip
    scheduler = run_with_costs(costs)
    stats = scheduler.stats
    main = stats.task("main")
    stats.record_gc_pause(300 * US, 0)
    assert (main.overruns, main.skipped_periods, main.scans) == (1, 1, 4)
    stats.reset()
    report = main.to_json()
    assert (report["scans"], report["overruns"], report["skipped_periods"]) == (0, 0, 0)
    assert report["overruns_per_10k"] is None
    execution = report["execution_ns"]
    assert isinstance(execution, dict)
    assert execution["count"] == 0 and execution["p99"] is None and execution["max"] is None
    assert stats.to_json()["gc"] == {
        "count": 0,
        "total_ns": 0,
        "max_ns": 0,
        "last_ns": 0,
        "in_scan": 0,
        "by_generation": [0, 0, 0],
    }
    assert stats.resets == 1
    # New samples after the reset only.
    main.record_scan(0, 7 * US, 0, 0, False)
    assert main.execution.summary()["p50"] == 7 * US
    assert main.period.count == 0  # the period chain restarts after a reset


def test_overrun_rate_and_watchdog_in_the_report() -> None:
    costs = [1 * MS] * 9 + [11 * MS] + [1 * MS] * 10
    scheduler = run_with_costs(costs)
    main = scheduler.stats.task("main")
    main.watchdog = "tripped"
    report = scheduler.stats.to_json()
    json.dumps(report)  # plain JSON types only
    task = report["tasks"]["main"]  # type: ignore[index]
    assert task["overruns"] == 1
    assert task["overruns_per_10k"] == pytest.approx(10_000 / 20)
    assert task["watchdog"] == "tripped"
    assert task["interval_ns"] == 10 * MS


def test_gc_pauses_are_attributed_to_the_running_scan() -> None:
    stats = ExecutorStats(window=16)
    main = stats.add_task("main", 10 * MS, 0)
    stats.record_gc_pause(200 * US, 0)  # in the idle slack
    stats.current = main
    stats.record_gc_pause(900 * US, 2)  # inside a scan
    stats.current = None
    assert (stats.gc.count, stats.gc.in_scan, stats.gc.max_ns, stats.gc.total_ns) == (
        2,
        1,
        900 * US,
        1100 * US,
    )
    assert stats.gc.by_generation == [1, 0, 1]
    assert (main.gc.count, main.gc.max_ns) == (1, 900 * US)


def test_statistics_errors_are_clear() -> None:
    stats = ExecutorStats()
    stats.add_task("main", 10 * MS, 0)
    with pytest.raises(KeyError, match="no task named 'other'"):
        stats.task("other")
    with pytest.raises(ValueError, match="exist already"):
        stats.add_task("main", 10 * MS, 0)
    with pytest.raises(ValueError, match="window"):
        TaskStats("x", 1, 0, window=0)


def test_format_ns() -> None:
    assert format_ns(37_400) == "37 µs"
    assert format_ns(1_240_000) == "1.24 ms"
    assert format_ns(None) == "-"


def test_reading_a_full_window_allocates_nothing_in_proportion_to_it() -> None:
    """The report threads' percentiles and histograms work in one scratch buffer: a fresh copy of the
    ring per report (800 KB at 100,000 samples, growing 48 KB a minute while a 10 ms ring filled) made
    the reading thread's malloc arena, and so the process's RSS, climb for the first 17 minutes."""
    import tracemalloc

    stats = TaskStats("main", 10 * MS, 0)
    rng = random.Random(5)
    for k in range(100_000):
        stats.record_scan(k * 10 * MS, k * 10 * MS + rng.randrange(50 * US, 900 * US), k * 10 * MS, 0, False)
    stats.to_json()  # the scratch buffer exists from the first report on
    before = stats.to_json()
    tracemalloc.start()
    try:
        for _ in range(5):
            assert stats.to_json() == before
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"a report allocated {peak} bytes at its peak"
    # the figures are numpy's own over the same samples
    samples = stats.execution.window()
    p50, p99 = np.percentile(samples, [50.0, 99.0])
    execution = before["execution_ns"]
    assert isinstance(execution, dict) and (execution["p50"], execution["p99"]) == (round(p50), round(p99))
    bins = np.searchsorted(np.asarray(HISTOGRAM_EDGES_NS), samples, side="right")
    histogram = before["histogram"]
    assert isinstance(histogram, dict)
    assert histogram["execution"] == np.bincount(bins, minlength=len(HISTOGRAM_EDGES_NS) + 1).tolist()
