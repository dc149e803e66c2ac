"""The run evaluator: a correct controller passes, each kind of mistake fails the criterion it breaks."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from plcrun.executor.driver_api import Sample
from plcrun.io.sim import Scenario, evaluate, load_scenario, render_svg, write_svg
from plcrun.io.sim.scenario import Trigger
from plcrun.io.sim.scenario_load import BUILTIN_DIR

from tests.io.sim.simrig import METER, PREFIX, Controller, fcr_controller, run_closed_loop, split_total

ScenarioFactory = Callable[..., Scenario]


def failed(report_checks: list[object]) -> list[str]:
    return [c.name for c in report_checks if not c.passed]  # type: ignore[attr-defined]


def delayed(controller: Controller, scans: int) -> Controller:
    """The same controller acting on the frequency of ``scans`` scans ago."""
    past: deque[Sample] = deque(maxlen=scans + 1)

    def control(image: Mapping[str, Sample], scenario: Scenario) -> dict[str, float]:
        past.append(image[METER["frequency_hz"]])
        old = dict(image)
        old[METER["frequency_hz"]] = past[0]
        return controller(old, scenario)

    return control


def test_correct_fcr_controller_passes_the_static_points() -> None:
    scenario = load_scenario("fcr_static")
    report = evaluate(run_closed_loop(scenario, fcr_controller()).history(), scenario)
    assert report.passed, report.summary()
    assert report.metrics["activation_latency_scans"] == 0
    assert report.metrics["trigger_time_s"] == pytest.approx(10.0)
    # 95 % of a 5 kW step through a 1 s lag: -ln(0.05) = 3.0 s
    assert report.metrics["time_to_full_activation_s"] == pytest.approx(3.0, abs=0.02)
    assert len(report.checks) == 4 + len(scenario.criteria.points)


def test_a_slow_controller_fails_the_latency_criterion_only() -> None:
    scenario = load_scenario("fcr_static")
    report = evaluate(run_closed_loop(scenario, delayed(fcr_controller(), 3)).history(), scenario)
    assert report.metrics["activation_latency_scans"] == 3
    assert failed(report.checks) == ["activation_latency_scans"]


def test_sensor_faults_need_validation() -> None:
    scenario = load_scenario("sensor_faults")
    good = evaluate(run_closed_loop(scenario, fcr_controller(validate=True)).history(), scenario)
    assert good.passed, good.summary()
    naive = evaluate(run_closed_loop(scenario, fcr_controller(validate=False)).history(), scenario)
    # without validation every fault leaks into the setpoints (NaN clamps to full over-frequency)
    assert failed(naive.checks) == [
        "setpoint_w[11..14.99s]",
        "setpoint_w[20.01..21.99s]",
        "setpoint_w[30.01..31.99s]",
        "setpoint_w[40.01..44.99s]",
        "setpoint_w[50.01..54.99s]",
    ]


def test_site_limits_are_judged() -> None:
    scenario = load_scenario("transformer_limit")
    careful = evaluate(run_closed_loop(scenario, fcr_controller(respect_site=True)).history(), scenario)
    assert careful.passed, careful.summary()
    assert careful.metrics["max_export_w"] == pytest.approx(60000.0, abs=10.0)
    careless = evaluate(run_closed_loop(scenario, fcr_controller()).history(), scenario)
    assert "site_limits_held" in failed(careless.checks)
    assert careless.metrics["max_export_w"] > 140000.0
    assert careless.metrics["site_limit_violation_scans"] > 1000


def test_soc_floor_criteria(scenario_from_text: ScenarioFactory) -> None:
    text = """
