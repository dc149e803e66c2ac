"""The grid signal of a scenario: frequency (Hz) and phase voltage (V) as functions of scenario time.

Segments (const, steps, ramp, noise, trace, event) follow each other; a value a segment leaves open
continues from where the previous segment ended. Gaussian noise is drawn once per segment from
``numpy.random.default_rng([seed, segment index, channel])`` on the scan-period grid, so a sample
depends only on the seed and the time, never on how often or in which chunks the model is asked.
"""

from __future__ import annotations

import math
import os

import numpy as np
import numpy.typing as npt

from .events import EVENTS
from .scenario import Scenario, Segment, TraceSpec
from .traces import Trace, load_trace

FloatArray = npt.NDArray[np.float64]

_trace_cache: dict[tuple[TraceSpec, int], Trace] = {}


def cached_trace(spec: TraceSpec, scenario_file: str = "", key: str = "") -> Trace:
    """``load_trace`` once per file version (scenarios are loaded, then built into models)."""
    try:
        stamp = os.stat(spec.file).st_mtime_ns
    except OSError:
        stamp = -1
    cache_key = (spec, stamp)
    if cache_key not in _trace_cache:
        _trace_cache[cache_key] = load_trace(spec, scenario_file, key)
    return _trace_cache[cache_key]


class _ResolvedSegment:
    """A segment with its open values filled in and its noise drawn."""

    def __init__(
        self, segment: Segment, index: int, scenario: Scenario, start_hz: float, start_v: float
    ) -> None:
        self.segment = segment
        self.start_s = segment.start_s
        self.hz = segment.hz if segment.hz is not None else start_hz
        self.voltage_v = segment.voltage_v if segment.voltage_v is not None else start_v
        self.trace = cached_trace(segment.trace) if segment.trace is not None else None
        self.length_s = (
            segment.duration_s if segment.duration_s is not None else scenario.duration_s - segment.start_s
        )
        self.dt = scenario.scan_period_s
        self.nominal_hz = scenario.nominal_hz
        steps = max(1, math.ceil(self.length_s / self.dt) + 1)
        self.noise_hz = self._noise(scenario.seed, index, 0, segment.sigma_hz, steps)
        self.noise_v = self._noise(scenario.seed, index, 1, segment.sigma_v, steps)

    @staticmethod
    def _noise(seed: int, index: int, channel: int, sigma: float, steps: int) -> FloatArray | None:
        if sigma <= 0:
            return None
        return np.random.default_rng([seed, index, channel]).normal(0.0, sigma, steps)

    def clean(self, rel: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Frequency and voltage without noise at times ``rel`` (s) since the segment start."""
        seg = self.segment
        if self.length_s > 0:
            rel = np.clip(rel, 0.0, self.length_s)
        volts = np.full(len(rel), self.voltage_v)
        if seg.kind in ("const", "noise"):
            hz = np.full(len(rel), self.hz)
        elif seg.kind == "ramp":
            to_hz = seg.to_hz if seg.to_hz is not None else self.hz
            share = rel / self.length_s if self.length_s > 0 else np.ones(len(rel))
            hz = self.hz + (to_hz - self.hz) * share
        elif seg.kind == "steps":
            offsets = np.array([p[0] for p in seg.points])
            values = np.array([self.hz, *[p[1] for p in seg.points]])
            hz = values[np.searchsorted(offsets, rel + 1e-9, side="right")]
        elif seg.kind == "event":
            profile = EVENTS[seg.event or ""]
            base = seg.hz if seg.hz is not None else self.nominal_hz
            hz = profile.sample(rel) - 50.0 + base
        else:
            assert self.trace is not None
            hz, trace_v = self.trace.sample(rel)
            if trace_v is not None:
                volts = trace_v
        return hz, volts

    def sample(self, rel: FloatArray) -> tuple[FloatArray, FloatArray]:
        hz, volts = self.clean(rel)
        if self.noise_hz is not None or self.noise_v is not None:
            index = np.clip((rel / self.dt + 1e-9).astype(np.int64), 0, None)
            if self.noise_hz is not None:
                hz = hz + self.noise_hz[np.minimum(index, len(self.noise_hz) - 1)]
            if self.noise_v is not None:
                volts = volts + self.noise_v[np.minimum(index, len(self.noise_v) - 1)]
        return hz, volts

    def end_values(self) -> tuple[float, float]:
        """Where the segment ends without noise (the next segment's default start values)."""
        hz, volts = self.clean(np.array([max(self.length_s, 0.0)]))
        end_hz, end_v = float(hz[0]), float(volts[0])
        if self.trace is not None and not math.isfinite(end_hz):
            finite = self.trace.hz[np.isfinite(self.trace.hz)]
            end_hz = float(finite[-1]) if len(finite) else self.hz
        if not math.isfinite(end_v):
            end_v = self.voltage_v
        return end_hz, end_v


class GridModel:
    """Frequency and voltage of the grid at any scenario time (vectorised over time)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.segments: list[_ResolvedSegment] = []
        hz, volts = scenario.nominal_hz, scenario.nominal_voltage_v
        for index, segment in enumerate(scenario.segments):
            resolved = _ResolvedSegment(segment, index, scenario, hz, volts)
            self.segments.append(resolved)
            hz, volts = resolved.end_values()
        self._starts = np.array([s.start_s for s in self.segments])

    def sample(self, t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(frequency Hz, voltage V) at scenario times ``t_s``."""
        t_s = np.asarray(t_s, dtype=np.float64)
        hz = np.full(len(t_s), self.scenario.nominal_hz)
        volts = np.full(len(t_s), self.scenario.nominal_voltage_v)
        if not self.segments:
            return hz, volts
        owner = np.clip(np.searchsorted(self._starts, t_s + 1e-9, side="right") - 1, 0, None)
        for index in np.unique(owner):
            mask = owner == index
            segment = self.segments[int(index)]
            hz[mask], volts[mask] = segment.sample(t_s[mask] - segment.start_s)
        return hz, volts

    def at(self, t_s: float) -> tuple[float, float]:
        hz, volts = self.sample(np.array([t_s]))
        return float(hz[0]), float(volts[0])
