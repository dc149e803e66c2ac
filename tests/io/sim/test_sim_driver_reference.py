"""SimDriver (closed-form fleet, batched history) against the reference fleet stepped per scan beside it:
every meter power sample, every reported SoC/power and every history row agree."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from plcrun.io.sim import Scenario, SimDriver
from plcrun.io.sim.fleet import FleetModel
from plcrun.io.sim.meter import collapse_voltage

from tests.io.sim.simrig import METER, PREFIX

ScenarioFactory = Callable[..., Scenario]

MIXED = """
[scenario]
duration_s = 12.0
seed = 4
[grid]
nominal_voltage_v = 230.0
[[grid.segments]]
kind = "noise"
hz = 50.0
sigma_hz = 0.01
sigma_v = 1.0
[[faults]]
kind = "voltage_collapse"
voltage_v = 20.0
start_s = 6.0
end_s = 6.4
[site]
base_load_profile = [[0, 2000], [8, 5000]]
[fleet]
n_evs = 7
seed = 9
report_period_s = 0.1
trip_below_voltage_pu = 0.5
[[fleet.evs]]
capacity_kwh = 0.05
soc_pct = 31.0
min_soc_pct = 30.0
target_soc_pct = 80.0
p_charge_max_w = 11000.0
p_charge_min_w = 1000.0
p_discharge_max_w = 11000.0
p_discharge_min_w = 1000.0
bidirectional = true
lag_s = 0.2
[[fleet.evs]]
model = "midsize_bidi"
arrive_s = 2.0
depart_s = 9.004
soc_pct = 50.0
min_soc_pct = 30.0
target_soc_pct = 80.0
"""


def _reference_step(reference: FleetModel, scenario: Scenario, driver: SimDriver, step: int) -> None:
    t_s = step * scenario.scan_period_s
    voltage = collapse_voltage(scenario.faults, t_s, float(driver.grid.at(t_s)[1]))
    reference.step(t_s, scenario.scan_period_s, voltage)


def test_samples_and_history_match_the_reference_fleet(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text(MIXED)
    n = scenario.n_evs
    driver = SimDriver(scenario, METER, PREFIX, n_evs=n + 1)
    reference = FleetModel(scenario.fleet, scenario.nominal_voltage_v)
    rng = np.random.default_rng(3)
    setpoints = np.zeros(n)
    fleet_power, soc_mean, soc_min, per_car = [], [], [], []
    reported = 0
    for step in range(scenario.n_steps + 1):
        now = step * scenario.scan_period_ns
        samples = driver.read_inputs(now)
        base = float(np.interp(step * scenario.scan_period_s, [0, 8], [2000, 5000]))
        # the meter's register resolution is 1 W: the reading is the true value rounded to it
        assert samples[METER["power_w"]].value == pytest.approx(
            base + reference.power_w.sum(), abs=0.5 + 1e-6
        )
        for car in range(n):
            soc = samples.get(f"{PREFIX}[{car + 1}].soc_pct")
            if soc is not None and reference.connected[car]:
                reported += 1
                assert soc.value == pytest.approx(reference.soc_pct[car], abs=0.005 + 1e-9)
                power = samples[f"{PREFIX}[{car + 1}].p_present_w"].value
                assert power == pytest.approx(reference.power_w[car], abs=0.5 + 1e-6)
        fleet_power.append(reference.power_w.sum())
        connected = reference.soc_pct[reference.connected]
        soc_mean.append(connected.mean() if len(connected) else math.nan)
        soc_min.append(connected.min() if len(connected) else math.nan)
        per_car.append(reference.power_w.copy())
        if step % 50 == 0 or 300 <= step < 340:  # now and then, and every scan for a while
            setpoints = rng.choice([-11000.0, -3000.0, 0.0, 2500.0, 9000.0], n)
        driver.write_outputs(
            now, {f"{PREFIX}[{i + 1}].p_setpoint_w": float(v) for i, v in enumerate(setpoints)}
        )
        reference.setpoint_w[:] = setpoints
        if step < scenario.n_steps:  # the history ends with the state of the last scan
            _reference_step(reference, scenario, driver, step)
    assert reported > 500
    history = driver.history()
    assert np.array_equal(history.t_s, np.arange(scenario.n_steps + 1) * scenario.scan_period_s)
    assert history.fleet_power_w == pytest.approx(np.array(fleet_power), abs=1e-6)
    assert history.soc_mean_pct == pytest.approx(np.array(soc_mean), abs=1e-9, nan_ok=True)
    assert history.soc_min_pct == pytest.approx(np.array(soc_min), abs=1e-9, nan_ok=True)
    assert history.per_ev_power_w == pytest.approx(np.array(per_car, dtype=np.float32), abs=1e-2)
    assert set(np.unique(history.connected)) == {6.0, 7.0}
    assert history.energy_charged_wh == pytest.approx(reference.energy_charged_wh, rel=1e-9, abs=1e-9)
    assert history.energy_discharged_wh == pytest.approx(reference.energy_discharged_wh, rel=1e-9, abs=1e-9)
    assert np.array_equal(history.floor_discharge_requests, reference.floor_discharge_requests)
    assert history.final_soc_pct == pytest.approx(reference.soc_pct, abs=1e-9)


def test_steady_setpoints_leave_the_fleet_alone(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text("[scenario]\nduration_s = 30.0\n[fleet]\nn_evs = 50\nseed = 2\n")
    driver = SimDriver(scenario, METER, PREFIX)
    values = {f"{PREFIX}[{i + 1}].p_setpoint_w": 5000.0 for i in range(50)}
    driver.read_inputs(0)
    driver.write_outputs(0, values)
    anchors = driver.fleet.anchor.copy()
    for step in range(1, 2001):
        driver.read_inputs(step * 10_000_000)
        driver.write_outputs(step * 10_000_000, dict(values))
    assert np.array_equal(
        driver.fleet.anchor, anchors
    )  # 20 s of scans, no car evaluated but the reporting ones
    history = driver.history()
    assert history.setpoint_w[-1] == 250_000.0 and history.fleet_power_w[-1] > 240_000.0
    assert np.all(np.diff(history.soc_mean_pct[1:]) > 0)


def test_repeated_bad_setpoints_count_in_every_scan(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text("[scenario]\nduration_s = 1.0\n[fleet]\nn_evs = 2\n")
    driver = SimDriver(scenario, METER, PREFIX)
    nan = float("nan")
    for step in range(5):
        driver.read_inputs(step * 10_000_000)
        driver.write_outputs(0, {f"{PREFIX}[1].p_setpoint_w": nan, f"{PREFIX}[2].p_setpoint_w": 4000.0})
    assert driver.bad_setpoints == 5
    assert list(driver.fleet.setpoint_w) == [0.0, 4000.0]
    driver.write_outputs(
        0, {f"{PREFIX}[1].p_setpoint_w": np.float32(5000.0), f"{PREFIX}[2].p_setpoint_w": True}
    )
    assert driver.bad_setpoints == 5 and list(driver.fleet.setpoint_w) == [5000.0, 1.0]
