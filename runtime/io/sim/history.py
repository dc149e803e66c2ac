"""Time series recorded by the simulation, one row per scan period, for reports and the evaluator.

Scalar series are kept for every row. The per-car power matrix is float32 and thinned to every
``per_ev_stride``-th row so that a long run with 1000 cars stays within a fixed memory budget.
At most ``max_rows`` rows are kept (the most recent ones).

What the driver knows every scan (grid, meter, site and fleet power, setpoint) is given per row to
``append``, which keeps it in an ``array('d')`` until the next ``fill`` or read writes the rows into
the columns at once (a numpy store per value cost more than the rest of a simulation step); what the
fleet model computes in closed form (time, SoC mean/min, connected cars, per-car power) is filled in
later for a batch of pending rows by ``fill``, which is much cheaper than per row.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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
APPENDED = (
    "grid_hz",
    "meter_hz",
    "meter_quality",
    "voltage_v",
    "site_power_w",
    "fleet_power_w",
    "setpoint_w",
)
# the last appended row's setpoint_w, as an index from the end of the appended values
_SETPOINT_FROM_END = APPENDED.index("setpoint_w") - len(APPENDED)


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
    lowest_soc_pct: FloatArray  # per car: the lowest SoC of any row it was connected in (NaN: never)

    def series(self, quantity: str) -> FloatArray:
        value = getattr(self, quantity)
        assert isinstance(value, np.ndarray)
        return value

    def __len__(self) -> int:
        return len(self.t_s)


class HistoryRecorder:
    """Append-only storage that grows by doubling up to ``max_rows``; beyond that the oldest half is
    dropped, so an endless real-time run keeps the recent past in bounded memory.

    Rows are appended with their per-scan values; the rows not yet filled (``pending``) must be
    filled before more than a quarter of ``max_rows`` of them pile up (``fill_limit``)."""

    def __init__(self, expected_rows: int, n_evs: int, max_rows: int | None = None) -> None:
        self.max_rows = max(16, max_rows if max_rows is not None else expected_rows)
        rows = min(max(16, expected_rows), self.max_rows)
        self.rows = 0  # rows held now
        self.appended = 0  # rows ever appended
        self.filled = 0  # rows ever filled (the ones after that are pending)
        self.fill_limit = max(1, self.max_rows // 4)
        self._scalars = {name: np.full(rows, math.nan) for name in SCALARS}
        self._appended = array("d")  # rows appended, not yet in the columns (len(APPENDED) a row)
        self.n_evs = n_evs
        self.per_ev_stride = max(1, math.ceil(rows * max(n_evs, 1) / PER_EV_BUDGET))
        ev_rows = rows // self.per_ev_stride + 1
        # the whole scenario fits; a run beyond it keeps at most the budget (or max_rows)
        budget_rows = PER_EV_BUDGET // max(n_evs, 1)
        self.max_ev_rows = max(ev_rows, min(self.max_rows // self.per_ev_stride + 1, budget_rows))
        self._ev_t = np.zeros(ev_rows)
        self._ev_power = np.zeros((ev_rows, n_evs), dtype=np.float32)
        self._ev_rows = 0

    def _make_room(self) -> None:
        capacity = len(self._scalars["t_s"])
        if capacity < self.max_rows:
            size = min(2 * capacity, self.max_rows)
            for name, array in self._scalars.items():
                grown = np.full(size, math.nan)
                grown[:capacity] = array
                self._scalars[name] = grown
            return
        keep = self.rows // 2
        assert self.appended - self.filled <= keep, "fill pending rows before dropping old ones"
        for array in self._scalars.values():
            array[:keep] = array[self.rows - keep : self.rows]
        self.rows = keep

    def _make_ev_room(self, needed: int) -> None:
        while self._ev_rows + needed > len(self._ev_t):
            capacity = len(self._ev_t)
            if capacity < self.max_ev_rows:
                size = max(min(2 * capacity, self.max_ev_rows), self._ev_rows + needed)
                self._ev_t = np.concatenate([self._ev_t, np.zeros(size - capacity)])
                extra = np.zeros((size - capacity, self.n_evs), dtype=np.float32)
                self._ev_power = np.concatenate([self._ev_power, extra])
                continue
            keep = min(self._ev_rows // 2, capacity - needed)
            self._ev_t[:keep] = self._ev_t[self._ev_rows - keep : self._ev_rows]
            self._ev_power[:keep] = self._ev_power[self._ev_rows - keep : self._ev_rows]
            self._ev_rows = keep

    def append(
        self,
        grid_hz: float,
        meter_hz: float,
        meter_quality: float,
        voltage_v: float,
        site_power_w: float,
        fleet_power_w: float,
        setpoint_w: float,
    ) -> None:
        """A new row with the values known in its scan (the rest comes with ``fill``)."""
        self._appended.extend(
            (grid_hz, meter_hz, meter_quality, voltage_v, site_power_w, fleet_power_w, setpoint_w)
        )
        self.appended += 1

    def _store_appended(self) -> None:
        """Write the appended rows into the columns, making room as ``append`` row by row would."""
        values = self._appended
        if not values:
            return
        block = np.array(values, dtype=np.float64).reshape(-1, len(APPENDED))  # a copy
        count = block.shape[0]
        done = 0
        while done < count:
            if self.rows == len(self._scalars["t_s"]):
                self._make_room()
            take = min(count - done, len(self._scalars["t_s"]) - self.rows)
            for index, name in enumerate(APPENDED):
                self._scalars[name][self.rows : self.rows + take] = block[done : done + take, index]
            self.rows += take
            done += take
        del values[:]

    def set_last_setpoint(self, value: float) -> None:
        """The last row's ``setpoint_w`` (every scan: the setpoint total is known after the step)."""
        values = self._appended
        if values:
            values[_SETPOINT_FROM_END] = value
        elif self.rows:
            self._scalars["setpoint_w"][self.rows - 1] = value

    @property
    def pending(self) -> int:
        """Rows appended but not filled yet: the last ``pending`` rows, ever-indices ``filled ..``."""
        return self.appended - self.filled

    def pending_per_ev_rows(self) -> IntArray:
        """Ever-indices of the pending rows that keep per-car power (every ``per_ev_stride``-th)."""
        stride = self.per_ev_stride
        first = -(-self.filled // stride) * stride
        return np.arange(first, self.appended, stride, dtype=np.int64)

    def fill(
        self,
        t_s: FloatArray,
        soc_mean_pct: FloatArray,
        soc_min_pct: FloatArray,
        connected: FloatArray,
        per_ev_power_w: FloatArray,
    ) -> None:
        """Complete the pending rows; ``per_ev_power_w`` has one row per ``pending_per_ev_rows()``."""
        count = self.pending
        if not count:
            return
        self._store_appended()
        start = self.rows - count
        self._scalars["t_s"][start : self.rows] = t_s
        self._scalars["soc_mean_pct"][start : self.rows] = soc_mean_pct
        self._scalars["soc_min_pct"][start : self.rows] = soc_min_pct
        self._scalars["connected"][start : self.rows] = connected
        ev_rows = self.pending_per_ev_rows()
        if len(ev_rows):
            self._make_ev_room(len(ev_rows))
            end = self._ev_rows + len(ev_rows)
            self._ev_t[self._ev_rows : end] = t_s[ev_rows - self.filled]
            self._ev_power[self._ev_rows : end] = per_ev_power_w
            self._ev_rows = end
        self.filled = self.appended

    def column(self, name: str) -> FloatArray:
        self._store_appended()
        return self._scalars[name][: self.rows].copy()

    def per_ev(self) -> tuple[FloatArray, npt.NDArray[np.float32]]:
        return self._ev_t[: self._ev_rows].copy(), self._ev_power[: self._ev_rows].copy()
