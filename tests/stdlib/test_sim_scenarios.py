"""The site programs against the shipped simulation scenarios, under the executor in virtual time,
judged by the scenarios' own criteria (the same run as ``plcrun sim``)."""

from __future__ import annotations

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.io.sim.evaluate import evaluate
from plcrun.io.sim.scenario_load import load_scenario
from plcrun.io.site_io import sim_io
from st_rig import PROGRAMS


def list_parameters(instance: str, params: dict[str, object]) -> dict[str, object]:
    """Element writes for the scenario's list parameters (plausible_hz = [45, 65], the OCPP curve)."""
    writes: dict[str, object] = {}
    for key, value in params.items():
        if not isinstance(value, list):
            continue
        if key == "v2x_freq_watt_curve":
            for i, (hz, watts) in enumerate(value, start=1):
                writes[f"{instance}.v2x_curve_hz[{i}]"] = hz
                writes[f"{instance}.v2x_curve_w[{i}]"] = watts
            writes[f"{instance}.v2x_curve_points"] = len(value)
        else:
            for i, item in enumerate(value, start=1):
                writes[f"{instance}.{key}[{i}]"] = item
    return writes


def simulate(program_file: str, scenario_name: str) -> list[str]:
    program = compile_file(PROGRAMS / program_file)
    scenario = load_scenario(scenario_name)
    io = sim_io(program, scenario)
    executor = Executor(program, clock=VirtualClock(), drivers=io.drivers, config=ExecutorConfig())
    writes = {**io.initial_writes, **list_parameters("main", dict(scenario.service.params))}
    for path, value in writes.items():
        executor.journal.write(path, value, source="scenario")
    executor.run(duration_ns=scenario.duration_ns)
    assert io.sim is not None
    report = evaluate(io.sim.history(), scenario)
    executor.shutdown()
    assert all(not sup.faults for sup in executor.supervisors.values())
    return [f"{c.name}: {c.value} ({c.limit}) {c.detail}" for c in report.checks if not c.passed]


@pytest.mark.parametrize(
    "scenario",
    ["fcr_static", "deadband_edges", "dc_curve", "ffr_ramp", "lfsm", "sensor_faults", "transformer_limit"],
)
def test_freq_response_passes_the_scenario(scenario: str) -> None:
    assert simulate("freq_response.st", scenario) == []


def test_ocpp_program_passes_the_curve_scenario() -> None:
    assert simulate("ocpp_local_frequency.st", "ocpp_curve") == []


def test_freq_response_passes_the_ocpp_scenario() -> None:
    assert simulate("freq_response.st", "ocpp_curve") == []


def test_ffr_program_passes_the_ramp_scenario() -> None:
    assert simulate("ffr.st", "ffr_ramp") == []
