"""The EV fleet: every car's power follows its setpoint through a first-order lag within its limits,
and its state of charge integrates the energy. All cars are stepped at once with numpy arrays.

Sign convention: P > 0 charges the car, P < 0 discharges it. Per step the setpoint is turned into a
reachable target: clamped to the car's maximum, 0 inside the dead zone between 0 and the car's
minimum, 0 for discharging a car that is not bidirectional, at its SoC floor (when the car enforces
it) or disconnected, and 0 for charging a full battery. Power then moves toward the target with
``p(t+h) = target + (p(t) - target) * exp(-h / lag)``; the energy of the step is the exact integral
of that curve, cut where the battery reaches 100 % or the floor (the car then stops at once).

``FleetModel`` steps every car every step: the reference model. ``fleet_lazy.LazyFleet`` (what the
driver runs) computes the same thing in closed form between events, with the same step kernel
(``FleetParams.step_cars``) around them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .scenario import EvSpec, FleetSpec

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Cars = slice | IntArray  # every car, or some of them by index

# A car counts as "at its floor" / "under its floor" with this tolerance on the SoC (%).
FLOOR_TOLERANCE_PCT = 1e-9


def _column(evs: tuple[EvSpec, ...], name: str, missing: float = math.inf) -> FloatArray:
    values = [getattr(ev, name) for ev in evs]
    return np.array([missing if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(slots=True)
class StepResult:
    """One step of some cars: their new power and SoC and what the step adds to the counters."""

    power_w: FloatArray
    soc_pct: FloatArray
    charged_wh: FloatArray
    discharged_wh: FloatArray
    below_floor_wh: FloatArray
    floor_request: BoolArray  # this step asked a bidirectional car at its floor to discharge


class FleetParams:
    """The cars' fixed data (limits, capacity, floor, lag, schedule) and the per-step rules."""

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
        self._alpha_cache: dict[float, tuple[FloatArray, FloatArray]] = {}

    def _connected_at(self, t_s: float) -> BoolArray:
        return (self.arrive_s <= t_s + 1e-9) & (t_s + 1e-9 < self.depart_s)

    def tripped(self, voltage_v: float) -> bool:
        """True while the chargers are tripped by low voltage."""
        return self.trip_below_v > 0 and voltage_v < self.trip_below_v

    def _lag_factors(self, h: float) -> tuple[FloatArray, FloatArray]:
        """(decay over h, mean weight of the decaying part over h) for every car's lag."""
        if h not in self._alpha_cache:
            tau = self.lag_s
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = np.where(tau > 0, np.exp(-h / np.where(tau > 0, tau, 1.0)), 0.0)
                mean = np.where(tau > 0, tau / h * (1.0 - alpha), 0.0)
            self._alpha_cache[h] = (alpha, mean)
        return self._alpha_cache[h]

    def targets_of(
        self, cars: Cars, setpoint: FloatArray, soc: FloatArray, connected: BoolArray, tripped: bool
    ) -> FloatArray:
        """The power the cars ``cars`` can actually run at for these setpoints and SoCs."""
        sp = setpoint
        charge = np.where(sp < self.p_charge_min[cars], 0.0, np.minimum(sp, self.p_charge_max[cars]))
        charge = np.where(soc >= 100.0, 0.0, charge)
        magnitude = -sp
        discharge = np.minimum(magnitude, self.p_discharge_max[cars])
        discharge = np.where(magnitude < self.p_discharge_min[cars], 0.0, discharge)
        discharge = np.where(self.bidirectional[cars] & (soc > self.hard_floor[cars]), discharge, 0.0)
        target = np.where(sp > 0, charge, np.where(sp < 0, -discharge, 0.0))
        if tripped:
            target = np.zeros(len(sp))
        return np.where(connected, target, 0.0)

    def floor_requests(
        self, cars: Cars, setpoint: FloatArray, soc: FloatArray, connected: BoolArray
    ) -> BoolArray:
        """A step with these setpoints asks a bidirectional car at its floor to discharge."""
        at_floor = connected & self.bidirectional[cars] & (soc <= self.min_soc[cars] + FLOOR_TOLERANCE_PCT)
        return at_floor & (setpoint < 0)

    def step_cars(
        self,
        cars: Cars,
        h: float,
        tripped: bool,
        soc: FloatArray,
        power: FloatArray,
        setpoint: FloatArray,
        connected: BoolArray,
    ) -> StepResult:
        """Advance the cars ``cars`` (whose state is given) by one step of ``h`` seconds."""
        requests = self.floor_requests(cars, setpoint, soc, connected)
        target = self.targets_of(cars, setpoint, soc, connected, tripped)
        start = np.zeros(len(power)) if tripped else power
        alpha, mean = self._lag_factors(h)
        alpha, mean = alpha[cars], mean[cars]
        capacity, floor, min_soc = self.capacity_wh[cars], self.hard_floor[cars], self.min_soc[cars]
        new_power = target + (start - target) * alpha
        energy_wh = (target + (start - target) * mean) * h / 3600.0
        room_up = np.maximum(100.0 - soc, 0.0) / 100.0 * capacity
        room_down = -np.maximum(soc - floor, 0.0) / 100.0 * capacity
        hit = (energy_wh > room_up) | (energy_wh < room_down)
        energy_wh = np.clip(energy_wh, room_down, room_up)
        new_power = np.where(hit | ~connected, 0.0, new_power)
        energy_wh = np.where(connected, energy_wh, 0.0)

        under_before = soc < min_soc - FLOOR_TOLERANCE_PCT
        new_soc = np.clip(soc + energy_wh / capacity * 100.0, 0.0, 100.0)
        under_after = new_soc < min_soc - FLOOR_TOLERANCE_PCT
        discharged = np.maximum(-energy_wh, 0.0)
        return StepResult(
            power_w=new_power,
            soc_pct=new_soc,
            charged_wh=np.maximum(energy_wh, 0.0),
            discharged_wh=discharged,
            below_floor_wh=np.where(under_before | under_after, discharged, 0.0),
            floor_request=requests,
        )


