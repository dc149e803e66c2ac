"""The EV fleet: every car's power follows its setpoint through a first-order lag within its limits,
and its state of charge integrates the energy. All cars are stepped at once with numpy arrays.

Sign convention: P > 0 charges the car, P < 0 discharges it. Per step the setpoint is turned into a
reachable target: clamped to the car's maximum, 0 inside the dead zone between 0 and the car's
minimum, 0 for discharging a car that is not bidirectional, at its SoC floor (when the car enforces
it) or disconnected, and 0 for charging a full battery. Power then moves toward the target with
``p(t+h) = target + (p(t) - target) * exp(-h / lag)``; the energy of the step is the exact integral
of that curve, cut where the battery reaches 100 % or the floor (the car then stops at once).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .scenario import EvSpec, FleetSpec

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _column(evs: tuple[EvSpec, ...], name: str, missing: float = math.inf) -> FloatArray:
    values = [getattr(ev, name) for ev in evs]
    return np.array([missing if v is None else float(v) for v in values], dtype=np.float64)


class FleetModel:
    """State of N cars as arrays; ``setpoint_w`` is written by the driver, ``step`` advances time."""

    def __init__(self, fleet: FleetSpec, nominal_voltage_v: float) -> None:
        evs = fleet.evs
        self.n = len(evs)
        self.capacity_wh = _column(evs, "capacity_kwh") * 1000.0
        self.p_charge_max = _column(evs, "p_charge_max_w")
        self.p_charge_min = _column(evs, "p_charge_min_w")
        self.p_discharge_max = _column(evs, "p_discharge_max_w")
        self.p_discharge_min = _column(evs, "p_discharge_min_w")
        self.bidirectional = np.array([ev.bidirectional for ev in evs], dtype=np.bool_)
        self.min_soc = _column(evs, "min_soc_pct")
        self.target_soc = _column(evs, "target_soc_pct")
        self.arrive_s = _column(evs, "arrive_s")
        self.depart_s = _column(evs, "depart_s")
        self.departure_time_s = _column(evs, "departure_time_s", missing=math.nan)
        self.lag_s = _column(evs, "lag_s")
        self.enforce_floor = fleet.car_enforces_floor
        self.hard_floor = self.min_soc if fleet.car_enforces_floor else np.zeros(self.n)
        self.trip_below_v = fleet.trip_below_voltage_pu * nominal_voltage_v

        self.soc_pct = _column(evs, "soc_pct")
        self.power_w = np.zeros(self.n)
        self.setpoint_w = np.zeros(self.n)
        self.connected = self._connected_at(0.0)
        self.energy_charged_wh = np.zeros(self.n)
        self.energy_discharged_wh = np.zeros(self.n)
        self.below_floor_discharge_wh = np.zeros(self.n)  # discharged while under the V2X floor
        self.floor_discharge_requests = np.zeros(self.n, dtype=np.int64)  # scans asking for it
        self._alpha_cache: dict[float, tuple[FloatArray, FloatArray]] = {}

    def _connected_at(self, t_s: float) -> BoolArray:
        return (self.arrive_s <= t_s + 1e-9) & (t_s + 1e-9 < self.depart_s)

    def _lag_factors(self, h: float) -> tuple[FloatArray, FloatArray]:
        """(decay over h, mean weight of the decaying part over h) for every car's lag."""
        if h not in self._alpha_cache:
            tau = self.lag_s
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = np.where(tau > 0, np.exp(-h / np.where(tau > 0, tau, 1.0)), 0.0)
                mean = np.where(tau > 0, tau / h * (1.0 - alpha), 0.0)
            self._alpha_cache[h] = (alpha, mean)
        return self._alpha_cache[h]

    def targets(self, voltage_v: float) -> FloatArray:
        """The power each car can actually run at for its current setpoint."""
        sp = self.setpoint_w
        charge = np.where(sp < self.p_charge_min, 0.0, np.minimum(sp, self.p_charge_max))
        charge = np.where(self.soc_pct >= 100.0, 0.0, charge)
        magnitude = -sp
        discharge = np.minimum(magnitude, self.p_discharge_max)
        discharge = np.where(magnitude < self.p_discharge_min, 0.0, discharge)
        discharge = np.where(self.bidirectional & (self.soc_pct > self.hard_floor), discharge, 0.0)
        target = np.where(sp > 0, charge, np.where(sp < 0, -discharge, 0.0))
        if self.trip_below_v > 0 and voltage_v < self.trip_below_v:
            target = np.zeros(self.n)
        return np.where(self.connected, target, 0.0)

    def step(self, t_s: float, h: float, voltage_v: float) -> None:
        """Advance from ``t_s`` to ``t_s + h`` with the setpoints in ``setpoint_w``."""
        at_floor = self.connected & self.bidirectional & (self.soc_pct <= self.min_soc + 1e-9)
        self.floor_discharge_requests += at_floor & (self.setpoint_w < 0)
        target = self.targets(voltage_v)
        tripped = self.trip_below_v > 0 and voltage_v < self.trip_below_v
        if tripped:
            self.power_w[:] = 0.0
        alpha, mean = self._lag_factors(h)
        start = self.power_w
        new_power = target + (start - target) * alpha
        energy_wh = (target + (start - target) * mean) * h / 3600.0
        room_up = np.maximum(100.0 - self.soc_pct, 0.0) / 100.0 * self.capacity_wh
        room_down = -np.maximum(self.soc_pct - self.hard_floor, 0.0) / 100.0 * self.capacity_wh
        hit = (energy_wh > room_up) | (energy_wh < room_down)
        energy_wh = np.clip(energy_wh, room_down, room_up)
        new_power = np.where(hit | ~self.connected, 0.0, new_power)
        energy_wh = np.where(self.connected, energy_wh, 0.0)

        under_before = self.soc_pct < self.min_soc - 1e-9
        self.soc_pct = np.clip(self.soc_pct + energy_wh / self.capacity_wh * 100.0, 0.0, 100.0)
        under_after = self.soc_pct < self.min_soc - 1e-9
        self.power_w = new_power
        self.energy_charged_wh += np.maximum(energy_wh, 0.0)
        discharged = np.maximum(-energy_wh, 0.0)
        self.energy_discharged_wh += discharged
        self.below_floor_discharge_wh += np.where(under_before | under_after, discharged, 0.0)
        self._update_connections(t_s + h)

    def _update_connections(self, t_s: float) -> None:
        now = self._connected_at(t_s)
        changed = now != self.connected
        if changed.any():  # a new or ended session starts from zero power and setpoint
            self.power_w[changed] = 0.0
            self.setpoint_w[changed] = 0.0
        self.connected = now

    def soc_stats(self) -> tuple[float, float]:
        """(mean, min) SoC of the connected cars; NaN when none is connected."""
        if not self.connected.any():
            return math.nan, math.nan
        soc = self.soc_pct[self.connected]
        return float(soc.mean()), float(soc.min())
