"""Time stamps of the site meter's part of a setpoint's path, for the latency benches
(site_rehearsal_latency.py, everest_setpoint_latency.py): when the meter's worker publishes a grid
frequency sample and when the scan reads it, on CLOCK_MONOTONIC (``time.perf_counter_ns``)."""

from __future__ import annotations

import time
from typing import Any


def stamp_meter_path(meter: Any, published: list[tuple[int, float]], read: list[tuple[int, float]]) -> None:
    """Wraps the meter driver's hand-over and ``read_inputs`` so that each appends
    ``(stamp, grid_hz)`` to ``published`` and ``read``."""
    handover = meter._worker._handover
    publish = handover.publish

    def publishing(point: Any, quality: Any, value: Any = None, problem: str = "") -> None:
        publish(point, quality, value, problem)
        if point.name == "grid_hz" and isinstance(value, float):
            published.append((time.perf_counter_ns(), value))

    handover.publish = publishing
    read_inputs = meter.read_inputs

    def reading(now_ns: int) -> Any:
        samples = read_inputs(now_ns)
        sample = samples.get("main.grid_hz")
        if sample is not None and isinstance(sample.value, float):
            read.append((time.perf_counter_ns(), sample.value))
        return samples

    meter.read_inputs = reading
