"""The fleet rules for one car on Python floats, for changes that touch only a few cars.

numpy costs about a microsecond per call whatever the array size, and re-anchoring a car takes a
hundred calls; for a handful of cars plain Python is several times faster. These functions are the
per-car twins of ``FleetParams.targets_of`` / ``floor_requests`` and of ``LazyFleet._evaluate`` and
its horizon (``LazyFleet._retarget``): the same formulas in the same order, so both paths agree to
the last bits or nearly (tests/io/sim/test_sim_fleet_lazy.py runs both against ``FleetModel``).
"""

from __future__ import annotations

import math

from .fleet import FLOOR_TOLERANCE_PCT, FleetParams

MAX_RATIO = 1e15  # caps distance / rate before it becomes a step count


class CarRules:
    """Per-car limits of a fleet as Python lists, and the rules applied to one car."""

    def __init__(self, params: FleetParams, dt_s: float) -> None:
        self.dt_s = dt_s
        alpha, mean = params._lag_factors(dt_s)
        self.alpha: list[float] = alpha.tolist()
        self.mean: list[float] = mean.tolist()
        self.tau: list[float] = [lag if lag > 0 else 0.0 for lag in params.lag_s.tolist()]
        self.capacity: list[float] = params.capacity_wh.tolist()
        self.pct_per_w: list[float] = [dt_s / 3600.0 / c * 100.0 for c in self.capacity]
        self.charge_min: list[float] = params.p_charge_min.tolist()
        self.charge_max: list[float] = params.p_charge_max.tolist()
        self.discharge_min: list[float] = params.p_discharge_min.tolist()
        self.discharge_max: list[float] = params.p_discharge_max.tolist()
        self.bidirectional: list[bool] = params.bidirectional.tolist()
        self.min_soc: list[float] = params.min_soc.tolist()
        self.hard_floor: list[float] = params.hard_floor.tolist()

    def target(self, car: int, setpoint: float, soc: float, connected: bool, tripped: bool) -> float:
        """``FleetParams.targets_of`` for one car."""
        if tripped or not connected:
            return 0.0
        if setpoint > 0:
            if soc >= 100.0 or setpoint < self.charge_min[car]:
                return 0.0
            return min(setpoint, self.charge_max[car])
        if setpoint < 0:
            magnitude = -setpoint
            if magnitude < self.discharge_min[car] or not (
                self.bidirectional[car] and soc > self.hard_floor[car]
            ):
                return -0.0
            return -min(magnitude, self.discharge_max[car])
        return 0.0

    def requesting(self, car: int, setpoint: float, soc: float, connected: bool) -> bool:
        """``FleetParams.floor_requests`` for one car."""
        return bool(
            connected
            and self.bidirectional[car]
            and soc <= self.min_soc[car] + FLOOR_TOLERANCE_PCT
            and setpoint < 0
        )

    def evaluate(
        self, car: int, k: int, power0: float, soc0: float, target: float
    ) -> tuple[float, float, float, float]:
        """(power, SoC, charged, discharged) ``k`` steps after an anchor (``LazyFleet._evaluate``)."""
        alpha, h = self.alpha[car], self.dt_s
        a = alpha**k
        gap = power0 - target
        tau = self.tau[car]
        power = target + gap * a
        energy = (target * k * h + gap * tau * (1.0 - a)) / 3600.0
        soc = soc0 + energy / self.capacity[car] * 100.0
        decay = gap * self.mean[car]
        if (target + decay) * target >= 0:  # the step energy keeps its sign
            if energy > 0:
                return power, soc, energy, 0.0
            return power, soc, 0.0, -energy

        def settled(m: float) -> bool:
            return bool((target + decay * alpha**m) * target >= 0)

        first = float(math.ceil(math.log(-target / decay) / math.log(alpha)))
        if first >= 1 and settled(first - 1):
            first -= 1
        if not settled(first):
            first += 1
        split = min(max(first, 0.0), float(k))
        a_split = alpha**split
        early = (target * split * h + gap * tau * (1.0 - a_split)) / 3600.0
        late = (target * (k - split) * h + gap * tau * (a_split - a)) / 3600.0
        charged = max(early, 0.0) + max(late, 0.0)
        discharged = max(-early, 0.0) + max(-late, 0.0)
        return power, soc, charged, discharged

    def steps_valid(
        self, car: int, soc: float, power0: float, target: float, setpoint: float, connected: bool, never: int
    ) -> int:
        """How many steps the closed form holds from this anchored state (``LazyFleet._retarget``)."""
        rate = max(abs(power0), abs(target)) * self.pct_per_w[car]
        if not (rate > 0 and connected):
            return never
        first = target + (power0 - target) * self.mean[car]
        up, down = first > 0 or target > 0, first < 0 or target < 0
        min_soc = self.min_soc[car]

        def reach(threshold: float, matters: bool) -> float:
            if not matters:
                return math.inf
            ahead = up if threshold > soc else down if threshold < soc else up or down
            return abs(soc - threshold) if ahead else math.inf

        distance = min(
            min(reach(100.0, setpoint > 0 or up), reach(self.hard_floor[car], setpoint < 0 or down)),
            min(
                reach(min_soc + FLOOR_TOLERANCE_PCT, setpoint < 0 and self.bidirectional[car]),
                reach(min_soc - FLOOR_TOLERANCE_PCT, down),
            ),
        )
        steps = math.floor(min(distance / rate, MAX_RATIO)) - 1.0
        return int(max(steps, 0.0))