class FleetModel(FleetParams):
    """State of N cars as arrays; ``setpoint_w`` is written by the driver, ``step`` advances time."""

    def __init__(self, fleet: FleetSpec, nominal_voltage_v: float) -> None:
        super().__init__(fleet, nominal_voltage_v)
        self.soc_pct = _column(fleet.evs, "soc_pct")
        self.power_w = np.zeros(self.n)
        self.setpoint_w = np.zeros(self.n)
        self.connected = self._connected_at(0.0)
        self.energy_charged_wh = np.zeros(self.n)
        self.energy_discharged_wh = np.zeros(self.n)
        self.below_floor_discharge_wh = np.zeros(self.n)  # discharged while under the V2X floor
        self.floor_discharge_requests = np.zeros(self.n, dtype=np.int64)  # scans asking for it

    def targets(self, voltage_v: float) -> FloatArray:
        """The power each car can actually run at for its current setpoint."""
        every = slice(None)
        return self.targets_of(every, self.setpoint_w, self.soc_pct, self.connected, self.tripped(voltage_v))

    def step(self, t_s: float, h: float, voltage_v: float) -> None:
        """Advance from ``t_s`` to ``t_s + h`` with the setpoints in ``setpoint_w``."""
        result = self.step_cars(
            slice(None),
            h,
            self.tripped(voltage_v),
            self.soc_pct,
            self.power_w,
            self.setpoint_w,
            self.connected,
        )
        self.floor_discharge_requests += result.floor_request
        self.soc_pct = result.soc_pct
        self.power_w = result.power_w
        self.energy_charged_wh += result.charged_wh
        self.energy_discharged_wh += result.discharged_wh
        self.below_floor_discharge_wh += result.below_floor_wh
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
