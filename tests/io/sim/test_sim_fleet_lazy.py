"""The closed-form fleet (LazyFleet) against the step-by-step reference (FleetModel): same power, SoC,
connections and counters on random fleets, setpoint schedules, trips, arrivals and departures."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plcrun.io.sim import fleet_lazy
from plcrun.io.sim.fleet import FleetModel, FloatArray
from plcrun.io.sim.fleet_lazy import NEVER, LazyFleet
from plcrun.io.sim.scenario import EvSpec, FleetSpec

from tests.io.sim.simrig import CAR

DT = 0.01
NOMINAL_V = 230.0


@dataclass
class Plan:
    """What happens to a fleet: setpoint changes (step -> {car: W}) and low-voltage steps."""

    spec: FleetSpec
    steps: int
    setpoints: dict[int, dict[int, float]]
    low_voltage: frozenset[int]
    rows_every: int = 0  # check the history rows in batches of this many steps (0: once at the end)


def run_both(plan: Plan) -> tuple[FleetModel, LazyFleet, float]:
    """Step the reference and the lazy fleet through ``plan``, comparing the state at every step and
    the history rows (``LazyFleet.rows``) in batches; returns both and the largest power difference
    seen outside a battery-full/floor tie (see ``_tie``)."""
    reference = FleetModel(plan.spec, NOMINAL_V)
    lazy = LazyFleet(plan.spec, NOMINAL_V, DT)
    worst = 0.0
    expected: list[tuple[float, float, float, FloatArray]] = []  # (soc mean, soc min, connected, power)
    first_pending = 0
    for step in range(plan.steps + 1):
        worst = max(worst, _compare_state(reference, lazy))
        on = reference.soc_pct[reference.connected]
        mean, low = (float(on.mean()), float(on.min())) if len(on) else (math.nan, math.nan)
        expected.append((mean, low, float(len(on)), reference.power_w.copy()))
        if step == plan.steps or (plan.rows_every and (step + 1 - first_pending) >= plan.rows_every):
            _compare_rows(lazy, reference, first_pending, step, expected[first_pending:])
            first_pending = step + 1
        if step == plan.steps:
            break
        changes = plan.setpoints.get(step)
        if changes:
            cars = np.array(sorted(changes), dtype=np.int64)
            values = np.array([changes[c] for c in sorted(changes)])
            reference.setpoint_w[cars] = values
            lazy.set_setpoints(cars, values)
        voltage = 10.0 if step in plan.low_voltage else NOMINAL_V
        reference.step(step * DT, DT, voltage)
        lazy.advance(voltage)
    return reference, lazy, worst


def _compare_rows(
    lazy: LazyFleet,
    reference: FleetModel,
    first: int,
    last: int,
    expected: list[tuple[float, float, float, FloatArray]],
) -> None:
    every_other = np.arange(first + first % 2, last + 1, 2, dtype=np.int64)
    rows = lazy.rows(first, last, every_other)
    mean, low, connected, power = (np.array([e[i] for e in expected]) for i in range(4))
    assert np.array_equal(rows.connected, connected)
    assert rows.soc_mean_pct == pytest.approx(mean, abs=1e-9, nan_ok=True)
    assert rows.soc_min_pct == pytest.approx(low, abs=1e-9, nan_ok=True)
    wanted = power[every_other - first]
    ties = np.array([[_tie(float(s), car, reference) for car, s in enumerate(reference.soc_pct)]])
    assert np.where(ties, 0.0, rows.power_w - wanted) == pytest.approx(0.0, abs=1e-6)


def _tie(soc: float, car: int, fleet: FleetModel) -> bool:
    """A car exactly at 100 % or its hard floor: whether the last step's energy fitted the room
    exactly or overshot it by a rounding error decides if it stops now or one step later."""
    return abs(soc - 100.0) < 1e-9 or abs(soc - float(fleet.hard_floor[car])) < 1e-9


def _compare_state(reference: FleetModel, lazy: LazyFleet) -> float:
    assert np.array_equal(reference.connected, lazy.connected)
    power, soc = lazy.state_of(np.arange(lazy.n, dtype=np.int64))
    assert soc == pytest.approx(reference.soc_pct, abs=1e-9)
    worst = tied = 0.0
    for car in range(lazy.n):
        gap = abs(float(power[car] - reference.power_w[car]))
        if gap > 1e-6 and (
            _tie(float(soc[car]), car, reference) or _tie(reference.soc_pct[car], car, reference)
        ):
            tied += gap
            continue
        worst = max(worst, gap)
        scalar_power, scalar_soc = lazy.state_of_car(car)
        assert scalar_power == pytest.approx(float(power[car]), rel=1e-12, abs=1e-9)
        assert scalar_soc == pytest.approx(float(soc[car]), rel=1e-12)
    total = float(reference.power_w.sum())
    assert lazy.total_power() == pytest.approx(total, abs=1e-6 + worst * lazy.n + tied)
    return worst


def _assert_counters_match(reference: FleetModel, lazy: LazyFleet, energy_tol_wh: float = 1e-9) -> None:
    counters = lazy.counters()
    assert counters.energy_charged_wh == pytest.approx(
        reference.energy_charged_wh, rel=1e-9, abs=energy_tol_wh
    )
    assert counters.energy_discharged_wh == pytest.approx(
        reference.energy_discharged_wh, rel=1e-9, abs=energy_tol_wh
    )
    assert counters.below_floor_discharge_wh == pytest.approx(
        reference.below_floor_discharge_wh, rel=1e-9, abs=energy_tol_wh
    )
    assert np.array_equal(counters.floor_discharge_requests, reference.floor_discharge_requests)
    assert counters.soc_pct == pytest.approx(reference.soc_pct, abs=1e-9)


# --------------------------------------------------------------------------------- hypothesis
levels = st.sampled_from([-15000.0, -9000.0, -4000.0, -1000.0, 0.0, 700.0, 3000.0, 7400.0, 12000.0])


@st.composite
def cars(draw: st.DrawFn) -> EvSpec:
    arrive = draw(st.sampled_from([0.0, 0.0, 0.37, 1.234]))
    depart = draw(st.one_of(st.none(), st.floats(0.05, 3.0).map(lambda d: arrive + d)))
    return EvSpec(
        capacity_kwh=draw(st.floats(0.005, 80.0)),
        p_charge_max_w=draw(st.floats(3000.0, 22000.0)),
        p_charge_min_w=draw(st.sampled_from([0.0, 1380.0, 4140.0])),
        p_discharge_max_w=draw(st.floats(3000.0, 11000.0)),
        p_discharge_min_w=draw(st.sampled_from([0.0, 1380.0])),
        bidirectional=draw(st.booleans()),
        soc_pct=draw(st.one_of(st.floats(0.0, 100.0), st.sampled_from([100.0, 30.0, 29.9, 99.95, 30.02]))),
        min_soc_pct=draw(st.sampled_from([20.0, 30.0])),
        target_soc_pct=80.0,
        arrive_s=arrive,
        depart_s=depart,
        lag_s=draw(st.one_of(st.just(0.0), st.floats(0.02, 3.0))),
    )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    evs = tuple(draw(st.lists(cars(), min_size=1, max_size=6)))
    spec = FleetSpec(
        evs=evs,
        car_enforces_floor=draw(st.booleans()),
        trip_below_voltage_pu=draw(st.sampled_from([0.0, 0.5])),
    )
    steps = draw(st.integers(50, 400))
    setpoints: dict[int, dict[int, float]] = {}
    for step in draw(st.lists(st.integers(0, steps - 1), max_size=12)):
        chosen = draw(st.lists(st.integers(0, len(evs) - 1), min_size=1, max_size=len(evs), unique=True))
        setpoints[step] = {car: draw(levels) for car in chosen}
    low: set[int] = set()
    for start in draw(st.lists(st.integers(0, steps - 1), max_size=2)):
        low.update(range(start, start + draw(st.integers(1, 30))))
    if draw(st.booleans()):  # a ramp: new setpoints every step for a while
        start = draw(st.integers(0, steps - 1))
        for step in range(start, min(steps, start + draw(st.integers(5, 60)))):
            setpoints[step] = {car: draw(levels) + step for car in range(len(evs))}
    return Plan(spec, steps, setpoints, frozenset(low), draw(st.sampled_from([0, 1, 7, 64])))


@pytest.mark.slow
@pytest.mark.parametrize("scalar_changes", [fleet_lazy.SCALAR_CHANGES, 0], ids=["python", "numpy"])
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_closed_form_fleet_and_its_history_rows_match_step_by_step(plan: Plan, scalar_changes: int) -> None:
    # setpoint changes of a few cars go through plain Python, of many through numpy: both are checked
    with patch.object(fleet_lazy, "SCALAR_CHANGES", scalar_changes):
        reference, lazy, worst = run_both(plan)
    assert worst < 1e-6
    # a tie (see _tie) can shift a battery's stop by one step, never the energy by more than that step
    step_energy = max(max(ev.p_charge_max_w, ev.p_discharge_max_w) for ev in plan.spec.evs) * DT / 3600.0
    _assert_counters_match(reference, lazy, energy_tol_wh=1e-9 + step_energy * 1e-6)


# --------------------------------------------------------------------------------- examples
def plan_of(*evs: EvSpec, steps: int, setpoints: dict[int, dict[int, float]], enforce: bool = True) -> Plan:
    return Plan(FleetSpec(evs=evs, car_enforces_floor=enforce), steps, setpoints, frozenset())


def test_a_steady_car_is_not_touched_until_its_battery_could_fill() -> None:
    lazy = LazyFleet(FleetSpec(evs=(CAR,)), NOMINAL_V, DT)
    lazy.set_setpoints(np.array([0]), np.array([11000.0]))
    # 50 % of 50 kWh to go at most 11 kW: no event for hours, and the total power is a closed form
    assert lazy.valid_until[0] > 100_000
    for _ in range(500):
        lazy.advance(NOMINAL_V)
    assert lazy.anchor[0] == 0  # never re-anchored
    assert lazy.total_power() == pytest.approx(11000.0 * (1 - np.exp(-5.0)), rel=1e-12)
    assert lazy.counters().energy_charged_wh[0] == pytest.approx(
        11000.0 * (5.0 - (1 - np.exp(-5.0))) / 3600.0, rel=1e-12
    )


def test_discharge_to_the_floor_stops_at_the_same_step_as_the_reference() -> None:
    # 1 kWh car at 31 %, floor 30 %: 10 Wh above the floor at ~10 kW with a lag
    car = replace(CAR, capacity_kwh=1.0, soc_pct=31.0, lag_s=0.3)
    plan = plan_of(car, steps=600, setpoints={5: {0: -10000.0}, 550: {0: -8000.0}})
    reference, lazy, worst = run_both(plan)
    assert worst < 1e-6
    assert reference.soc_pct[0] == pytest.approx(30.0, abs=1e-9) and reference.power_w[0] == 0.0
    _assert_counters_match(reference, lazy)
    assert lazy.counters().floor_discharge_requests[0] > 0  # asked again at the floor: counted per step
    assert lazy.valid_until[0] == NEVER  # at the floor with no power: nothing can happen any more


def test_charged_and_discharged_are_split_where_the_step_energy_changes_sign() -> None:
    # from -10 kW to +5 kW through a 2 s lag: the first steps still discharge, then it charges
    plan = plan_of(replace(CAR, lag_s=2.0), steps=800, setpoints={0: {0: -10000.0}, 300: {0: 5000.0}})
    reference, lazy, worst = run_both(plan)
    assert worst < 1e-6
    assert reference.energy_discharged_wh[0] > 1.0 and reference.energy_charged_wh[0] > 1.0
    _assert_counters_match(reference, lazy)


def test_below_floor_discharge_without_car_enforcement() -> None:
    car = replace(CAR, capacity_kwh=0.5, soc_pct=30.5, lag_s=0.1)
    plan = plan_of(car, steps=500, setpoints={0: {0: -9000.0}, 400: {0: 6000.0}}, enforce=False)
    reference, lazy, worst = run_both(plan)
    assert worst < 1e-6
    assert reference.below_floor_discharge_wh[0] > 1.0
    _assert_counters_match(reference, lazy)


def test_sessions_and_trips_follow_the_schedule() -> None:
    late = replace(CAR, arrive_s=0.5, lag_s=0.0)
    leaving = replace(CAR, depart_s=1.503, lag_s=0.4)
    spec = FleetSpec(evs=(late, leaving), trip_below_voltage_pu=0.5)
    plan = Plan(spec, 300, {0: {0: 5000.0, 1: -6000.0}, 60: {0: 7000.0}}, frozenset(range(100, 120)))
    reference, lazy, worst = run_both(plan)
    assert worst < 1e-6
    assert list(lazy.connected) == [True, False]
    _assert_counters_match(reference, lazy)


def test_many_lag_values_use_the_vectorised_total() -> None:
    rng = np.random.default_rng(7)
    evs = tuple(
        replace(CAR, lag_s=float(lag), soc_pct=float(soc))
        for lag, soc in rng.uniform(0.1, 2, (20, 2)) * (1, 40)
    )
    setpoints = {
        k * 40: {car: float(v) for car, v in enumerate(rng.uniform(-11000, 11000, 20))} for k in range(5)
    }
    reference, lazy, worst = run_both(plan_of(*evs, steps=220, setpoints=setpoints))
    assert worst < 1e-6
    _assert_counters_match(reference, lazy)
