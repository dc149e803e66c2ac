"""Scan statistics per task: execution time, period, wake latency, overruns, skips, GC pauses.

Recording one scan is a handful of integer operations and three numpy stores (about 1 µs; printed
by ``bench/scan_jitter.py``): running last/min/max/mean over everything since the last
reset, plus a ring buffer of the last ``window`` samples from which percentiles and histograms are
computed on demand in ``to_json()`` (the dictionary the CLI, the dashboard and the MQTT reports use).

Recording happens on the scan thread; ``to_json`` may run on another thread. There is no lock: a
report taken while a scan is being recorded may miss that one sample, never more.

Percentiles and histograms are computed in one scratch buffer (``_Scratch``, under its lock: the
readers are the status, dashboard and report threads, never the scan), not in a fresh copy of the
ring per call: a copy as long as the filled part of the ring grew by 48 KB a minute for the first
1,000 s of a 10 ms task and left the reading thread's malloc arena that much larger each time, so
the process's RSS climbed for 17 minutes (issue 17, "flat over an hour").
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

DEFAULT_WINDOW = 100_000
PERCENTILES = (50.0, 99.0, 99.9)
PERCENTILE_KEYS = ("p50", "p99", "p99_9")
_US = 1_000
_MS = 1_000_000
# Upper edges of the histogram bins (ns); the last bin is open-ended.
HISTOGRAM_EDGES_NS: tuple[int, ...] = (
    10 * _US,
    20 * _US,
    50 * _US,
    100 * _US,
    200 * _US,
    500 * _US,
    1 * _MS,
    2 * _MS,
    5 * _MS,
    10 * _MS,
    20 * _MS,
    50 * _MS,
)

JsonDict = dict[str, object]


class SampleSeries:
    """One measured quantity: running min/max/mean since reset plus a ring of the last samples."""

    __slots__ = ("_ring", "_store", "count", "last", "max", "min", "total")

    def __init__(self, window: int) -> None:
        if window <= 0:
            raise ValueError(f"statistics window must be > 0, got {window}")
        # np.full writes every page now (np.zeros maps them lazily): the scan never page-faults
        # into a new page of the ring, and RSS is flat from the start instead of growing for the
        # 1,000 s it takes to fill 100,000 samples (3 series x 800 KB per task)
        self._ring: npt.NDArray[np.int64] = np.full(window, 0, dtype=np.int64)
        # the scan thread stores one sample through a memoryview of the ring: the same memory, a
        # far shorter path than numpy's item assignment, which is cold after every real-time sleep
        self._store = self._ring.data.cast("B").cast("q")
        self.count = 0
        self.last = 0
        self.min = 0
        self.max = 0
        self.total = 0

    def add(self, value: int) -> None:
        count = self.count
        if count == 0 or value < self.min:
            self.min = value
        if count == 0 or value > self.max:
            self.max = value
        store = self._store
        store[count % len(store)] = value
        self.count = count + 1
        self.last = value
        self.total += value

    def add_repeated(self, value: int, times: int) -> None:
        """``add(value)`` ``times`` times, in a few numpy slice stores (the virtual-time run path
        records its on-time scans in batches)."""
        if times <= 0:
            return
        count = self.count
        if count == 0 or value < self.min:
            self.min = value
        if count == 0 or value > self.max:
            self.max = value
        ring = self._ring
        size = ring.shape[0]
        if times >= size:
            ring[:] = value
        else:
            start = count % size
            end = start + times
            if end <= size:
                ring[start:end] = value
            else:
                ring[start:] = value
                ring[: end - size] = value
        self.count = count + times
        self.last = value
        self.total += value * times

    def reset(self) -> None:
        self.count = self.last = self.min = self.max = self.total = 0

    def window(self) -> npt.NDArray[np.int64]:
        """A copy of the samples in the ring (oldest first once it has wrapped)."""
        size = self._ring.shape[0]
        count = self.count
        if count <= size:
            return self._ring[:count].copy()
        split = count % size
        return np.concatenate((self._ring[split:], self._ring[:split]))

    def _samples(self) -> npt.NDArray[np.int64]:
        """The samples in the ring in no particular order (a view: read it at once)."""
        return self._ring[: min(self.count, self._ring.shape[0])]

    def summary(self) -> JsonDict:
        """last/min/mean/max since reset and percentiles over the window, all in ns (None when empty)."""
        count = self.count
        result: JsonDict = {
            "count": count,
            "last": self.last if count else None,
            "min": self.min if count else None,
            "mean": self.total / count if count else None,
            "max": self.max if count else None,
        }
        samples = self._samples()
        result["window"] = int(samples.shape[0])
        with _SCRATCH.lock:
            found = percentiles(_SCRATCH.copy_of(samples), PERCENTILES, in_place=True)
        for key, value in zip(PERCENTILE_KEYS, found, strict=True):
            result[key] = None if value is None else round(value)
        return result

    def histogram(self) -> list[int]:
        """Counts per bin of ``HISTOGRAM_EDGES_NS`` over the window; bin i holds samples below edge i
        (and at or above edge i-1); the last entry counts samples at or above the last edge."""
        with _SCRATCH.lock:
            work = _SCRATCH.copy_of(self._samples())
            work.sort()  # in place, in the scratch buffer
            below = [int(n) for n in np.searchsorted(work, _EDGES, side="left")]  # samples below each edge
            total = int(work.shape[0])
        return [below[0], *(high - low for low, high in pairwise(below)), total - below[-1]]


class _Scratch:
    """One buffer for the readers' percentile and histogram work (``lock`` held while it is used),
    grown to the largest window asked for and written at allocation, so that reading statistics
    never allocates memory in proportion to the window."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._buffer: npt.NDArray[np.int64] = np.full(0, 0, dtype=np.int64)

    def copy_of(self, samples: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        size = int(samples.shape[0])
        if size > self._buffer.shape[0]:
            self._buffer = np.full(max(size, DEFAULT_WINDOW), 0, dtype=np.int64)
        work = self._buffer[:size]
        np.copyto(work, samples)
        return work


_SCRATCH = _Scratch()
_EDGES = np.asarray(HISTOGRAM_EDGES_NS, dtype=np.int64)


def percentiles(
    samples: npt.NDArray[np.int64], points: tuple[float, ...], *, in_place: bool = False
) -> list[float | None]:
    """Percentiles with linear interpolation between closest ranks (numpy's default method), computed
    with one ``np.partition`` (no full sort; numpy releases the GIL while partitioning); with
    ``in_place`` the samples are partitioned where they are (no copy)."""
    n = int(samples.shape[0])
    if n == 0:
        return [None for _ in points]
    positions = [p / 100.0 * (n - 1) for p in points]
    ranks = sorted({math.floor(x) for x in positions} | {math.ceil(x) for x in positions})
    if in_place:
        samples.partition(ranks)
        ordered = samples
    else:
        ordered = np.partition(samples, ranks)
    result: list[float | None] = []
    for position in positions:
        low = float(ordered[math.floor(position)])
        high = float(ordered[math.ceil(position)])
        result.append(low + (high - low) * (position - math.floor(position)))
    return result


@dataclass(slots=True)
class GcPauseStats:
    """Garbage-collector pauses: how many, how long, and how many fell inside a scan."""

    count: int = 0
    total_ns: int = 0
    max_ns: int = 0
    last_ns: int = 0
    in_scan: int = 0
    by_generation: list[int] = field(default_factory=lambda: [0, 0, 0])

    def add(self, duration_ns: int, generation: int, in_scan: bool) -> None:
        self.count += 1
        self.total_ns += duration_ns
        self.last_ns = duration_ns
        self.max_ns = max(duration_ns, self.max_ns)
        if in_scan:
            self.in_scan += 1
        if 0 <= generation < len(self.by_generation):
            self.by_generation[generation] += 1

    def reset(self) -> None:
        self.count = self.total_ns = self.max_ns = self.last_ns = self.in_scan = 0
        self.by_generation = [0, 0, 0]

    def to_json(self) -> JsonDict:
        return {
            "count": self.count,
            "total_ns": self.total_ns,
            "max_ns": self.max_ns,
            "last_ns": self.last_ns,
            "in_scan": self.in_scan,
            "by_generation": list(self.by_generation),
        }


class TaskStats:
    """Statistics of one cyclic task. ``watchdog`` is set by the executor's watchdog."""

    def __init__(self, name: str, interval_ns: int, priority: int, window: int = DEFAULT_WINDOW) -> None:
        self.name = name
        self.interval_ns = interval_ns
        self.priority = priority
        self.execution = SampleSeries(window)
        self.period = SampleSeries(window)
        self.wake_latency = SampleSeries(window)
        self.gc = GcPauseStats()
        self.watchdog = "off"
        self.scans = 0
        self.overruns = 0
        self.skipped_periods = 0
        self.last_overrun_start_ns: int | None = None
        self._last_start_ns: int | None = None

    def record_scan(self, start_ns: int, end_ns: int, deadline_ns: int, skipped: int, overrun: bool) -> None:
        """One finished scan: ``deadline_ns`` is the release time it served (see docs/executor.md)."""
        self.scans += 1
        self.execution.add(end_ns - start_ns)
        self.wake_latency.add(start_ns - deadline_ns)
        last_start = self._last_start_ns
        if last_start is not None:
            self.period.add(start_ns - last_start)
        self._last_start_ns = start_ns
        if skipped:
            self.skipped_periods += skipped
        if overrun:
            self.overruns += 1
            self.last_overrun_start_ns = start_ns

    def record_on_time(self, scans: int, first_start_ns: int, interval_ns: int) -> None:
        """``scans`` consecutive scans that each started on its release, took no time, skipped
        nothing and did not overrun (virtual time without a cost model), the first at
        ``first_start_ns``: the same as that many ``record_scan`` calls."""
        if scans <= 0:
            return
        self.scans += scans
        self.execution.add_repeated(0, scans)
        self.wake_latency.add_repeated(0, scans)
        last_start = self._last_start_ns
        if last_start is not None:
            self.period.add(first_start_ns - last_start)
        self.period.add_repeated(interval_ns, scans - 1)
        self._last_start_ns = first_start_ns + (scans - 1) * interval_ns

    def break_period_chain(self) -> None:
        """The next scan does not follow the previous one (schedule restarted): no period sample."""
        self._last_start_ns = None

    def reset(self) -> None:
        self.execution.reset()
        self.period.reset()
        self.wake_latency.reset()
        self.gc.reset()
        self.scans = self.overruns = self.skipped_periods = 0
        self.last_overrun_start_ns = None
        self._last_start_ns = None

    def overruns_per_10k(self) -> float | None:
        return self.overruns * 10_000 / self.scans if self.scans else None

    def to_json(self) -> JsonDict:
        return {
            "name": self.name,
            "interval_ns": self.interval_ns,
            "priority": self.priority,
            "scans": self.scans,
            "overruns": self.overruns,
            "overruns_per_10k": self.overruns_per_10k(),
            "skipped_periods": self.skipped_periods,
            "last_overrun_start_ns": self.last_overrun_start_ns,
            "watchdog": self.watchdog,
            "execution_ns": self.execution.summary(),
            "period_ns": self.period.summary(),
            "wake_latency_ns": self.wake_latency.summary(),
            "histogram": {
                "edges_ns": list(HISTOGRAM_EDGES_NS),
                "execution": self.execution.histogram(),
                "wake_latency": self.wake_latency.histogram(),
            },
            "gc": self.gc.to_json(),
        }


class ExecutorStats:
    """All task statistics of one scheduler plus process-wide GC pauses.

    The scheduler sets ``current`` to the running task's statistics for the duration of a scan, so a
    GC pause reported through ``record_gc_pause`` is attributed to the scan it interrupted.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window <= 0:
            raise ValueError(f"statistics window must be > 0, got {window}")
        self.window = window
        self.tasks: dict[str, TaskStats] = {}
        self.gc = GcPauseStats()
        self.current: TaskStats | None = None
        self.resets = 0

    def add_task(self, name: str, interval_ns: int, priority: int) -> TaskStats:
        if name in self.tasks:
            raise ValueError(f"statistics for task {name!r} exist already")
        stats = TaskStats(name, interval_ns, priority, self.window)
        self.tasks[name] = stats
        return stats

    def task(self, name: str) -> TaskStats:
        try:
            return self.tasks[name]
        except KeyError:
            raise KeyError(f"no task named {name!r} (tasks: {', '.join(self.tasks) or 'none'})") from None

    def record_gc_pause(self, duration_ns: int, generation: int) -> None:
        current = self.current
        self.gc.add(duration_ns, generation, current is not None)
        if current is not None:
            current.gc.add(duration_ns, generation, True)

    def reset(self) -> None:
        for stats in self.tasks.values():
            stats.reset()
        self.gc.reset()
        self.resets += 1

    def to_json(self) -> JsonDict:
        return {
            "tasks": {name: stats.to_json() for name, stats in self.tasks.items()},
            "gc": self.gc.to_json(),
            "resets": self.resets,
        }


def format_ns(value: object) -> str:
    """Human form of a ns figure from ``to_json`` ("37 µs", "1.24 ms", "-")."""
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= _MS:
        return f"{value / _MS:.2f} ms"
    return f"{value / _US:.0f} µs"
