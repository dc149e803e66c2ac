"""The site programs against the shipped simulation scenarios, under the executor in virtual time,
judged by the scenarios' own criteria (the same run as ``plcrun sim``)."""

from __future__ import annotations

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.io.sim.evaluate import evaluate
from plcrun.io.sim.scenario_load import builtin_scenarios, load_scenario
from plcrun.io.site_io import sim_io
from st_rig import PROGRAMS


def simulate(program_file: str, scenario_name: str, every_parameter_used: bool = False) -> list[str]:
    program = compile_file(PROGRAMS / program_file)
    scenario = load_scenario(scenario_name)
    io = sim_io(program, scenario)
    executor = Executor(program, clock=VirtualClock(), drivers=io.drivers, config=ExecutorConfig())
    if every_parameter_used:  # the site program has a variable for every scenario parameter
        assert io.warnings == []
    for path, value in io.initial_writes.items():
        executor.journal.write(path, value, source="scenario")
    executor.run(duration_ns=scenario.duration_ns)
    assert io.sim is not None
    report = evaluate(io.sim.history(), scenario)
    executor.shutdown()
    assert all(not sup.faults for sup in executor.supervisors.values())
    return [f"{c.name}: {c.value} ({c.limit}) {c.detail}" for c in report.checks if not c.passed]


@pytest.mark.parametrize("scenario", builtin_scenarios())
def test_freq_response_passes_every_shipped_scenario(scenario: str) -> None:
    assert simulate("freq_response.st", scenario, every_parameter_used=True) == []


@pytest.mark.parametrize("scenario", ["ocpp_curve", "ocpp_threshold"])
def test_ocpp_program_passes_the_curve_scenarios(scenario: str) -> None:
    assert simulate("ocpp_local_frequency.st", scenario) == []


def test_freq_response_passes_the_ocpp_scenario() -> None:
    assert simulate("freq_response.st", "ocpp_curve") == []


def test_ffr_program_passes_the_ramp_scenario() -> None:
    assert simulate("ffr.st", "ffr_ramp") == []
