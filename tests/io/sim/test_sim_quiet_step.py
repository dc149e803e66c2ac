"""The simulation's fused quiet step (``SimDriver._quiet_step``, and ``_quiet_read`` for a read one
step on) against the general step
(``fleet.advance`` + ``_observe``): the same groups in every read and the same history bit for bit,
through meter faults, a voltage collapse with tripped chargers, arrivals and departures, changing
setpoints, reads that cover several steps and grid chunk boundaries."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from plcrun.executor.driver_api import InputGroup
from plcrun.io.sim import Scenario, SimDriver
from plcrun.io.sim.scenario_load import load_with_fleet_size

from tests.io.sim.simrig import METER, PREFIX, StepClock
from tests.io.sim.test_sim_driver import THREE_CARS


def _run(scenario: Scenario, fused: bool, steps: int) -> tuple[list[object], SimDriver, int]:
    driver = SimDriver(scenario, METER, PREFIX, realtime=False)
    taken = 0
    if not fused:
        driver._quiet_step = lambda step: False  # type: ignore[method-assign]
        driver._quiet_read = lambda step: None  # type: ignore[method-assign]
    else:
        quiet: Callable[[int], bool] = driver._quiet_step
        quiet_read: Callable[[int], list[InputGroup] | None] = driver._quiet_read

        def counted(step: int) -> bool:
            nonlocal taken
            done = quiet(step)
            taken += done
            return done

        def counted_read(step: int) -> list[InputGroup] | None:
            nonlocal taken
            groups = quiet_read(step)
            taken += groups is not None
            return groups

        driver._quiet_step = counted  # type: ignore[method-assign]
        driver._quiet_read = counted_read  # type: ignore[method-assign]
    clock = StepClock()
    driver.start(clock)
    rng = np.random.default_rng(5)
    n = scenario.n_evs
    setpoints = np.zeros(n)
    reads: list[object] = []
    step = 0
    while step < steps:
        step += 3 if step % 97 == 0 else 1  # now and then a read covers several steps
        clock.now = step * scenario.scan_period_ns
        reads.append(
            [
                (g.paths, list(g.values), g.quality, g.timestamp_ns)
                for g in driver.read_input_groups(clock.now)
            ]
        )
        if step % 40 == 0:
            setpoints = rng.choice([-9000.0, -2000.0, 0.0, 3000.0, 11000.0], n)
        driver.write_outputs(
            clock.now, {f"{PREFIX}[{i + 1}].p_setpoint_w": float(v) for i, v in enumerate(setpoints)}
        )
    return reads, driver, taken


@pytest.mark.parametrize(
    ("name", "evs", "steps"),
    [("sensor_faults", None, 6001), ("loss_of_grid", 12, 4001), ("quiet_grid", 60, 9000)],
)
def test_the_quiet_step_gives_what_the_general_step_gives(name: str, evs: int | None, steps: int) -> None:
    scenario = load_with_fleet_size(name, evs)
    general_reads, general, _ = _run(scenario, fused=False, steps=steps)
    fused_reads, fused, taken = _run(scenario, fused=True, steps=steps)
    assert fused_reads == general_reads
    assert fused.step_index == general.step_index
    assert taken > steps // 2  # most steps of these scenarios are quiet ...
    fused_history, general_history = fused.history(), general.history()
    for field in ("t_s", "grid_hz", "meter_hz", "meter_quality", "voltage_v", "site_power_w"):
        assert np.array_equal(fused_history.series(field), general_history.series(field), equal_nan=True)
    for field in ("fleet_power_w", "setpoint_w", "soc_mean_pct", "soc_min_pct", "connected"):
        assert np.array_equal(fused_history.series(field), general_history.series(field), equal_nan=True)
    assert np.array_equal(fused_history.per_ev_power_w, general_history.per_ev_power_w, equal_nan=True)
    assert np.array_equal(fused_history.final_soc_pct, general_history.final_soc_pct)
    assert fused.bad_setpoints == general.bad_setpoints


def test_steps_with_something_happening_take_the_general_path() -> None:
    scenario = load_with_fleet_size("sensor_faults", None)
    _, _, taken = _run(scenario, fused=True, steps=6001)
    assert taken < 6001 - 100  # the fault windows and the setpoint changes are not quiet


def _setpoint_run(scenario: Scenario, same_mapping: bool, steps: int) -> SimDriver:
    """Setpoints that change now and then (NaN among them, counted as bad) over arrivals and
    departures; handed over as the process image does for an ``outputs_by_value`` driver (the same
    mapping again while the values are equal) or as a new mapping every scan."""
    driver = SimDriver(scenario, METER, PREFIX, realtime=False)
    clock = StepClock()
    driver.start(clock)
    rng = np.random.default_rng(11)
    n = scenario.n_evs
    mapping: dict[str, object] = {}
    for step in range(1, steps):
        clock.now = step * scenario.scan_period_ns
        driver.read_input_groups(clock.now)
        if step % 37 == 0 or not mapping:
            values = rng.choice([-9000.0, 3000.0, 11000.0], n)  # never 0: a switch's 0 shows
            if step % 2:
                values[0] = math.nan
            mapping = {f"{PREFIX}[{i + 1}].p_setpoint_w": float(v) for i, v in enumerate(values)}
        driver.write_outputs(clock.now, mapping if same_mapping else dict(mapping))
    return driver


@pytest.mark.parametrize("name", ["loss_of_grid", "three_cars"])
def test_the_same_mapping_again_records_what_an_equal_one_does(
    name: str, scenario_from_text: Callable[[str], Scenario]
) -> None:
    # three_cars: a car arrives at 2 s and leaves at 6 s (its setpoint goes to 0 at each switch)
    scenario = scenario_from_text(THREE_CARS) if name == "three_cars" else load_with_fleet_size(name, 12)
    again = _setpoint_run(scenario, same_mapping=True, steps=scenario.n_steps)
    equal = _setpoint_run(scenario, same_mapping=False, steps=scenario.n_steps)
    assert again.bad_setpoints == equal.bad_setpoints > 0
    for field in ("setpoint_w", "fleet_power_w", "site_power_w", "soc_mean_pct"):
        assert np.array_equal(again.history().series(field), equal.history().series(field), equal_nan=True)
