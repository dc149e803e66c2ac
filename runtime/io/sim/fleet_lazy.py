"""``LazyFleet``: the fleet of fleet.py, advanced in closed form between events instead of per step.

While a car's target stays the same, its power after k steps from an anchor step is
``target + (p0 - target) * alpha**k`` and the energy since the anchor is the exact sum of the step
energies, ``(target * k * h + (p0 - target) * lag * (1 - alpha**k)) / 3600`` Wh, so nothing has to be
computed per step. A car is re-anchored (its state evaluated and its target recomputed) only when:

- its setpoint changes the target (or whether it asks to discharge at its floor), at ``set_setpoints``;
- its SoC could reach a threshold: 100 %, its hard floor, or its V2X floor +/- the tolerance.
  ``valid_until`` is a safe bound (the SoC moves at most ``max(|p0|, |target|) * h`` per step); a car
  closer than one step to a threshold is stepped with the reference kernel (``FleetParams.step_cars``),
  which cuts the energy at 100 % or the floor exactly as ``FleetModel`` does;
- the chargers trip or recover (voltage), or the car arrives or leaves (a fixed schedule).

Charged and discharged energy are split where the step energy changes sign, so the counters are the
sums of the per-step positive and negative parts, as in ``FleetModel``. The total power needed every
step is kept as a sum over lag groups: ``sum(target) + sum_g C_g * alpha_g**(step - ref)``.
``before_change`` is called before any anchor moves, so that a caller evaluating past steps from the
anchors (the history rows, ``rows``) can do so first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .fleet import FLOOR_TOLERANCE_PCT, BoolArray, FleetParams, FloatArray, IntArray, _column
from .scenario import FleetSpec

NEVER = 1 << 62  # a step that never comes
_MAX_RATIO = 1e15  # caps distance / rate before it becomes a step count
_MANY_GROUPS = 8  # above this many lag values the total power is a numpy dot product


@dataclass(frozen=True, slots=True)
class FleetCounters:
    """Per-car totals of a run so far."""

    energy_charged_wh: FloatArray
    energy_discharged_wh: FloatArray
    below_floor_discharge_wh: FloatArray
    floor_discharge_requests: npt.NDArray[np.int64]
    soc_pct: FloatArray
    power_w: FloatArray


@dataclass(frozen=True, slots=True)
class FleetRows:
    """History rows of steps ``first .. last``: SoC mean/min over the connected cars, how many are
    connected, and every car's power at the steps asked for."""

    soc_mean_pct: FloatArray
    soc_min_pct: FloatArray
    connected: int
    power_w: FloatArray  # (steps asked for) x cars