[scenario]
duration_s = 8.0
[fleet]
car_enforces_floor = {enforce}
[[fleet.evs]]
capacity_kwh = 1.0
p_charge_max_w = 10000.0
p_charge_min_w = 1000.0
p_discharge_max_w = 10000.0
p_discharge_min_w = 1000.0
bidirectional = true
soc_pct = 31.0
min_soc_pct = 30.0
target_soc_pct = 80.0
lag_s = 0.0
[criteria]
soc_floors_held = true
no_discharge_below_floor = true
"""

    def discharge(image: Mapping[str, Sample], scenario: Scenario) -> dict[str, float]:
        return {f"{PREFIX}[1].p_setpoint_w": -10000.0}

    def careful(image: Mapping[str, Sample], scenario: Scenario) -> dict[str, float]:
        soc = image[f"{PREFIX}[1].soc_pct"].value
        assert isinstance(soc, float)
        return {f"{PREFIX}[1].p_setpoint_w": -10000.0 if soc > 30.3 else 0.0}

    loose = scenario_from_text(text.format(enforce="false"), "loose")
    report = evaluate(run_closed_loop(loose, discharge).history(), loose)
    assert failed(report.checks) == ["soc_floors_held", "no_discharge_below_floor"]
    assert report.metrics["soc_min_pct"] < 30.0
    strict = scenario_from_text(text.format(enforce="true"), "strict")
    report = evaluate(run_closed_loop(strict, discharge).history(), strict)
    assert failed(report.checks) == ["no_discharge_below_floor"]  # the car held, the program kept asking
    assert report.metrics["soc_min_pct"] == pytest.approx(30.0)
    report = evaluate(run_closed_loop(strict, careful).history(), strict)
    assert report.passed, report.summary()


def ffr_controller(image: Mapping[str, Sample], scenario: Scenario) -> dict[str, float]:
    params = scenario.service.params
    freq = image[METER["frequency_hz"]].value
    assert isinstance(freq, float)
    total = float(params["baseline_w"])
    if freq < float(params["trigger_hz"]):
        total -= float(params["p_contracted_w"])
    values = split_total(total, scenario.n_evs, 4140.0, 11000.0)
    return {f"{PREFIX}[{i + 1}].p_setpoint_w": v for i, v in enumerate(values)}


def test_time_to_full_activation_depends_on_the_cars(scenario_from_text: ScenarioFactory) -> None:
    scenario = load_scenario("ffr_ramp")
    report = evaluate(run_closed_loop(scenario, ffr_controller).history(), scenario)
    assert report.passed, report.summary()
    # the meter's 1 mHz register resolution may move the crossing of 49.7 Hz by one scan
    assert report.metrics["trigger_time_s"] == pytest.approx(11.01, abs=0.0101)
    assert report.metrics["time_to_full_activation_s"] == pytest.approx(0.3 * math.log(20), abs=0.02)
    text = (BUILTIN_DIR / "ffr_ramp.toml").read_text().replace("lag_s = 0.3", "lag_s = 2.0")
    slow = scenario_from_text(text, "slow")
    report = evaluate(run_closed_loop(slow, ffr_controller).history(), slow)
    assert failed(report.checks) == ["time_to_full_activation_s"]


def test_missing_trigger_and_missing_response_fail_with_a_reason() -> None:
    scenario = load_scenario("deadband_edges")
    silent = evaluate(run_closed_loop(scenario).history(), scenario)
    latency = next(c for c in silent.checks if c.name == "activation_latency_scans")
    assert not latency.passed and latency.detail == "the setpoint never responded"
    quiet = load_scenario("quiet_grid")
    history = run_closed_loop(quiet, fcr_controller()).history()
    never = replace(
        quiet, criteria=replace(quiet.criteria, trigger=Trigger(49.5, "below"), max_latency_scans=1)
    )
    check = next(c for c in evaluate(history, never).checks if c.name == "activation_latency_scans")
    assert not check.passed and "never read below 49.5 Hz" in check.detail


def test_report_json_and_svg(tmp_path: Path) -> None:
    scenario = load_scenario("sensor_faults")
    history = run_closed_loop(scenario, fcr_controller()).history()
    report = evaluate(history, scenario)
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["scenario"] == "sensor_faults" and data["passed"] is True
    assert {c["name"] for c in data["checks"]} >= {"soc_floors_held", "setpoint_w@9.9s"}
    assert data["metrics"]["energy_discharged_wh"] > 0
    path = write_svg(history, tmp_path / "run.svg", "sensor faults")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert "frequency (Hz)" in texts and "fleet SoC (%)" in texts and "sensor faults" in texts
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    assert len(lines) >= 7
    assert max(len(e.get("points", "").split()) for e in lines) <= 1500
    assert render_svg(history) == render_svg(history)
