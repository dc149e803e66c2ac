"""Scan-rate samples of the reported variables, collected into windows and summarised with numpy.

``WindowRecorder`` runs on the scan thread: ``record(now_ns, values)`` writes one row into a
preallocated numpy buffer (no allocation, no lock, no I/O). When the window period (measured on the
executor's clock, ``now_ns``) has elapsed, the full buffer is handed to the backhaul's worker and an
empty one from a small pool takes its place. If the worker has not returned any buffer (it is stalled
on a slow disk, say), the recorder drops that window and counts it rather than wait or allocate.

``WindowSummariser`` runs on the worker: min/max/mean/last per variable and, for power variables, the
energy charged and discharged (sample-and-hold integration of signed power, P > 0 charges). Summaries
cover GOOD samples only: the process image hands the backhaul NaN for an input no device has
delivered (not GOOD), and ``left_out`` says how many scans of the window were left out.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .config import ReportVariable

NS_PER_HOUR = 3_600_000_000_000
DEFAULT_POOL = 4


class WindowBuffer:
    """Rows of one window: scan times and one column per reported path."""

    __slots__ = ("after_drop", "bad_rows", "count", "end_ns", "start_ns", "times", "values")

    def __init__(self, capacity: int, columns: int) -> None:
        self.times: npt.NDArray[np.int64] = np.zeros(capacity, dtype=np.int64)
        self.values: npt.NDArray[np.float64] = np.zeros((capacity, columns), dtype=np.float64)
        self.count = 0
        self.bad_rows = 0
        self.start_ns = 0
        self.end_ns = 0
        self.after_drop = False

    def reset(self, start_ns: int, end_ns: int) -> None:
        self.count = 0
        self.bad_rows = 0
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.after_drop = False


class WindowRecorder:
    """The scan-thread side. ``hand_over`` must not block (e.g. ``queue.SimpleQueue.put``)."""

    def __init__(
        self,
        paths: tuple[str, ...],
        period_ns: int,
        capacity: int,
        hand_over: Callable[[WindowBuffer], None],
        pool_size: int = DEFAULT_POOL,
    ) -> None:
        if period_ns <= 0 or capacity < 2:
            raise ValueError("period and capacity must be positive")
        self.paths = paths
        self.period_ns = period_ns
        self.capacity = capacity
        self._hand_over = hand_over
        self._free: deque[WindowBuffer] = deque(WindowBuffer(capacity, len(paths)) for _ in range(pool_size))
        self._current: WindowBuffer | None = None
        self._getter: Callable[[Mapping[str, object]], Any] | None = (
            operator.itemgetter(*paths) if paths else None
        )
        self.dropped_windows = 0
        self.bad_samples = 0
        self.last_now_ns = 0

    def record(self, now_ns: int, values: Mapping[str, object]) -> None:
        """Append one scan's values. O(number of paths), never blocks."""
        current = self._current
        if current is None or now_ns >= current.end_ns or current.count >= self.capacity:
            current = self._roll(now_ns)
        row = current.count
        current.times[row] = now_ns
        if self._getter is not None:
            try:
                current.values[row] = self._getter(values)
            except (KeyError, TypeError, ValueError):
                current.values[row] = np.nan
                current.bad_rows += 1
                self.bad_samples += 1
        current.count = row + 1
        self.last_now_ns = now_ns

    def _aligned(self, now_ns: int) -> int:
        return now_ns - now_ns % self.period_ns

    def _roll(self, now_ns: int) -> WindowBuffer:
        current = self._current
        if current is None:
            fresh = self._free.popleft() if self._free else WindowBuffer(self.capacity, len(self.paths))
            start = self._aligned(now_ns)
            fresh.reset(start, start + self.period_ns)
            self._current = fresh
            return fresh
        if now_ns >= current.end_ns:
            close_at = current.end_ns
            gap = now_ns >= current.end_ns + self.period_ns
            next_start = self._aligned(now_ns) if gap else current.end_ns
            next_end = next_start + self.period_ns
        else:  # more scans than the buffer holds: split the window here
            close_at = now_ns
            next_start, next_end = now_ns, current.end_ns
        try:
            fresh = self._free.popleft()
        except IndexError:
            self.dropped_windows += 1
            current.reset(next_start, next_end)
            current.after_drop = True
            return current
        current.end_ns = close_at
        self._hand_over(current)
        fresh.reset(next_start, next_end)
        self._current = fresh
        return fresh

    def close_partial(self) -> WindowBuffer | None:
        """At stop: the current window, ending at the last scan, or None when it holds no scan.
        The caller owns the returned buffer (call ``give_back`` when done)."""
        current = self._current
        self._current = None
        if current is None:
            return None
        if current.count == 0:
            self._free.append(current)
            return None
        current.end_ns = int(current.times[current.count - 1])
        return current

    def give_back(self, buffer: WindowBuffer) -> None:
        """The worker returns a summarised buffer to the pool (deque.append is thread-safe)."""
        self._free.append(buffer)