class LazyFleet(FleetParams):
    """The fleet at step ``now``; ``advance`` moves one step, ``set_setpoints`` changes setpoints."""

    def __init__(
        self,
        fleet: FleetSpec,
        nominal_voltage_v: float,
        dt_s: float,
        before_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(fleet, nominal_voltage_v)
        n = self.n
        self.dt_s = dt_s
        self._before_change = before_change or (lambda: None)
        self._all: IntArray = np.arange(n, dtype=np.int64)
        alpha, mean = self._lag_factors(dt_s)
        self._alpha, self._mean = alpha, mean
        self._tau = np.where(self.lag_s > 0, self.lag_s, 0.0)
        self._pct_per_w = dt_s / 3600.0 / self.capacity_wh * 100.0  # SoC change of 1 W for a step
        group_alpha, group_of = np.unique(alpha, return_inverse=True)
        self._group_alpha: list[float] = group_alpha.tolist()
        self._group_alpha_arr: FloatArray = group_alpha
        self._group_of: IntArray = group_of.astype(np.int64).reshape(-1)
        # scalar copies for evaluating a single car without numpy
        self._alpha_list: list[float] = alpha.tolist()
        self._tau_list: list[float] = self._tau.tolist()
        self._capacity_list: list[float] = self.capacity_wh.tolist()

        self.now = 0
        self.tripped_now = False
        self.setpoint_w = np.zeros(n)
        self.connected = self._connected_at(0.0)
        # the anchor: the exact state of each car at step ``anchor``, and its target from there on
        self.anchor: IntArray = np.zeros(n, dtype=np.int64)
        self.power0 = np.zeros(n)
        self.soc0 = _column(fleet.evs, "soc_pct")
        self.target = np.zeros(n)
        self.charged0 = np.zeros(n)
        self.discharged0 = np.zeros(n)
        self.below0 = np.zeros(n)
        self.requests0 = np.zeros(n, dtype=np.int64)
        self._requesting: BoolArray = np.zeros(n, dtype=np.bool_)  # each step counts a floor request
        self._under: BoolArray = np.zeros(n, dtype=np.bool_)  # under the V2X floor (minus tolerance)
        self.valid_until: IntArray = np.full(n, NEVER, dtype=np.int64)
        self._retarget(self._all)
        self._next_event = self._first_event()
        self._connection_events = self._connection_schedule()
        self._next_connection = self._connection_events[0][0] if self._connection_events else NEVER
        self._sum_target = 0.0
        self._group_c: list[float] = [0.0] * len(self._group_alpha)
        self._ref = 0
        self._recompute_totals()

    # -- schedule ---------------------------------------------------------------------------------
    def _connection_schedule(self) -> list[tuple[int, list[int]]]:
        """(step, cars) whose connection changes at that step, in step order. The state after step
        m-1 is evaluated at ``t = (m - 1) * dt + dt`` like ``FleetModel.step`` does."""
        dt = self.dt_s
        arrive, depart = self.arrive_s.tolist(), self.depart_s.tolist()

        def state(i: int, m: int) -> bool:
            t = 0.0 if m == 0 else (m - 1) * dt + dt
            return bool(arrive[i] <= t + 1e-9 and t + 1e-9 < depart[i])

        def first_step(i: int, x: float, m_min: int = 1) -> int:
            """The first step m >= 1 whose time has reached x (within the 1e-9 of the rule)."""
            if not math.isfinite(x):
                return NEVER
            m = max(m_min, int(x / dt) - 2)
            while m > m_min and (m - 1) * dt + dt + 1e-9 >= x:
                m -= 1
            while (m - 1) * dt + dt + 1e-9 < x:
                m += 1
            return m

        by_step: dict[int, list[int]] = {}
        for i in range(self.n):
            candidates = {first_step(i, arrive[i]), first_step(i, depart[i])}
            for m in sorted(candidates):
                if m < NEVER and state(i, m) != state(i, m - 1):
                    by_step.setdefault(m, []).append(i)
        return sorted(by_step.items())

    def _first_event(self) -> int:
        return int(self.valid_until.min()) if self.n else NEVER

    # -- evaluation -------------------------------------------------------------------------------
    def _evaluate(
        self, cars: IntArray, step: int
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray]:
        """(power, SoC, charged, discharged since the anchor, steps since the anchor) at ``step``."""
        k = step - self.anchor[cars]
        alpha = self._alpha[cars]
        a = alpha**k
        target = self.target[cars]
        gap = self.power0[cars] - target
        tau = self._tau[cars]
        h = self.dt_s
        power = target + gap * a
        energy = (target * k * h + gap * tau * (1.0 - a)) / 3600.0
        soc = self.soc0[cars] + energy / self.capacity_wh[cars] * 100.0
        # the step energy (target + gap * mean * alpha**m) * h / 3600 changes sign at most once
        decay = gap * self._mean[cars]
        crossing = (target + decay) * target < 0
        if not crossing.any():
            positive = energy > 0
            return power, soc, np.where(positive, energy, 0.0), np.where(positive, 0.0, -energy), k
        # only the crossing cars matter below; the others get harmless placeholders
        decay_c = np.where(crossing, decay, -1.0)
        target_c = np.where(crossing, target, 0.5)
        alpha_c = np.where(crossing, alpha, 0.5)
        first = np.ceil(np.log(-target_c / decay_c) / np.log(alpha_c))

        def settled(m: FloatArray) -> BoolArray:  # the step energy of step m has the target's sign
            return (target_c + decay_c * alpha_c**m) * target_c >= 0

        first = np.where((first >= 1) & settled(np.maximum(first - 1, 0.0)), first - 1, first)
        first = np.where(settled(first), first, first + 1)
        split = np.where(crossing, np.clip(first, 0, k), k)
        a_split = alpha**split
        early = (target * split * h + gap * tau * (1.0 - a_split)) / 3600.0
        late = (target * (k - split) * h + gap * tau * (a_split - a)) / 3600.0
        charged = np.maximum(early, 0.0) + np.maximum(late, 0.0)
        discharged = np.maximum(-early, 0.0) + np.maximum(-late, 0.0)
        return power, soc, charged, discharged, k

    def state_of(self, cars: IntArray) -> tuple[FloatArray, FloatArray]:
        """(power, SoC) of some cars at step ``now``."""
        power, soc, _, _, _ = self._evaluate(cars, self.now)
        return power, soc

    def state_of_car(self, car: int) -> tuple[float, float]:
        """(power, SoC) of one car at step ``now``, without numpy (the same formula as ``state_of``)."""
        k = self.now - self.anchor.item(car)
        a = self._alpha_list[car] ** k
        target = self.target.item(car)
        gap = self.power0.item(car) - target
        energy = (target * k * self.dt_s + gap * self._tau_list[car] * (1.0 - a)) / 3600.0
        return target + gap * a, self.soc0.item(car) + energy / self._capacity_list[car] * 100.0

    def total_power(self) -> float:
        """Sum of every car's power at step ``now``."""
        k = self.now - self._ref
        if len(self._group_c) > _MANY_GROUPS:
            weights = np.array(self._group_c)
            return self._sum_target + float(np.dot(weights, self._group_alpha_arr**k))
        total = self._sum_target
        for alpha, c in zip(self._group_alpha, self._group_c, strict=True):
            if c:
                total += c * alpha**k
        return total

    def counters(self) -> FleetCounters:
        """Totals of every car up to step ``now``."""
        power, soc, charged, discharged, k = self._evaluate(self._all, self.now)
        return FleetCounters(
            energy_charged_wh=self.charged0 + charged,
            energy_discharged_wh=self.discharged0 + discharged,
            below_floor_discharge_wh=self.below0 + np.where(self._under, discharged, 0.0),
            floor_discharge_requests=self.requests0 + np.where(self._requesting, k, 0),
            soc_pct=soc,
            power_w=power,
        )

    def rows(self, first: int, last: int, power_steps: IntArray) -> FleetRows:
        """History rows for steps ``first .. last`` (all between the anchors and ``now``)."""
        steps = np.arange(first, last + 1, dtype=np.int64)
        connected = self.connected
        count = int(connected.sum())
        if count == 0:
            mean = np.full(len(steps), math.nan)
            low = mean.copy()
        else:
            cars = self._all if count == self.n else np.flatnonzero(connected)
            soc = self._soc_matrix(cars, steps)
            mean, low = soc.mean(axis=1), soc.min(axis=1)
        power = self._power_matrix(power_steps)
        return FleetRows(mean, low, count, power)

    def _decay_matrix(self, cars: IntArray, steps: IntArray) -> tuple[FloatArray, IntArray]:
        """(alpha**k, k) for every step (rows) and car (columns), k = steps since the car's anchor."""
        k = steps[:, None] - self.anchor[cars][None, :]
        alpha = self._alpha[cars]
        groups = self._group_of[cars]
        if len(self._group_alpha) <= _MANY_GROUPS and len(steps) > 1:
            # alpha**k = alpha**(k at the first step) * alpha**(step - first): one power per group
            offsets = steps - steps[0]
            by_group = self._group_alpha_arr[None, :] ** offsets[:, None]
            return alpha ** k[0] * by_group[:, groups], k
        return alpha**k, k

    def _soc_matrix(self, cars: IntArray, steps: IntArray) -> FloatArray:
        a, k = self._decay_matrix(cars, steps)
        target = self.target[cars]
        gap = self.power0[cars] - target
        energy = (target * k * self.dt_s + gap * self._tau[cars] * (1.0 - a)) / 3600.0
        result: FloatArray = self.soc0[cars] + energy / self.capacity_wh[cars] * 100.0
        return result

    def _power_matrix(self, steps: IntArray) -> FloatArray:
        if not len(steps):
            return np.zeros((0, self.n))
        a, _ = self._decay_matrix(self._all, steps)
        result: FloatArray = self.target + (self.power0 - self.target) * a
        return result

    # -- changes ----------------------------------------------------------------------------------
    def _settle(self, cars: IntArray, step: int) -> None:
        """Move the anchor of ``cars`` to ``step`` (their state there, counters included)."""
        power, soc, charged, discharged, k = self._evaluate(cars, step)
        self.charged0[cars] += charged
        self.discharged0[cars] += discharged
        self.below0[cars] += np.where(self._under[cars], discharged, 0.0)
        self.requests0[cars] += np.where(self._requesting[cars], k, 0)
        self.power0[cars] = power
        self.soc0[cars] = soc
        self.anchor[cars] = step

    def _retarget(self, cars: IntArray) -> None:
        """Targets, flags and how long the closed form holds, from the anchored state of ``cars``."""
        setpoint, soc, connected = self.setpoint_w[cars], self.soc0[cars], self.connected[cars]
        target = self.targets_of(cars, setpoint, soc, connected, self.tripped_now)
        self.target[cars] = target
        self._requesting[cars] = self.floor_requests(cars, setpoint, soc, connected)
        min_soc = self.min_soc[cars]
        self._under[cars] = soc < min_soc - FLOOR_TOLERANCE_PCT
        rate = np.maximum(np.abs(self.power0[cars]), np.abs(target)) * self._pct_per_w[cars]
        distance = np.minimum(
            np.minimum(np.abs(soc - 100.0), np.abs(soc - self.hard_floor[cars])),
            np.minimum(
                np.abs(soc - (min_soc + FLOOR_TOLERANCE_PCT)), np.abs(soc - (min_soc - FLOOR_TOLERANCE_PCT))
            ),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            steps = np.floor(np.minimum(distance / np.where(rate > 0, rate, 1.0), _MAX_RATIO)) - 1.0
        steps = np.where((rate > 0) & connected, np.maximum(steps, 0.0), float(NEVER))
        self.valid_until[cars] = np.minimum(self.anchor[cars] + steps.astype(np.int64), NEVER)

    def _step_exactly(self, cars: IntArray) -> None:
        """Step ``cars`` (anchored at ``now``) one step with the reference kernel."""
        result = self.step_cars(
            cars,
            self.dt_s,
            self.tripped_now,
            self.soc0[cars],
            self.power0[cars],
            self.setpoint_w[cars],
            self.connected[cars],
        )
        self.requests0[cars] += result.floor_request
        self.charged0[cars] += result.charged_wh
        self.discharged0[cars] += result.discharged_wh
        self.below0[cars] += result.below_floor_wh
        self.power0[cars] = result.power_w
        self.soc0[cars] = result.soc_pct
        self.anchor[cars] = self.now + 1
        self._retarget(cars)

    def _recompute_totals(self) -> None:
        k = self.now - self.anchor
        decaying = (self.power0 - self.target) * self._alpha**k
        self._sum_target = float(self.target.sum())
        weights = np.bincount(self._group_of, weights=decaying, minlength=len(self._group_alpha))
        self._group_c = weights.tolist()
        self._ref = self.now

    def set_setpoints(self, cars: IntArray, values: FloatArray) -> None:
        """New setpoints at step ``now``; the cars follow them from the next step on."""
        self.setpoint_w[cars] = values
        live = cars[self.connected[cars]]
        if not len(live):
            return
        # between events the SoC stays on the same side of every threshold: the anchor's SoC will do
        setpoint, soc, on = self.setpoint_w[live], self.soc0[live], self.connected[live]
        target = self.targets_of(live, setpoint, soc, on, self.tripped_now)
        requesting = self.floor_requests(live, setpoint, soc, on)
        moved = live[(target != self.target[live]) | (requesting != self._requesting[live])]
        if not len(moved):
            return
        self._before_change()
        self._settle(moved, self.now)
        self._retarget(moved)
        self._next_event = self._first_event()
        self._recompute_totals()

    def advance(self, voltage_v: float) -> list[int]:
        """Step from ``now`` to ``now + 1`` (``voltage_v``: the chargers' voltage during the step).
        Returns the cars whose connection changed at the new step."""
        step = self.now
        changed = False
        tripped = self.tripped(voltage_v)
        if tripped != self.tripped_now:
            self._before_change()
            changed = True
            self._settle(self._all, step)
            self.tripped_now = tripped
            self._retarget(self._all)
            if tripped:  # power drops to 0 at once: the kernel does that
                self._step_exactly(self._all)
            self._next_event = self._first_event()
        if self._next_event <= step:
            if not changed:
                self._before_change()
                changed = True
            due = np.flatnonzero(self.valid_until <= step)
            self._settle(due, step)
            self._retarget(due)
            close = due[self.valid_until[due] <= step]
            if len(close):
                self._step_exactly(close)
        self.now = step + 1
        switched: list[int] = []
        if self._next_connection <= self.now:
            if not changed:
                self._before_change()
                changed = True
            _, switched = self._connection_events.pop(0)
            self._next_connection = self._connection_events[0][0] if self._connection_events else NEVER
            cars = np.array(switched, dtype=np.int64)
            self._settle(cars, self.now)
            self.connected[cars] = ~self.connected[cars]
            self.power0[cars] = 0.0  # a new or ended session starts from zero power and setpoint
            self.setpoint_w[cars] = 0.0
            self._retarget(cars)
        if changed:
            self._next_event = self._first_event()
            self._recompute_totals()
        return switched
