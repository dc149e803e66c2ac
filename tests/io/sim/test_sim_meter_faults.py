"""Sensor faults of the simulated meter, seen through the driver as the program would see them."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
from plcrun.executor.driver_api import Quality, Sample
from plcrun.io.sim import Scenario, SimDriver, load_scenario

from tests.io.sim.simrig import METER

ScenarioFactory = Callable[..., Scenario]

BASE = """
[scenario]
duration_s = 12.0
[grid]
nominal_voltage_v = 230.0
[[grid.segments]]
kind = "ramp"
hz = 50.0
to_hz = 49.0
duration_s = 10.0
[[grid.segments]]
kind = "const"
[site]
base_load_w = 3000.0
[meter]
freshness_s = 0.5
{faults}
"""


def trace_of(scenario: Scenario) -> list[dict[str, Sample]]:
    """Per scan, the meter samples the driver returned (only what changed)."""
    driver = SimDriver(scenario, METER)
    return [dict(driver.read_inputs(k * scenario.scan_period_ns)) for k in range(scenario.n_steps + 1)]


def latest(scans: list[dict[str, Sample]], upto: int, path: str) -> Sample:
    for samples in reversed(scans[: upto + 1]):
        if path in samples:
            return samples[path]
    raise AssertionError(f"{path} never reported")


F, V, P = METER["frequency_hz"], METER["voltage_v"], METER["power_w"]


def test_without_faults_every_scan_brings_a_fresh_good_reading(scenario_from_text: ScenarioFactory) -> None:
    scans = trace_of(scenario_from_text(BASE.format(faults="")))
    assert all(F in s and s[F].quality == Quality.GOOD for s in scans)
    assert scans[100][F].value == pytest.approx(49.9)
    assert scans[100][F].timestamp_ns == 1_000_000_000
    assert scans[100][P].value == 3000.0  # no cars: the base load


def test_stale_freezes_the_value_and_turns_stale_after_the_freshness_limit(
    scenario_from_text: ScenarioFactory,
) -> None:
    scans = trace_of(
        scenario_from_text(BASE.format(faults='[[faults]]\nkind = "stale"\nstart_s = 2.0\nend_s = 4.0'))
    )
    frozen = scans[199][F]
    assert frozen.value == pytest.approx(49.801)
    assert all(F not in s for s in scans[200:249])  # nothing new while frozen and still fresh
    assert scans[249][F] == Sample(frozen.value, Quality.STALE, frozen.timestamp_ns)
    assert all(F not in s for s in scans[250:400])
    assert scans[400][F].quality == Quality.GOOD and scans[400][F].value == pytest.approx(49.6)


def test_nan_and_scale_faults_are_raw_values_with_good_quality(scenario_from_text: ScenarioFactory) -> None:
    faults = (
        '[[faults]]\nkind = "nan"\nstart_s = 1.0\nend_s = 2.0\n'
        '[[faults]]\nkind = "scale"\nfactor = 10.0\nstart_s = 3.0\nend_s = 3.5\n'
        '[[faults]]\nkind = "nan"\ntarget = "power"\nstart_s = 5.0\nend_s = 6.0\n'
    )
    scans = trace_of(scenario_from_text(BASE.format(faults=faults)))
    assert math.isnan(scans[150][F].value) and scans[150][F].quality == Quality.GOOD
    assert not math.isnan(scans[150][V].value)  # only the frequency was targeted
    assert scans[200][F].value == pytest.approx(49.8)
    assert scans[320][F].value == pytest.approx(496.8) and scans[320][F].quality == Quality.GOOD
    assert scans[350][F].value == pytest.approx(49.65)
    assert math.isnan(scans[550][P].value) and scans[550][F].value == pytest.approx(49.45)


def test_lost_meter_reports_comm_lost_with_the_last_value(scenario_from_text: ScenarioFactory) -> None:
    scans = trace_of(
        scenario_from_text(BASE.format(faults='[[faults]]\nkind = "comm_lost"\nstart_s = 6.0\nend_s = 7.0'))
    )
    last = scans[599][F]
    for path in (F, V, P):
        assert scans[600][path].quality == Quality.COMM_LOST
    assert scans[600][F].value == last.value and scans[600][F].timestamp_ns == last.timestamp_ns
    assert all(not s for s in scans[601:700])
    assert scans[700][F].quality == Quality.GOOD and scans[700][F].value == pytest.approx(49.3)


def test_voltage_collapse_drops_the_voltage_and_can_fake_the_frequency(
    scenario_from_text: ScenarioFactory,
) -> None:
    faults = (
        '[[faults]]\nkind = "voltage_collapse"\nvoltage_v = 12.0\nfrequency_hz = 47.2\n'
        "start_s = 8.0\nend_s = 9.0"
    )
    scans = trace_of(scenario_from_text(BASE.format(faults=faults)))
    assert scans[799][V].value == 230.0
    assert scans[800][V] == Sample(12.0, Quality.GOOD, 8_000_000_000)
    assert scans[800][F].value == 47.2
    assert scans[900][V].value == 230.0 and scans[900][F].value == pytest.approx(49.1)


def test_meter_update_period_limits_fresh_readings(scenario_from_text: ScenarioFactory) -> None:
    text = BASE.format(faults="").replace("freshness_s = 0.5", "freshness_s = 0.5\nupdate_period_s = 0.2")
    scans = trace_of(scenario_from_text(text))
    fresh = [k for k, s in enumerate(scans) if F in s]
    assert fresh[:4] == [0, 20, 40, 60]
    assert latest(scans, 35, F).timestamp_ns == 200_000_000


def test_readings_are_quantised_like_meter_registers_and_repeat_while_fresh() -> None:
    """A steady grid gives the same register value reading after reading, each one fresh (GOOD, stamped
    with its own scan): what a real meter does and what the program must accept as fresh."""
    scenario = load_scenario("quiet_grid")
    driver = SimDriver(scenario, METER)
    seen: list[tuple[float, int]] = []
    for step in range(3000):  # 30 s of scans
        sample = driver.read_inputs(step * scenario.scan_period_ns)[METER["frequency_hz"]]
        assert sample.quality is Quality.GOOD and sample.timestamp_ns == step * scenario.scan_period_ns
        assert round(sample.value * 1000) == pytest.approx(sample.value * 1000, abs=1e-6)  # 1 mHz steps
        seen.append((sample.value, sample.timestamp_ns))
    repeats = sum(1 for (a, _), (b, _) in itertools.pairwise(seen) if a == b)
    assert repeats > len(seen) // 20  # noisy but quiet grid: the same register value comes back often