@dataclass
class _Column:
    variable: ReportVariable
    first: int
    last: int  # exclusive


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


class WindowSummariser:
    """The worker side: turns a full ``WindowBuffer`` into the ``values`` object of a report."""

    def __init__(self, variables: tuple[ReportVariable, ...]) -> None:
        self._columns: list[_Column] = []
        first = 0
        for variable in variables:
            self._columns.append(_Column(variable, first, first + len(variable.paths)))
            first += len(variable.paths)
        self._carry: dict[str, float] = {}
        self._previous_end_ns: int | None = None

    def _series(self, buffer: WindowBuffer, column: _Column) -> npt.NDArray[np.float64]:
        block = buffer.values[: buffer.count, column.first : column.last]
        if block.shape[1] == 1:
            return block[:, 0]
        valid = ~np.isnan(block)
        reduce = column.variable.reduce
        if reduce == "count_nonzero":
            counts: npt.NDArray[np.float64] = (valid & (block != 0)).sum(axis=1, dtype=np.float64)
            return counts
        any_valid = valid.any(axis=1)
        filled = np.where(valid, block, 0.0)
        if reduce == "sum":
            result = filled.sum(axis=1)
        elif reduce == "mean":
            result = filled.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        elif reduce == "min":
            result = np.where(valid, block, np.inf).min(axis=1)
        else:
            result = np.where(valid, block, -np.inf).max(axis=1)
        return np.where(any_valid, result, np.nan)

    def _energy(
        self, buffer: WindowBuffer, series: npt.NDArray[np.float64], carry: float | None
    ) -> dict[str, float]:
        times = buffer.times[: buffer.count]
        ends = np.empty_like(times)
        ends[:-1] = times[1:]
        ends[-1] = max(buffer.end_ns, int(times[-1]))
        held = np.maximum(ends - times, 0).astype(np.float64)
        power = np.nan_to_num(series, nan=0.0)
        charged = float(np.sum(np.maximum(power, 0.0) * held))
        discharged = float(np.sum(np.maximum(-power, 0.0) * held))
        if carry is not None and np.isfinite(carry):
            before_first = float(max(int(times[0]) - buffer.start_ns, 0))
            charged += max(carry, 0.0) * before_first
            discharged += max(-carry, 0.0) * before_first
        return {"charged_wh": charged / NS_PER_HOUR, "discharged_wh": discharged / NS_PER_HOUR}

    def summarise(self, buffer: WindowBuffer) -> dict[str, dict[str, object]]:
        """Statistics of every variable over ``buffer`` (which must hold at least one scan)."""
        contiguous = (
            not buffer.after_drop
            and self._previous_end_ns is not None
            and buffer.start_ns == self._previous_end_ns
        )
        result: dict[str, dict[str, object]] = {}
        for column in self._columns:
            name = column.variable.name
            series = self._series(buffer, column)
            stats: dict[str, object] = {}
            finite = series[np.isfinite(series)]
            left_out = int(series.size - finite.size)
            if left_out:  # scans whose value no device had delivered (or not a number): not summarised
                stats["left_out"] = left_out
            for stat in column.variable.stats:
                if stat == "min":
                    stats["min"] = float(finite.min()) if finite.size else None
                elif stat == "max":
                    stats["max"] = float(finite.max()) if finite.size else None
                elif stat == "mean":
                    stats["mean"] = float(finite.mean()) if finite.size else None
                elif stat == "last":
                    stats["last"] = _finite_or_none(series[-1])
                elif stat == "energy":
                    stats["energy"] = self._energy(
                        buffer, series, self._carry.get(name) if contiguous else None
                    )
            result[name] = stats
            self._carry[name] = float(series[-1])
        self._previous_end_ns = buffer.end_ns
        return result
