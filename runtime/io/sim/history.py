"""Time series recorded by the simulation, one row per scan period, for reports and the evaluator.

Scalar series are kept for every row. The per-car power matrix is float32 and thinned to every
``per_ev_stride``-th row so that a long run with 1000 cars stays within a fixed memory budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SCALARS = (
    "t_s",
    "grid_hz",
    "meter_hz",
    "meter_quality",
    "voltage_v",
    "site_power_w",
    "fleet_power_w",
    "setpoint_w",
    "soc_mean_pct",
    "soc_min_pct",
    "connected",
)
PER_EV_BUDGET = 4_000_000  # float32 values (16 MB)


@dataclass(frozen=True)
class SimHistory:
    """What happened in a run. ``setpoint_w`` is the sum of the setpoints the program wrote to the
    connected cars in that scan; ``meter_hz`` is what the meter reported (NaN/x10 included) and
    ``meter_quality`` its ``Quality`` value; ``grid_hz`` is the true frequency."""

    scan_period_s: float
    t_s: FloatArray
    grid_hz: FloatArray
    meter_hz: FloatArray
    meter_quality: FloatArray
    voltage_v: FloatArray
    site_power_w: FloatArray
    fleet_power_w: FloatArray
    setpoint_w: FloatArray
    soc_mean_pct: FloatArray
    soc_min_pct: FloatArray
    connected: FloatArray
    per_ev_t_s: FloatArray
    per_ev_power_w: npt.NDArray[np.float32]  # rows x cars
    energy_charged_wh: FloatArray  # per car, whole run
    energy_discharged_wh: FloatArray
    below_floor_discharge_wh: FloatArray
    floor_discharge_requests: npt.NDArray[np.int64]
    min_soc_pct: FloatArray  # per car: the V2X floor
    final_soc_pct: FloatArray

    def series(self, quantity: str) -> FloatArray:
        value = getattr(self, quantity)
        assert isinstance(value, np.ndarray)
        return value

    def __len__(self) -> int:
        return len(self.t_s)


class HistoryRecorder:
    """Append-only storage that grows by doubling."""

    def __init__(self, expected_rows: int, n_evs: int) -> None:
        rows = max(16, expected_rows)
        self.rows = 0
        self._scalars = {name: np.full(rows, math.nan) for name in SCALARS}
        self.n_evs = n_evs
        self.per_ev_stride = max(1, math.ceil(rows * max(n_evs, 1) / PER_EV_BUDGET))
        ev_rows = rows // self.per_ev_stride + 1
        self._ev_t = np.zeros(ev_rows)
        self._ev_power = np.zeros((ev_rows, n_evs), dtype=np.float32)
        self._ev_rows = 0

    def _grow(self) -> None:
        for name, array in self._scalars.items():
            self._scalars[name] = np.concatenate([array, np.full(len(array), math.nan)])

    def _grow_ev(self) -> None:
        self._ev_t = np.concatenate([self._ev_t, np.zeros(len(self._ev_t))])
        self._ev_power = np.concatenate([self._ev_power, np.zeros_like(self._ev_power)])

    def append(self, values: dict[str, float], per_ev_power: FloatArray) -> None:
        if self.rows == len(self._scalars["t_s"]):
            self._grow()
        for name in SCALARS:
            self._scalars[name][self.rows] = values[name]
        if self.rows % self.per_ev_stride == 0:
            if self._ev_rows == len(self._ev_t):
                self._grow_ev()
            self._ev_t[self._ev_rows] = values["t_s"]
            self._ev_power[self._ev_rows] = per_ev_power
            self._ev_rows += 1
        self.rows += 1

    def set_last(self, name: str, value: float) -> None:
        if self.rows:
            self._scalars[name][self.rows - 1] = value

    def column(self, name: str) -> FloatArray:
        return self._scalars[name][: self.rows].copy()

    def per_ev(self) -> tuple[FloatArray, npt.NDArray[np.float32]]:
        return self._ev_t[: self._ev_rows].copy(), self._ev_power[: self._ev_rows].copy()
