"""The measured Toledo trace of the Iberian blackout (28 Apr 2025), when the shared copy is present."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from plcrun.executor.driver_api import Quality
from plcrun.io.sim import GridModel, Scenario, SimDriver

from tests.io.sim.simrig import METER

TRACE = Path("/work/shared/traces/toledo_2025-04-28.csv")
ScenarioFactory = Callable[..., Scenario]

pytestmark = pytest.mark.skipif(not TRACE.is_file(), reason=f"reference trace {TRACE} not present")


def toledo_scenario(factory: ScenarioFactory, start: str, duration: float) -> Scenario:
    return factory(
        f"""
[scenario]
duration_s = {duration}
[grid]
nominal_voltage_v = 27000.0
[[grid.segments]]
kind = "trace"
file = "{TRACE}"
format = "toledo"
start = "28-Apr-2025 {start}"
"""
    )


def test_the_trace_loads_and_the_drop_appears(scenario_from_text: ScenarioFactory) -> None:
    scenario = toledo_scenario(scenario_from_text, "12:33:00", 40.0)
    grid = GridModel(scenario)
    t = np.array([16.0, 18.0, 19.0, 20.0, 21.0, 22.0])
    hz, volts = grid.sample(t)
    assert hz == pytest.approx([49.942, 49.902, 49.229, 48.556, 48.016, 47.476])
    assert volts[0] > 27000.0 and grid.at(24.0)[1] < 1000.0  # the voltage collapses from 12:33:24
    before = grid.sample(np.arange(0.0, 16.0, 0.01))[0]
    assert np.all(np.abs(before - 50.0) < 0.06)


def test_nan_rows_of_the_trace_reach_the_program_as_nan(scenario_from_text: ScenarioFactory) -> None:
    scenario = toledo_scenario(scenario_from_text, "11:01:26", 8.0)  # a NaN row at 11:01:30
    driver = SimDriver(scenario, METER)
    values = [driver.read_inputs(k * 10_000_000)[METER["frequency_hz"]] for k in range(801)]
    assert np.isfinite(values[200].value) and np.isnan(values[400].value)
    assert all(s.quality == Quality.GOOD for s in values)  # raw values: judging them is the program's job
    nan_scans = [k for k, s in enumerate(values) if np.isnan(s.value)]
    assert nan_scans[0] == 201 and nan_scans[-1] == 599
