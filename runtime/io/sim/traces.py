"""Recorded frequency/voltage traces from CSV files, and their resampling to the scan period.

Known formats fill in column names (``TRACE_FORMATS``); a generic CSV names its columns itself.
Empty cells and "NaN" give NaN. Resampling interpolates linearly between rows; a sample between a
NaN row and its neighbour is NaN (the meter had no valid reading there), a sample exactly on a valid
row takes that row's value, and after the last row the last value holds.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from ..config_errors import ConfigError
from .scenario import TraceSpec

FloatArray = npt.NDArray[np.float64]

# name -> (frequency column, voltage column, time column, time format)
TRACE_FORMATS: dict[str, tuple[str, str | None, str, str]] = {
    "toledo": ("AnalyzerL1Frequency", "AnalyzerL1PhaseVoltage", "time", "%d-%b-%Y %H:%M:%S"),
}


@dataclass(frozen=True)
class Trace:
    """A trace with times in seconds relative to the playback start (may be negative before it)."""

    t_s: FloatArray
    hz: FloatArray
    voltage_v: FloatArray | None

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1]) if len(self.t_s) else 0.0

    def sample(self, t_s: FloatArray) -> tuple[FloatArray, FloatArray | None]:
        hz = resample(self.t_s, self.hz, t_s)
        volts = None if self.voltage_v is None else resample(self.t_s, self.voltage_v, t_s)
        return hz, volts


def resample(row_t: FloatArray, row_v: FloatArray, t_s: FloatArray) -> FloatArray:
    """Linear interpolation where a NaN row spoils the intervals on both sides of it."""
    if len(row_t) == 1:
        return np.full(len(t_s), row_v[0])
    t = np.clip(t_s, row_t[0], row_t[-1])
    left = np.clip(np.searchsorted(row_t, t, side="right") - 1, 0, len(row_t) - 2)
    span = row_t[left + 1] - row_t[left]
    weight = (t - row_t[left]) / span
    with np.errstate(invalid="ignore"):
        mixed = row_v[left] * (1.0 - weight) + row_v[left + 1] * weight
    on_left = weight <= 0.0
    on_right = weight >= 1.0
    return np.where(on_left, row_v[left], np.where(on_right, row_v[left + 1], mixed))


def _cell_value(text: str, file: str, row: int, column: str) -> float:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "na", "null"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ConfigError(file, f"row {row}, column {column}", f"not a number: {text!r}") from None


def parse_time(text: str, time_format: str) -> float:
    """Seconds of a trace time cell (``ValueError`` when it does not match ``time_format``)."""
    text = text.strip()
    if time_format == "seconds":
        return float(text)
    stamp = datetime.strptime(text, time_format)
    if stamp.tzinfo is None:  # read naive times as UTC so results do not depend on the machine's zone
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _time_value(text: str, spec: TraceSpec, row: int) -> float:
    try:
        return parse_time(text, spec.time_format)
    except ValueError:
        raise ConfigError(
            spec.file,
            f"row {row}, column {spec.time_column}",
            f"time {text!r} does not match format {spec.time_format!r}",
        ) from None


def load_trace(spec: TraceSpec, scenario_file: str = "", key: str = "") -> Trace:
    """Read the CSV named by ``spec``; errors name the file, the row/column and the problem.

    Problems with the playback window (``start``) are reported against ``scenario_file``/``key``.
    """
    try:
        with open(spec.file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(spec.file, "", f"cannot read trace: {exc.strerror or exc}") from None
    wanted = [spec.time_column, spec.frequency_column]
    if spec.voltage_column is not None:
        wanted.append(spec.voltage_column)
    for column in wanted:
        if column not in header:
            raise ConfigError(spec.file, "header", f"no column {column!r} (columns: {', '.join(header)})")
    i_time = header.index(spec.time_column)
    i_hz = header.index(spec.frequency_column)
    i_v = header.index(spec.voltage_column) if spec.voltage_column is not None else -1
    times, freqs, volts = [], [], []
    for number, row in enumerate(rows, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ConfigError(spec.file, f"row {number}", f"{len(row)} cells, header has {len(header)}")
        times.append(_time_value(row[i_time], spec, number))
        freqs.append(_cell_value(row[i_hz], spec.file, number, spec.frequency_column))
        if i_v >= 0:
            volts.append(_cell_value(row[i_v], spec.file, number, spec.voltage_column or ""))
    if not times:
        raise ConfigError(spec.file, "", "the trace has no data rows")
    t = np.array(times)
    if np.any(np.diff(t) <= 0):
        bad = int(np.argmax(np.diff(t) <= 0)) + 3
        raise ConfigError(spec.file, f"row {bad}", "time does not increase")
    origin = float(t[0])
    if spec.start is not None:
        where = f"{key}.start" if key else "start"
        try:
            origin = parse_time(spec.start, spec.time_format)
        except ValueError:
            raise ConfigError(
                scenario_file or spec.file, where, f"{spec.start!r} does not match {spec.time_format!r}"
            ) from None
        if not t[0] <= origin <= t[-1]:
            raise ConfigError(scenario_file or spec.file, where, f"{spec.start!r} is outside the trace")
    voltage = np.array(volts) * spec.voltage_scale if i_v >= 0 else None
    return Trace(t - origin - spec.offset_s, np.array(freqs), voltage)
