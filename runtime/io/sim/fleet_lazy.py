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
Before anchors move, a copy of them (a version) is kept for the steps observed so far, so that the
history rows of past steps (``rows``) can still be computed later, in one batch, from the anchors
that were in force at each step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .fleet import FLOOR_TOLERANCE_PCT, BoolArray, Cars, FleetParams, FloatArray, IntArray, _column
from .fleet_scalar import MAX_RATIO, CarRules
from .scenario import FleetSpec

_Evaluated = tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray]  # see _evaluate
NEVER = 1 << 62  # a step that never comes
_MANY_GROUPS = 8  # above this many lag values the total power is a numpy dot product
_CLOSE_STEPS = 1000  # closer than this (in steps) to a threshold: check whether crossing it matters
SCALAR_CHANGES = 12  # setpoint changes of up to this many cars are worked out in plain Python
_EXACT_TOTALS_EVERY = 1000  # incremental updates of the totals before they are summed again


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
    connected: FloatArray
    power_w: FloatArray  # (steps asked for) x cars


@dataclass(frozen=True, slots=True)
class _Anchors:
    """The anchors in force up to (and including) step ``last_step``."""

    last_step: int
    anchor: IntArray
    power0: FloatArray
    soc0: FloatArray
    target: FloatArray
    connected: BoolArray


