"""Helpers of the simulation tests: a virtual-time loop like the executor's and a reference FCR
controller written in Python (standing in for the ST program the executor will run)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from plcrun.executor.driver_api import Quality, Sample
from plcrun.io.sim import Scenario, SimDriver
from plcrun.io.sim.scenario import EvSpec

METER = {"frequency_hz": "main.grid_hz", "voltage_v": "main.grid_v", "power_w": "main.site_w"}
PREFIX = "main.evs"

# A typical bidirectional car of the fleet-model tests.
CAR = EvSpec(
    capacity_kwh=50.0,
    p_charge_max_w=11000.0,
    p_charge_min_w=4140.0,
    p_discharge_max_w=10000.0,
    p_discharge_min_w=4140.0,
    bidirectional=True,
    soc_pct=50.0,
    min_soc_pct=30.0,
    target_soc_pct=80.0,
    lag_s=1.0,
)

Controller = Callable[[Mapping[str, Sample], Scenario], dict[str, float]]


class StepClock:
    """A minimal virtual clock: time only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 0

    def now_ns(self) -> int:
        return self.now


def run_closed_loop(
    scenario: Scenario, controller: Controller | None = None, n_evs: int | None = None, realtime: bool = True
) -> SimDriver:
    """One read/compute/write cycle per scan period in virtual time, like the executor does
    (``realtime=False``: the driver as the executor builds it for a virtual clock)."""
    driver = SimDriver(scenario, METER, PREFIX, n_evs, realtime=realtime)
    clock = StepClock()
    driver.start(clock)
    image: dict[str, Sample] = {}
    for step in range(scenario.n_steps + 1):
        clock.now = step * scenario.scan_period_ns
        image.update(driver.read_inputs(clock.now))
        if controller is not None:
            driver.write_outputs(clock.now, controller(image, scenario))
    return driver


def split_total(total: float, n: int, p_min: float, p_max: float) -> list[float]:
    """Spread ``total`` over as few equal cars as keeps each at or above its minimum power."""
    if abs(total) < 1e-9 or n == 0:
        return [0.0] * n
    active = max(1, min(n, int(abs(total) // p_min)))
    each = max(-p_max, min(p_max, total / active))
    return [each] * active + [0.0] * (n - active)


def measurement_ok(image: Mapping[str, Sample], nominal_v: float = 230.0) -> bool:
    freq, volts = image[METER["frequency_hz"]], image[METER["voltage_v"]]
    value = freq.value
    return (
        freq.quality == Quality.GOOD
        and volts.quality == Quality.GOOD
        and isinstance(value, float)
        and math.isfinite(value)
        and 45.0 < value < 65.0
        and isinstance(volts.value, float)
        and volts.value > 0.8 * nominal_v
    )


def fcr_controller(validate: bool = True, respect_site: bool = False) -> Controller:
    """Linear FCR around the baseline, split over the cars; optionally clipped to the site limits."""

    def control(image: Mapping[str, Sample], scenario: Scenario) -> dict[str, float]:
        params = scenario.service.params
        n = scenario.n_evs
        freq = image[METER["frequency_hz"]].value
        if validate and not measurement_ok(image, scenario.nominal_voltage_v):
            total = 0.0
        else:
            assert isinstance(freq, float)
            deviation = freq - float(params["f_nominal_hz"])
            band, full = float(params["deadband_hz"]), float(params["full_at_hz"])
            share = 0.0 if abs(deviation) <= band else max(-1.0, min(1.0, deviation / full))
            total = float(params["baseline_w"]) + float(params["p_contracted_w"]) * share
        if respect_site:
            site = scenario.site
            base = site.base_load_w
            if site.export_limit_w is not None:
                total = max(total, -site.export_limit_w - base)
            if site.import_limit_w is not None:
                total = min(total, site.import_limit_w - base)
        ev = scenario.fleet.evs[0] if n else None
        p_min = ev.p_charge_min_w if ev else 1.0
        p_max = ev.p_charge_max_w if ev else 1.0
        values = split_total(total, n, p_min, p_max)
        return {f"{PREFIX}[{i + 1}].p_setpoint_w": v for i, v in enumerate(values)}

    return control
