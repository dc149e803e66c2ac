"""The EV-session samples of the simulation: which fields of which session slots a read returns.

Everything on the first read; then the measured fields (``soc_pct, e_*_wh, p_present_w``) of every car
at its report (``fleet.report_period_s``, staggered over the slots, changed or not, so that their age
is the age of the measurement), and the other fields when they change, which only happens when a car
arrives or leaves (a change reports the car's measured fields at once, too). A slot without a
connected car reads all zeros/false. Only the slots that report are evaluated, from the closed-form
fleet state (``LazyFleet``), in pure Python for a few cars and with numpy for many.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter

import numpy as np

from ...executor.driver_api import InputGroup, Quality
from ..ev_session import (
    AUTH_EIM,
    CONTROL_DYNAMIC,
    EV_INPUT_FIELDS,
    MODE_DC,
    MODE_DC_BPT,
    PROTOCOL_ISO15118_20,
)
from .fleet_lazy import LazyFleet
from .scenario import Scenario

# Measured values: sent at every report of the car, changed or not. A simulated car's V2X floor is
# its minimum SoC, so its V2X energy requests are its minimum and maximum ones.
DYNAMIC_FIELDS = (
    "soc_pct", "e_target_wh", "e_min_wh", "e_max_wh", "p_present_w", "e_v2x_min_wh", "e_v2x_max_wh",
)  # fmt: skip
_MEASURED_INDEX = {field: index for index, field in enumerate(DYNAMIC_FIELDS[:5])} | {
    "e_v2x_min_wh": 2,
    "e_v2x_max_wh": 3,
}
STATIC_FIELDS = tuple(f for f in EV_INPUT_FIELDS if f not in DYNAMIC_FIELDS)
_VECTOR_FROM = 8  # evaluate this many reporting cars or more with numpy
# x + _HALF_ULP_ONE - _HALF_ULP_ONE is round(x) as a float for |x| < _EXACT (and finite): past 2**52
# the spacing of floats is 1, so the addition rounds x to an integer, ties to even, as round() does;
# both steps exact otherwise. _measured_few rounds this way (a call to round() and float() cost more)
_HALF_ULP_ONE = 6755399441055744.0  # 1.5 * 2**52
_EXACT = 2.0**50
_ZEROS = (0.0, 0.0, 0.0, 0.0, 0.0)
_DISCONNECTED: dict[str, object] = {
    "connected": False,
    "bidirectional_allowed": False,
    "min_soc_pct": 0.0,
    "target_soc_pct": 0.0,
    "departure_time": 0,
    "p_charge_max_w": 0.0,
    "p_charge_min_w": 0.0,
    "p_discharge_max_w": 0.0,
    "p_discharge_min_w": 0.0,
    "protocol": 0,
    "energy_mode": 0,
    "control_mode": 0,
    "auth_mode": 0,
}


class EvReporter:
    """Builds the EV samples of each read for ``slots`` session slots bound to ``paths[field][slot]``."""

    def __init__(
        self,
        scenario: Scenario,
        fleet: LazyFleet,
        paths: dict[str, list[str]],
        slots: int,
        report_every: int,
    ) -> None:
        self.fleet = fleet
        self.slots = slots
        self.n_cars = fleet.n
        self.soc_resolution = scenario.fleet.soc_resolution_pct
        self.power_resolution = scenario.fleet.power_resolution_w
        self.static_fields = tuple(f for f in STATIC_FIELDS if f in paths)
        self.dynamic_fields = tuple(f for f in DYNAMIC_FIELDS if f in paths)
        self._static_paths = [paths[f] for f in self.static_fields]
        self._dynamic_paths = [paths[f] for f in self.dynamic_fields]
        self._dynamic_index = [_MEASURED_INDEX[f] for f in self.dynamic_fields]
        self._dynamic_fields = list(zip(self._dynamic_index, self._dynamic_paths, strict=True))
        index = self._dynamic_index
        # the measured values of one car in the order of its dynamic fields, as a tuple
        self._pick_dynamic: Callable[[Sequence[float]], tuple[float, ...]] = (
            (lambda row: tuple(row[k] for k in index)) if len(index) < 2 else itemgetter(*index)
        )
        self._capacity = fleet.capacity_wh.tolist()
        self._min_soc = fleet.min_soc.tolist()
        self._target_soc = fleet.target_soc.tolist()
        self._static_on = [self._static_values_on(scenario, car) for car in range(fleet.n)]
        self._static_off = tuple(_DISCONNECTED[f] for f in self.static_fields)
        self._static_sent: list[tuple[object, ...]] = [self._static_off] * slots
        self.report_every = report_every
        offsets = [(slot * report_every) // max(slots, 1) for slot in range(slots)]
        self._by_phase: list[list[int]] = [[] for _ in range(report_every)]
        for slot, offset in enumerate(offsets):
            self._by_phase[offset % report_every].append(slot)
        # the paths of the measured fields of each phase's slots, slot by slot (one tuple each, so
        # that the process image recognises a group it has seen)
        self._phase_paths = [self._dynamic_paths_of(slots) for slots in self._by_phase]
        self._steps = 0  # steps since the last read
        self._phases: list[int] = []  # phases of those steps that have cars to report
        self._switched: list[int] = []  # slots whose car arrived or left since the last read
        self._first = True

    def _static_values_on(self, scenario: Scenario, car: int) -> tuple[object, ...]:
        fleet = self.fleet
        bidirectional = bool(fleet.bidirectional[car])
        departure = fleet.departure_time_s.item(car)
        values: dict[str, object] = {
            "connected": True,
            "bidirectional_allowed": bidirectional,
            "min_soc_pct": fleet.min_soc.item(car),
            "target_soc_pct": fleet.target_soc.item(car),
            "departure_time": int(scenario.start_epoch_s + departure) if departure == departure else 0,
            "p_charge_max_w": fleet.p_charge_max.item(car),
            "p_charge_min_w": fleet.p_charge_min.item(car),
            "p_discharge_max_w": fleet.p_discharge_max.item(car) if bidirectional else 0.0,
            "p_discharge_min_w": fleet.p_discharge_min.item(car) if bidirectional else 0.0,
            # a simulated car talks ISO 15118-20 in dynamic mode, authorised by the site (EIM)
            "protocol": PROTOCOL_ISO15118_20,
            "energy_mode": MODE_DC_BPT if bidirectional else MODE_DC,
            "control_mode": CONTROL_DYNAMIC,
            "auth_mode": AUTH_EIM,
        }
        return tuple(values[f] for f in self.static_fields)

    def _dynamic_paths_of(self, slots: list[int]) -> tuple[str, ...]:
        return tuple(paths[slot] for slot in slots for _, paths in self._dynamic_fields)

    # -- bookkeeping per step ---------------------------------------------------------------------
    def step_observed(self, step: int) -> None:
        self._steps += 1
        phase = step % self.report_every
        if self._by_phase[phase]:
            self._phases.append(phase)

    def switched(self, cars: Iterable[int]) -> None:
        self._switched.extend(cars)

    def _due_slots(self) -> list[int]:
        if self._first or self._steps >= self.report_every:
            return list(range(self.slots))
        if len(self._phases) == 1 and not self._switched:
            return self._by_phase[self._phases[0]]
        due: set[int] = set(self._switched)
        for phase in self._phases:
            due.update(self._by_phase[phase])
        return sorted(due)

    # -- values -----------------------------------------------------------------------------------
    def _measured(self, slots: list[int]) -> list[tuple[float, float, float, float, float]]:
        """(soc, e_target, e_min, e_max, p_present) of the slots, as reported."""
        fleet, n = self.fleet, self.n_cars
        connected = fleet.connected
        cars = [s for s in slots if s < n and connected.item(s)]
        if len(cars) >= _VECTOR_FROM:
            by_car = dict(zip(cars, self._measured_numpy(cars), strict=True))
        else:
            by_car = {car: self._measured_python(car) for car in cars}
        return [by_car.get(s, _ZEROS) for s in slots]

    def _measured_python(self, car: int) -> tuple[float, float, float, float, float]:
        power, soc = self.fleet.state_of_car(car)
        res, cap = self.soc_resolution, self._capacity[car]
        soc_r = round(soc / res) * res
        return (
            soc_r,
            float(round((self._target_soc[car] - soc_r) / 100.0 * cap)),
            float(round((self._min_soc[car] - soc_r) / 100.0 * cap)),
            float(round((100.0 - soc_r) / 100.0 * cap)),
            round(power / self.power_resolution) * self.power_resolution,
        )

    def _measured_few(self, slots: list[int], values_of: list[float]) -> None:
        """``values_of.extend(pick(...))`` of each slot's ``_measured_python`` (zeros when no car is
        connected) in one loop: ``state_of_car`` and the rounding inline, the same operations (the
        rounding by ``_HALF_ULP_ONE`` when every value to round is inside ``_EXACT``)."""
        fleet = self.fleet
        pick, connected, n = self._pick_dynamic, fleet.connected.item, self.n_cars
        now, dt_s = fleet.now, fleet.dt_s
        anchor, target_of, power0, soc0 = (
            fleet.anchor.item,
            fleet.target.item,
            fleet.power0.item,
            fleet.soc0.item,
        )
        alpha, tau, capacity_wh = fleet._alpha_list, fleet._tau_list, fleet._capacity_list
        res, p_res = self.soc_resolution, self.power_resolution
        capacity, target_soc, min_soc = self._capacity, self._target_soc, self._min_soc
        for slot in slots:
            if not (slot < n and connected(slot)):
                values_of.extend(pick(_ZEROS))
                continue
            k = now - anchor(slot)
            a = alpha[slot] ** k
            target = target_of(slot)
            gap = power0(slot) - target
            energy = (target * k * dt_s + gap * tau[slot] * (1.0 - a)) / 3600.0
            power = target + gap * a
            soc = soc0(slot) + energy / capacity_wh[slot] * 100.0
            cap = capacity[slot]
            x = soc / res
            if -_EXACT < x < _EXACT:
                soc_r = (x + _HALF_ULP_ONE - _HALF_ULP_ONE) * res
                e_target = (target_soc[slot] - soc_r) / 100.0 * cap
                e_min = (min_soc[slot] - soc_r) / 100.0 * cap
                e_max = (100.0 - soc_r) / 100.0 * cap
                p = power / p_res
                if (
                    -_EXACT < e_target < _EXACT
                    and -_EXACT < e_min < _EXACT
                    and -_EXACT < e_max < _EXACT
                    and -_EXACT < p < _EXACT
                ):
                    values_of.extend(
                        pick(
                            (
                                soc_r,
                                e_target + _HALF_ULP_ONE - _HALF_ULP_ONE,
                                e_min + _HALF_ULP_ONE - _HALF_ULP_ONE,
                                e_max + _HALF_ULP_ONE - _HALF_ULP_ONE,
                                (p + _HALF_ULP_ONE - _HALF_ULP_ONE) * p_res,
                            )
                        )
                    )
                    continue
            soc_r = round(soc / res) * res
            values_of.extend(
                pick(
                    (
                        soc_r,
                        float(round((target_soc[slot] - soc_r) / 100.0 * cap)),
                        float(round((min_soc[slot] - soc_r) / 100.0 * cap)),
                        float(round((100.0 - soc_r) / 100.0 * cap)),
                        round(power / p_res) * p_res,
                    )
                )
            )

    def _measured_numpy(self, cars: list[int]) -> list[tuple[float, float, float, float, float]]:
        index = np.array(cars, dtype=np.int64)
        fleet = self.fleet
        power, soc = fleet.state_of(index)
        res, p_res = self.soc_resolution, self.power_resolution
        cap = fleet.capacity_wh[index]
        soc_r = np.rint(soc / res) * res  # np.rint is np.round to 0 decimals: half to even
        rows = zip(
            soc_r.tolist(),
            np.rint((fleet.target_soc[index] - soc_r) / 100.0 * cap).tolist(),
            np.rint((fleet.min_soc[index] - soc_r) / 100.0 * cap).tolist(),
            np.rint((100.0 - soc_r) / 100.0 * cap).tolist(),
            (np.rint(power / p_res) * p_res).tolist(),
            strict=True,
        )
        return list(rows)

    # -- samples ----------------------------------------------------------------------------------
    def collect(self, groups: list[InputGroup], stamp_ns: int) -> None:
        """Add the EV samples of this read to ``groups``: the static fields that changed, then the
        measured fields of the cars that report, all GOOD and stamped ``stamp_ns``."""
        if not self._first and not self._switched:
            phases = self._phases
            if not phases:
                self._steps = 0
                return
            if len(phases) == 1 and self._steps < self.report_every and self._dynamic_paths:
                # the usual read: the cars of one phase report (the general path below, shorter)
                phase = phases[0]
                slots = self._by_phase[phase]
                pick = self._pick_dynamic
                values_of: list[float] = []
                if len(slots) < _VECTOR_FROM:  # _measured for a few cars, without its lists
                    self._measured_few(slots, values_of)
                else:
                    for row in self._measured(slots):
                        values_of.extend(pick(row))
                groups.append(
                    tuple.__new__(InputGroup, (self._phase_paths[phase], values_of, Quality.GOOD, stamp_ns))
                )
                self._steps = 0
                phases.clear()
                return
        good = Quality.GOOD
        connected = self.fleet.connected
        n = self.n_cars
        changed = range(self.slots) if self._first else self._switched
        static_paths: list[str] = []
        static_values: list[object] = []
        for slot in changed:
            on = slot < n and bool(connected.item(slot))
            values = self._static_on[slot] if on else self._static_off
            previous = self._static_sent[slot]
            for k, paths in enumerate(self._static_paths):
                if self._first or values[k] != previous[k]:
                    static_paths.append(paths[slot])
                    static_values.append(values[k])
            self._static_sent[slot] = values
        if static_paths:
            groups.append(InputGroup(tuple(static_paths), static_values, good, stamp_ns))
        due = self._due_slots()
        if due and self._dynamic_paths:
            measured = self._measured(due)
            index = self._dynamic_index
            values_of = [row[k] for row in measured for k in index]
            if len(self._phases) == 1 and due is self._by_phase[self._phases[0]]:
                paths_of = self._phase_paths[self._phases[0]]
            else:
                paths_of = self._dynamic_paths_of(due)
            groups.append(tuple.__new__(InputGroup, (paths_of, values_of, good, stamp_ns)))
        self._steps = 0
        self._phases.clear()
        self._switched.clear()
        self._first = False