class LazyFleet(FleetParams):
    """The fleet at step ``now``; ``advance`` moves one step, ``set_setpoints`` changes setpoints."""

    def __init__(
        self,
        fleet: FleetSpec,
        nominal_voltage_v: float,
        dt_s: float,
    ) -> None:
        super().__init__(fleet, nominal_voltage_v)
        n = self.n
        self.dt_s = dt_s
        self._versions: list[_Anchors] = []  # earlier anchors, for rows not computed yet
        self._all: IntArray = np.arange(n, dtype=np.int64)
        alpha, mean = self._lag_factors(dt_s)
        self._alpha, self._mean = alpha, mean
        self._tau = np.where(self.lag_s > 0, self.lag_s, 0.0)
        self._pct_per_w = dt_s / 3600.0 / self.capacity_wh * 100.0  # SoC change of 1 W for a step
        group_alpha, group_of = np.unique(alpha, return_inverse=True)
        self._group_alpha: list[float] = group_alpha.tolist()
        self._group_alpha_arr: FloatArray = group_alpha
        self._group_of: IntArray = group_of.astype(np.int64).reshape(-1)
        self._group_of_list: list[int] = self._group_of.tolist()
        self._rules = CarRules(self, dt_s)
        self._thresholds = np.stack(
            [
                np.full(n, 100.0),
                self.hard_floor,
                self.min_soc + FLOOR_TOLERANCE_PCT,
                self.min_soc - FLOOR_TOLERANCE_PCT,
            ]
        )
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
        self.lowest_soc = np.full(n, np.inf)  # per car, over the history rows it was connected in
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
        self._incremental_updates = 0
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
    def _evaluate(self, cars: Cars, step: int) -> _Evaluated:
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
        """(power, SoC) of some cars at step ``now`` (the first two results of ``_evaluate``)."""
        k = self.now - self.anchor[cars]
        a = self._alpha[cars] ** k
        target = self.target[cars]
        gap = self.power0[cars] - target
        energy = (target * k * self.dt_s + gap * self._tau[cars] * (1.0 - a)) / 3600.0
        return target + gap * a, self.soc0[cars] + energy / self.capacity_wh[cars] * 100.0

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
        groups = self._group_c
        if len(groups) == 1:
            c = groups[0]
            return self._sum_target + c * self._group_alpha[0] ** k if c else self._sum_target
        if len(groups) > _MANY_GROUPS:
            return self._sum_target + float(np.dot(np.array(groups), self._group_alpha_arr**k))
        total = self._sum_target
        for alpha, c in zip(self._group_alpha, groups, strict=True):
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
        """History rows for steps ``first .. last`` (steps already passed, none before an earlier
        ``rows`` call): each from the anchors that were in force at that step. ``power_steps``:
        the steps (among those) for which every car's power is wanted."""
        steps = np.arange(first, last + 1, dtype=np.int64)
        versions, self._versions = self._versions, []
        versions.append(_Anchors(NEVER, self.anchor, self.power0, self.soc0, self.target, self.connected))
        ends = np.array([v.last_step for v in versions], dtype=np.int64)
        which = np.searchsorted(ends, steps, side="left")
        power_which = np.searchsorted(ends, power_steps, side="left")
        bounds = np.flatnonzero(np.diff(which)) + 1
        if len(bounds) + 1 > max(2, len(steps) // 16):  # the anchors change nearly every step
            return self._rows_gathered(versions, steps, which, power_steps, power_which)
        runs = zip(np.split(steps, bounds), np.split(which, bounds), strict=True)
        means, lows, counts, powers = [], [], [], []
        for run, run_which in runs:
            anchors = versions[int(run_which[0])]
            run_power = power_steps[power_which == run_which[0]]
            # every car connected and its power wanted at every step: one decay matrix for both
            shared = (
                self._decay_matrix(anchors, slice(None), run)
                if len(run_power) == len(run) and bool(anchors.connected.all()) and (run_power == run).all()
                else None
            )
            mean, low, count = self._soc_rows(anchors, run, shared)
            means.append(mean)
            lows.append(low)
            counts.append(np.full(len(run), float(count)))
            if len(run_power):
                powers.append(self._power_rows(anchors, run_power, shared))
        power = (
            (np.concatenate(powers) if len(powers) > 1 else powers[0]) if powers else np.zeros((0, self.n))
        )
        return FleetRows(np.concatenate(means), np.concatenate(lows), np.concatenate(counts), power)

    def _decay_matrix(self, anchors: _Anchors, cars: Cars, steps: IntArray) -> tuple[FloatArray, IntArray]:
        """(alpha**k, k) for every step (rows) and car (columns), k = steps since the car's anchor."""
        k = steps[:, None] - anchors.anchor[cars][None, :]
        alpha = self._alpha[cars]
        if len(self._group_alpha) <= _MANY_GROUPS and len(steps) > 1:
            # alpha**k = alpha**(k at the first step) * alpha**(step - first): one power per group
            offsets = steps - steps[0]
            by_group = self._group_alpha_arr[None, :] ** offsets[:, None]
            return alpha ** k[0] * by_group[:, self._group_of[cars]], k
        return alpha**k, k

    def _soc_rows(
        self, anchors: _Anchors, steps: IntArray, decay: tuple[FloatArray, IntArray] | None = None
    ) -> tuple[FloatArray, FloatArray, int]:
        """SoC mean and minimum over the connected cars, and how many, at ``steps`` (``decay``: the
        decay matrix of every car at these steps, when the caller has it)."""
        connected = anchors.connected
        count = int(connected.sum())
        if count == 0:
            nothing = np.full(len(steps), math.nan)
            return nothing, nothing.copy(), 0
        cars: Cars = slice(None) if count == self.n else np.flatnonzero(connected)
        a, k = decay if decay is not None and count == self.n else self._decay_matrix(anchors, cars, steps)
        target = anchors.target[cars]
        gap = anchors.power0[cars] - target
        # soc0 + (target * k * dt + gap * tau * (1 - a)) / 3600 / capacity * 100, worked out in place
        # (the same operations on the same operands, so the same values, without five temporaries)
        soc = np.multiply(target, k)
        soc *= self.dt_s
        decayed = np.subtract(1.0, a)
        decayed *= gap * self._tau[cars]
        soc += decayed
        soc /= 3600.0
        soc /= self.capacity_wh[cars]
        soc *= 100.0
        soc += anchors.soc0[cars]
        self.lowest_soc[cars] = np.minimum(self.lowest_soc[cars], soc.min(axis=0))
        return soc.mean(axis=1), soc.min(axis=1), count

    def _power_rows(
        self, anchors: _Anchors, steps: IntArray, decay: tuple[FloatArray, IntArray] | None = None
    ) -> FloatArray:
        a, _ = decay if decay is not None else self._decay_matrix(anchors, slice(None), steps)
        # target + (power0 - target) * a, worked out in a (its last use; the same operations on the
        # same operands: a sum does not depend on the order of its two terms)
        power: FloatArray = np.multiply(anchors.power0 - anchors.target, a, out=a)
        power += anchors.target
        return power

    def _rows_gathered(
        self,
        versions: list[_Anchors],
        steps: IntArray,
        which: IntArray,
        power_steps: IntArray,
        power_which: IntArray,
    ) -> FleetRows:
        """``rows`` when the anchors change nearly every step: each row's anchors gathered at once."""

        def gather(
            rows: IntArray, rows_which: IntArray
        ) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, BoolArray]:
            pick = sorted(set(rows_which.tolist()))
            index = np.searchsorted(pick, rows_which)
            chosen = [versions[i] for i in pick]
            k = rows[:, None] - np.stack([v.anchor for v in chosen])[index]
            target = np.stack([v.target for v in chosen])[index]
            gap = np.stack([v.power0 for v in chosen])[index] - target
            soc0 = np.stack([v.soc0 for v in chosen])[index]
            connected = np.stack([v.connected for v in chosen])[index]
            return k, target, gap, soc0, connected

        k, target, gap, soc0, connected = gather(steps, which)
        a = self._alpha**k
        energy = (target * k * self.dt_s + gap * self._tau * (1.0 - a)) / 3600.0
        soc = soc0 + energy / self.capacity_wh * 100.0
        count = connected.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(connected, soc, 0.0).sum(axis=1) / count
        low = np.where(connected, soc, np.inf).min(axis=1)
        self.lowest_soc = np.minimum(self.lowest_soc, np.where(connected, soc, np.inf).min(axis=0))
        mean = np.where(count > 0, mean, math.nan)
        low = np.where(count > 0, low, math.nan)
        if len(power_steps):
            k, target, gap, _, _ = gather(power_steps, power_which)
            power = target + gap * self._alpha**k
        else:
            power = np.zeros((0, self.n))
        return FleetRows(mean, low, count.astype(np.float64), power)

    # -- changes ----------------------------------------------------------------------------------
    def _keep_version(self, last_step: int) -> None:
        """Keep the anchors in force up to ``last_step`` before they move (once per step)."""
        if self._versions and self._versions[-1].last_step >= last_step:
            return
        self._versions.append(
            _Anchors(
                last_step,
                self.anchor.copy(),
                self.power0.copy(),
                self.soc0.copy(),
                self.target.copy(),
                self.connected.copy(),
            )
        )

    def _settle(self, cars: Cars, step: int, evaluated: _Evaluated | None = None) -> None:
        """Move the anchor of ``cars`` to ``step`` (their state there, counters included);
        ``evaluated``: ``_evaluate(cars, step)`` if already at hand."""
        power, soc, charged, discharged, k = evaluated or self._evaluate(cars, step)
        self.charged0[cars] += charged
        self.discharged0[cars] += discharged
        self.below0[cars] += np.where(self._under[cars], discharged, 0.0)
        self.requests0[cars] += np.where(self._requesting[cars], k, 0)
        self.power0[cars] = power
        self.soc0[cars] = soc
        self.anchor[cars] = step

    def _retarget(
        self, cars: Cars, target: FloatArray | None = None, requesting: BoolArray | None = None
    ) -> None:
        """Targets, flags and how long the closed form holds, from the anchored state of ``cars``
        (``target``/``requesting``: already worked out for that state)."""
        setpoint, soc, connected = self.setpoint_w[cars], self.soc0[cars], self.connected[cars]
        if target is None or requesting is None:
            target = self.targets_of(cars, setpoint, soc, connected, self.tripped_now)
            requesting = self.floor_requests(cars, setpoint, soc, connected)
        self.target[cars] = target
        self._requesting[cars] = requesting
        min_soc = self.min_soc[cars]
        self._under[cars] = soc < min_soc - FLOOR_TOLERANCE_PCT
        self.valid_until[cars] = self._horizon(cars, soc, target, setpoint, connected)

    def _horizon(
        self, cars: Cars, soc: FloatArray, target: FloatArray, setpoint: FloatArray, connected: BoolArray
    ) -> IntArray:
        """The last step up to which the closed form from the anchors of ``cars`` holds: before the
        SoC could reach a threshold where crossing it changes something (see the module doc)."""
        power0 = self.power0[cars]
        rate = np.maximum(np.abs(power0), np.abs(target)) * self._pct_per_w[cars]  # SoC per step, at most
        moving = (rate > 0) & connected
        rate = np.where(moving, rate, 1.0)
        # rows: 100 %, the hard floor, the V2X floor + and - the tolerance
        ahead = self._thresholds[:, cars] - soc
        steps = self._steps_within(np.abs(ahead).min(axis=0), rate)
        # cars that could reach some threshold soon: is it one where crossing it matters?
        close = moving & (steps < _CLOSE_STEPS)
        if close.any():
            near = np.flatnonzero(close)
            first = (target + (power0 - target) * self._mean[cars])[near]
            t, sp = target[near], setpoint[near]
            up, down = (first > 0) | (t > 0), (first < 0) | (t < 0)
            matters = np.empty((4, len(near)), dtype=np.bool_)
            matters[0] = (sp > 0) | up  # the charge target needs SoC < 100 %; charging stops there
            matters[1] = (sp < 0) | down  # the discharge target needs SoC > the floor; it stops there
            matters[2] = (sp < 0) & self.bidirectional[cars][near]  # floor requests count at the floor
            matters[3] = down  # discharge under the floor is counted
            a = ahead[:, near]
            matters &= ((a >= 0) & up) | ((a <= 0) & down)  # the SoC can go there
            distance = np.where(matters, np.abs(a), np.inf).min(axis=0)
            steps[near] = self._steps_within(distance, rate[near])
        steps = np.where(moving, steps, float(NEVER))
        result: IntArray = np.minimum(self.anchor[cars] + steps.astype(np.int64), NEVER)
        return result

    @staticmethod
    def _steps_within(distance: FloatArray, rate: FloatArray) -> FloatArray:
        """Whole steps that surely stay short of ``distance`` at ``rate`` per step (one to spare)."""
        steps: FloatArray = np.maximum(np.floor(np.minimum(distance / rate, MAX_RATIO)) - 1.0, 0.0)
        return steps

    def _step_exactly(self, cars: Cars) -> None:
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
        self._incremental_updates = 0

    def set_setpoints(self, cars: Sequence[int] | IntArray, values: Sequence[float] | FloatArray) -> None:
        """New setpoints at step ``now``; the cars follow them from the next step on."""
        if len(cars) <= SCALAR_CHANGES:
            index = cars.tolist() if isinstance(cars, np.ndarray) else cars
            numbers = values.tolist() if isinstance(values, np.ndarray) else values
            self._set_setpoints_scalar(index, numbers)
            return
        index_array = np.asarray(cars, dtype=np.int64)
        self.setpoint_w[index_array] = values
        live_index = index_array[self.connected[index_array]]
        if not len(live_index):
            return
        # every car at once: slices instead of index arrays (views, no copies)
        live: Cars = slice(None) if len(live_index) == self.n else live_index
        evaluated = self._evaluate(live, self.now)
        soc, on = evaluated[1], self.connected[live]
        setpoint = self.setpoint_w[live]
        target = self.targets_of(live, setpoint, soc, on, self.tripped_now)
        requesting = self.floor_requests(live, setpoint, soc, on)
        different = (target != self.target[live]) | (requesting != self._requesting[live])
        if not different.any():
            return
        self._keep_version(self.now)
        if different.all():
            self._settle(live, self.now, evaluated)
            self._retarget(live, target, requesting)
        else:
            moved = (self._all if isinstance(live, slice) else live)[different]
            power, soc, charged, discharged, k = evaluated
            parts = (
                power[different],
                soc[different],
                charged[different],
                discharged[different],
                k[different],
            )
            self._settle(moved, self.now, parts)
            self._retarget(moved, target[different], requesting[different])
        self._next_event = self._first_event()
        self._recompute_totals()

    def _set_setpoints_scalar(self, cars: Sequence[int], values: Sequence[float]) -> None:
        """``set_setpoints`` car by car in plain Python (the same steps as the numpy path)."""
        rules, now, tripped = self._rules, self.now, self.tripped_now
        moved = []
        for car, value in zip(cars, values, strict=True):
            self.setpoint_w[car] = value
            if not self.connected.item(car):
                continue
            k = now - self.anchor.item(car)
            old_target = self.target.item(car)
            state = rules.evaluate(car, k, self.power0.item(car), self.soc0.item(car), old_target)
            target = rules.target(car, value, state[1], True, tripped)
            requesting = rules.requesting(car, value, state[1], True)
            if target != old_target or requesting != self._requesting.item(car):
                moved.append((car, value, k, state, old_target, target, requesting))
        if not moved:
            return
        self._keep_version(now)
        self._rebase_totals()
        for car, value, k, (power, soc, charged, discharged), old_target, target, requesting in moved:
            self.charged0[car] = self.charged0.item(car) + charged
            self.discharged0[car] = self.discharged0.item(car) + discharged
            if self._under.item(car):
                self.below0[car] = self.below0.item(car) + discharged
            if self._requesting.item(car):
                self.requests0[car] = self.requests0.item(car) + k
            self.power0[car] = power
            self.soc0[car] = soc
            self.anchor[car] = now
            self.target[car] = target
            self._requesting[car] = requesting
            self._under[car] = soc < rules.min_soc[car] - FLOOR_TOLERANCE_PCT
            until = min(now + rules.steps_valid(car, soc, power, target, value, True, NEVER), NEVER)
            self.valid_until[car] = until
            self._next_event = min(self._next_event, until)
            # the car's decaying part at ``now`` goes from (power - old_target) to (power - target)
            self._group_c[self._group_of_list[car]] += old_target - target
            self._sum_target += target - old_target
        self._incremental_updates += 1
        if self._incremental_updates >= _EXACT_TOTALS_EVERY:
            self._recompute_totals()

    def _rebase_totals(self) -> None:
        """Express the lag groups' decaying parts at step ``now``."""
        k = self.now - self._ref
        if k:
            self._group_c = [c * alpha**k for alpha, c in zip(self._group_alpha, self._group_c, strict=True)]
            self._ref = self.now

    def advance(self, voltage_v: float) -> list[int]:
        """Step from ``now`` to ``now + 1`` (``voltage_v``: the chargers' voltage during the step).
        Returns the cars whose connection changed at the new step."""
        step = self.now
        changed = False
        tripped = self.tripped(voltage_v)
        if tripped != self.tripped_now:
            self._keep_version(step)
            changed = True
            self._settle(self._all, step)
            self.tripped_now = tripped
            self._retarget(self._all)
            if tripped:  # power drops to 0 at once: the kernel does that
                self._step_exactly(self._all)
            self._next_event = self._first_event()
        if self._next_event <= step:
            due = np.flatnonzero(self.valid_until <= step)
            if len(due):
                self._keep_version(step)
                changed = True
                self._settle(due, step)
                self._retarget(due)
                close = due[self.valid_until[due] <= step]
                if len(close):
                    self._step_exactly(close)
            else:  # the car that was due first has been re-anchored since
                self._next_event = self._first_event()
        self.now = step + 1
        switched: list[int] = []
        if self._next_connection <= self.now:
            self._keep_version(step)
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
