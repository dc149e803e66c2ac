"""The site programs against the shipped simulation scenarios, under the executor in virtual time,
judged by the scenarios' own criteria (the same run as ``plcrun sim``)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.io.sim.evaluate import evaluate
from plcrun.io.sim.scenario_load import builtin_scenarios, load_scenario
from plcrun.io.site_io import sim_io
from plcrun.state.program import CompiledProgram
from st_rig import PROGRAMS

pytestmark = pytest.mark.slow  # every shipped scenario, whole (CPU-bound; handed out first under -n 2)


@functools.cache
def compiled(program_file: str) -> CompiledProgram:
    """Each program compiled once for the module (every run gets its own state and executor)."""
    return compile_file(PROGRAMS / program_file)


def simulate(program_file: str, scenario_name: str, every_parameter_used: bool = False) -> list[str]:
    program = compiled(program_file)
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


@pytest.mark.parametrize(
    ("scenario", "without_the_fix", "failing"),
    [
        ("soc_floor_late", {"soc_resolution_pct": 0.0, "soc_horizon_s": 0.0}, "soc_floors_held"),
        (
            "ramp_at_limit",
            {"site_margin_w": 0.0, "load_trend_horizon_s": 0.0},
            "site_limit_worst_excursion_w",
        ),
        ("loss_of_grid", {"lom_enable": False}, "setpoint_w[20.94..40s]"),
        ("fcr_chatter", {"hysteresis_hz": 0.0}, "setpoint_reversals[1..30s]"),
    ],
)
def test_the_new_scenarios_catch_the_failures_they_are_for(
    scenario: str, without_the_fix: dict[str, object], failing: str
) -> None:
    """Each field scenario fails, on the criterion meant for it, when its fix is switched off."""

    def edit(data: dict[str, Any], source: str) -> None:
        data["service"].update(without_the_fix)

    program = compiled("freq_response.st")
    loaded = load_scenario(scenario, edit)
    io = sim_io(program, loaded)
    executor = Executor(program, clock=VirtualClock(), drivers=io.drivers, config=ExecutorConfig())
    for path, value in io.initial_writes.items():
        executor.journal.write(path, value, source="scenario")
    executor.run(duration_ns=loaded.duration_ns)
    assert io.sim is not None
    report = evaluate(io.sim.history(), loaded)
    executor.shutdown()
    assert failing in [c.name for c in report.checks if not c.passed]
