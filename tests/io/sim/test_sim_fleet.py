"""The EV fleet model: lag, limits, dead zones, SoC floor and full battery, arrivals and departures."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from plcrun.io.sim.fleet import FleetModel
from plcrun.io.sim.scenario import EvSpec, FleetSpec

from tests.io.sim.simrig import CAR

DT = 0.01


def fleet_of(*evs: EvSpec, enforce: bool = True, trip_pu: float = 0.0) -> FleetModel:
    spec = FleetSpec(evs=evs, car_enforces_floor=enforce, trip_below_voltage_pu=trip_pu)
    return FleetModel(spec, nominal_voltage_v=230.0)


def run(fleet: FleetModel, seconds: float, start_s: float = 0.0, voltage: float = 230.0) -> float:
    steps = round(seconds / DT)
    for k in range(steps):
        fleet.step(start_s + k * DT, DT, voltage)
    return start_s + steps * DT


def test_power_follows_a_step_with_a_first_order_lag() -> None:
    fleet = fleet_of(CAR, replace(CAR, lag_s=0.5), replace(CAR, lag_s=0.0))
    fleet.setpoint_w[:] = 8000.0
    run(fleet, 1.0)
    expected = 8000.0 * (1 - np.exp(-1.0 / np.array([1.0, 0.5])))
    assert fleet.power_w[:2] == pytest.approx(expected, rel=1e-9)
    assert fleet.power_w[2] == 8000.0  # no lag: at the target at once
    run(fleet, 9.0, start_s=1.0)
    assert fleet.power_w[0] == pytest.approx(8000.0, abs=1.0)


def test_energy_is_the_exact_integral_of_the_lagged_power() -> None:
    fleet = fleet_of(CAR)
    fleet.setpoint_w[:] = 10000.0
    run(fleet, 2.0)
    tau = 1.0
    energy_wh = 10000.0 * (2.0 - tau * (1 - math.exp(-2.0 / tau))) / 3600.0
    assert fleet.energy_charged_wh[0] == pytest.approx(energy_wh, rel=1e-9)
    assert fleet.soc_pct[0] == pytest.approx(50.0 + energy_wh / 50000.0 * 100.0, rel=1e-12)


def test_setpoints_are_clamped_to_the_car_limits() -> None:
    fleet = fleet_of(replace(CAR, lag_s=0.0), replace(CAR, lag_s=0.0))
    fleet.setpoint_w[:] = [20000.0, -20000.0]
    run(fleet, 0.1)
    assert list(fleet.power_w) == [11000.0, -10000.0]


def test_dead_zone_between_zero_and_the_minimum_gives_zero() -> None:
    car = replace(CAR, lag_s=0.0)
    fleet = fleet_of(car, car, car, car)
    fleet.setpoint_w[:] = [3000.0, -4000.0, 4140.0, -4140.0]
    run(fleet, 0.1)
    assert list(fleet.power_w) == [0.0, 0.0, 4140.0, -4140.0]


def test_a_car_that_is_not_bidirectional_never_discharges() -> None:
    fleet = fleet_of(replace(CAR, bidirectional=False, lag_s=0.0))
    fleet.setpoint_w[:] = -8000.0
    run(fleet, 1.0)
    assert fleet.power_w[0] == 0.0
    assert fleet.energy_discharged_wh[0] == 0.0
    assert fleet.soc_pct[0] == 50.0


def test_discharge_stops_exactly_at_the_soc_floor() -> None:
    # 1 kWh car at 31 %, floor 30 %: 10 Wh above the floor, discharged at 10 kW -> 3.6 s.
    car = replace(CAR, capacity_kwh=1.0, soc_pct=31.0, lag_s=0.0)
    fleet = fleet_of(car)
    fleet.setpoint_w[:] = -10000.0
    run(fleet, 3.0)
    assert fleet.power_w[0] == -10000.0
    run(fleet, 2.0, start_s=3.0)
    assert fleet.soc_pct[0] == pytest.approx(30.0, abs=1e-9)
    assert fleet.power_w[0] == 0.0
    assert fleet.energy_discharged_wh[0] == pytest.approx(10.0, abs=1e-6)
    assert fleet.below_floor_discharge_wh[0] == 0.0
    # the program keeps asking for discharge at the floor: counted once per step
    assert fleet.floor_discharge_requests[0] > 100


def test_without_car_enforcement_discharge_below_the_floor_is_recorded() -> None:
    car = replace(CAR, capacity_kwh=1.0, soc_pct=31.0, lag_s=0.0)
    fleet = fleet_of(car, enforce=False)
    fleet.setpoint_w[:] = -10000.0
    run(fleet, 5.0)
    assert fleet.soc_pct[0] < 30.0
    assert fleet.below_floor_discharge_wh[0] > 1.0


def test_charging_stops_at_full() -> None:
    car = replace(CAR, capacity_kwh=1.0, soc_pct=99.0, lag_s=0.5)
    fleet = fleet_of(car)
    fleet.setpoint_w[:] = 11000.0
    run(fleet, 10.0)
    assert fleet.soc_pct[0] == 100.0
    assert fleet.power_w[0] == 0.0
    assert fleet.energy_charged_wh[0] == pytest.approx(10.0, abs=1e-6)


def test_arrivals_and_departures_follow_the_schedule() -> None:
    late = replace(CAR, arrive_s=2.0, lag_s=0.0)
    leaving = replace(CAR, depart_s=3.0, lag_s=0.0)
    fleet = fleet_of(late, leaving)
    assert list(fleet.connected) == [False, True]
    fleet.setpoint_w[:] = 5000.0
    t = run(fleet, 1.0)
    assert list(fleet.power_w) == [0.0, 5000.0]
    t = run(fleet, 1.0, start_s=t)  # t = 2 s: the first car has just arrived
    assert list(fleet.connected) == [True, True]
    assert fleet.setpoint_w[0] == 0.0  # a new session starts from zero
    fleet.setpoint_w[0] = 5000.0
    t = run(fleet, 1.0, start_s=t)  # t = 3 s: the second car has left
    assert list(fleet.connected) == [True, False]
    assert list(fleet.power_w) == [5000.0, 0.0]
    before = fleet.soc_pct[1]
    run(fleet, 1.0, start_s=t)
    assert fleet.soc_pct[1] == before  # a departed car no longer charges
    assert fleet.energy_charged_wh[1] == pytest.approx(5000.0 * 3.0 / 3600.0, rel=1e-9)


def test_chargers_trip_on_low_voltage_when_configured() -> None:
    fleet = fleet_of(replace(CAR, lag_s=0.0), trip_pu=0.5)
    fleet.setpoint_w[:] = -8000.0
    run(fleet, 0.5)
    assert fleet.power_w[0] == -8000.0
    run(fleet, 0.5, start_s=0.5, voltage=20.0)
    assert fleet.power_w[0] == 0.0


def test_vectorised_fleet_matches_cars_stepped_alone() -> None:
    rng = np.random.default_rng(5)
    cars = [
        replace(CAR, soc_pct=float(rng.uniform(31, 99)), lag_s=float(rng.uniform(0.2, 2.0)))
        for _ in range(50)
    ]
    setpoints = rng.uniform(-12000, 12000, 50)
    together = fleet_of(*cars)
    together.setpoint_w[:] = setpoints
    run(together, 3.0)
    for index in (0, 17, 49):
        alone = fleet_of(cars[index])
        alone.setpoint_w[:] = setpoints[index]
        run(alone, 3.0)
        assert alone.power_w[0] == together.power_w[index]
        assert alone.soc_pct[0] == together.soc_pct[index]
