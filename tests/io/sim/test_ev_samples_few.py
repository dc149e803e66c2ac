"""``EvReporter._measured_few`` (the reporting cars of a usual read, in one loop, rounding by adding
and subtracting 1.5 * 2**52) against ``_measured_python`` (``state_of_car`` and ``round()``): the
same values bit for bit for every slot (connected, left, never filled) at every step of a run with
changing setpoints, arrivals and departures; and the rounding itself against ``round()`` on ties,
signed zeros and the edges of the range it is used in."""

from __future__ import annotations

import math

import numpy as np
from plcrun.io.sim import SimDriver, ev_samples
from plcrun.io.sim.ev_samples import _ZEROS
from plcrun.io.sim.scenario_load import load_with_fleet_size

from tests.io.sim.simrig import METER, PREFIX, StepClock


def test_the_rounding_by_adding_a_large_constant_is_round_half_even() -> None:
    magic, exact = ev_samples._HALF_ULP_ONE, ev_samples._EXACT
    ties = [k + 0.5 for k in range(-40, 40)] + [2.0**49 + 0.5, -(2.0**49) - 0.5]
    near = [k + d for k in (-3, 0, 7, 1e6, 123456789) for d in (-0.5000001, -0.4999999, 0.25, 0.75)]
    edges = [exact - 0.5, -exact + 0.5, math.nextafter(exact, 0.0), 0.0, -0.0, -0.3, -0.5, 1e-300]
    rng = np.random.default_rng(3)
    spread = (rng.standard_normal(20_000) * 10.0 ** rng.integers(-3, 15, 20_000)).tolist()
    for x in ties + near + edges + spread:
        assert -exact < x < exact
        fast = x + magic - magic
        assert fast == float(round(x)) and str(fast) == str(float(round(x))), x


def test_measured_few_gives_what_measured_python_gives_bit_for_bit() -> None:
    scenario = load_with_fleet_size("sensor_faults", 14)  # arrivals and departures, 14 cars
    driver = SimDriver(scenario, METER, PREFIX, n_evs=16, realtime=False)  # 2 slots never filled
    clock = StepClock()
    driver.start(clock)
    reporter = driver._reporter
    assert reporter is not None
    rng = np.random.default_rng(9)
    slots = list(range(reporter.slots))
    compared = connected_seen = 0
    for step in range(1, 3001):
        clock.now = step * scenario.scan_period_ns
        driver.read_input_groups(clock.now)
        if step % 25 == 0:
            values = rng.choice([-11000.0, -2500.0, 0.0, 1234.5, 7000.0, 22000.0], reporter.slots)
            driver.write_outputs(
                clock.now, {f"{PREFIX}[{i + 1}].p_setpoint_w": float(v) for i, v in enumerate(values)}
            )
        if step % 7:
            continue
        fast: list[float] = []
        reporter._measured_few(slots, fast)
        expected: list[float] = []
        for slot in slots:
            on = slot < reporter.n_cars and bool(driver.fleet.connected.item(slot))
            connected_seen += on
            expected.extend(reporter._pick_dynamic(reporter._measured_python(slot) if on else _ZEROS))
        assert [v.hex() for v in fast] == [v.hex() for v in expected], step
        compared += 1
    assert compared > 400 and connected_seen > 1000
