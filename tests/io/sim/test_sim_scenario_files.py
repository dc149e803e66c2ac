"""Scenario files: every shipped file loads, built-ins match the examples, bad files say what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.sim import Scenario, builtin_scenarios, load_scenario
from plcrun.io.sim.catalogue import CATALOGUE
from plcrun.io.sim.scenario_load import BUILTIN_DIR

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "scenarios"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))
REQUIRED = {
    "quiet_grid",
    "deadband_edges",
    "fcr_static",
    "dc_curve",
    "ffr_ramp",
    "lfsm",
    "gb_2019_08_09",
    "ce_2021_01_08_nw",
    "ce_2021_01_08_se",
    "sensor_faults",
    "transformer_limit",
}
ScenarioFactory = Callable[..., Scenario]


def test_the_required_scenarios_are_shipped_and_built_in() -> None:
    assert set(builtin_scenarios()) >= REQUIRED
    assert {p.stem for p in EXAMPLE_FILES} >= REQUIRED


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_every_example_file_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.source == str(path)
    assert scenario.duration_s > 0 and scenario.n_steps == round(scenario.duration_s / 0.01)
    assert scenario.n_evs > 0 and scenario.service.name != "none"
    assert scenario.criteria.points or scenario.criteria.ranges


@pytest.mark.parametrize("name", builtin_scenarios())
def test_builtin_scenarios_are_identical_to_the_example_files(name: str) -> None:
    builtin = (BUILTIN_DIR / f"{name}.toml").read_text()
    assert (EXAMPLES / f"{name}.toml").read_text() == builtin, "copy runtime/io/sim/scenarios to examples"
    scenario = load_scenario(name)
    assert scenario.source == f"builtin:{name}"


def test_scenario_content_is_parsed_into_the_model() -> None:
    scenario = load_scenario("sensor_faults")
    assert [f.kind for f in scenario.faults] == ["stale", "nan", "scale", "comm_lost", "voltage_collapse"]
    assert scenario.faults[2].factor == 10.0 and scenario.faults[4].frequency_hz == 47.0
    assert scenario.service.params["p_contracted_w"] == 20000.0
    assert scenario.service.params["plausible_hz"] == [45.0, 65.0]
    transformer = load_scenario("transformer_limit")
    assert transformer.n_evs == 20 and transformer.site.export_limit_w == 60000.0
    assert sum(ev.p_discharge_max_w for ev in transformer.fleet.evs) > transformer.site.export_limit_w
    ffr = load_scenario("ffr_ramp")
    assert [s.start_s for s in ffr.segments] == [0.0, 5.0, 15.0, 25.0, 35.0]
    assert ffr.criteria.trigger is not None and ffr.criteria.trigger.hz == 49.7


def test_generated_fleet_is_deterministic_for_a_seed(scenario_from_text: ScenarioFactory) -> None:
    text = "[scenario]\nduration_s = 1.0\n[fleet]\nn_evs = 30\nseed = {seed}\n"
    text += "[fleet.defaults]\nmin_soc_pct = 25.0\n"
    first = scenario_from_text(text.format(seed=4), "a").fleet.evs
    again = scenario_from_text(text.format(seed=4), "b").fleet.evs
    other = scenario_from_text(text.format(seed=5), "c").fleet.evs
    assert first == again and first != other
    assert {ev.model for ev in first} <= set(CATALOGUE) and len({ev.model for ev in first}) > 2
    assert all(ev.min_soc_pct == 25.0 for ev in first)  # fleet.defaults overrides the generator
    assert all(20.0 <= ev.soc_pct <= 80.0 for ev in first)


def test_listed_cars_take_model_then_defaults_then_own_keys(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text(
        """
[scenario]
duration_s = 1.0
[fleet]
n_evs = 4
lag_s = 0.7
[fleet.defaults]
soc_pct = 55.0
min_soc_pct = 20.0
target_soc_pct = 90.0
p_charge_max_w = 7000.0
[[fleet.evs]]
model = "van_bidi"
count = 2
depart_s = 0.5
[[fleet.evs]]
model = "compact_ac"
p_charge_max_w = 3700.0
"""
    )
    van, _, compact, generated = scenario.fleet.evs
    assert van.capacity_kwh == CATALOGUE["van_bidi"].capacity_kwh and van.p_charge_max_w == 7000.0
    assert van.depart_s == 0.5 and van.departure_time_s == 0.5 and van.lag_s == 0.7
    assert compact.p_charge_max_w == 3700.0 and not compact.bidirectional
    assert generated.model in CATALOGUE and generated.soc_pct == 55.0


H = "[scenario]\nduration_s = 5.0\n"
BAD_CASES = [
    ("[scenario]\nduration_s = 1.0\n[grid]\nnominal_hz = 'fifty'\n", "grid.nominal_hz", "expected a number"),
    ("[scenario]\nduration_s = -1.0\n", "scenario.duration_s", "must be > 0"),
    ("[scenario]\n", "scenario.duration_s", "required key is missing"),
    ("[grid]\n", "scenario", "required key is missing"),
    ("[scenario]\nduration_s = 1.0\ndurration = 2\n", "scenario.durration", "unknown key"),
    ("[scenario]\nduration_s = 1.0\n[gird]\n", "gird", "unknown key"),
    (
        H + "[[grid.segments]]\nkind = 'sine'\n",
        "grid.segments[0].kind",
        "unknown value 'sine'",
    ),
    (
        H + "[[grid.segments]]\nkind = 'const'\nhz = 50.0\n" + "[[grid.segments]]\nkind = 'const'\n",
        "grid.segments[0].duration_s",
        "required for every segment but the last",
    ),
    (
        H + "[[grid.segments]]\nkind = 'ramp'\nto_hz = 49.0\n",
        "grid.segments[0].duration_s",
        "a ramp needs duration_s",
    ),
    (
        H + "[[grid.segments]]\nkind = 'const'\nto_hz = 49.0\n",
        "grid.segments[0].to_hz",
        "unknown key",
    ),
    (
        H + "[[grid.segments]]\nkind = 'steps'\npoints = [[1.0, 49.0], [0.5, 48.0]]\n",
        "grid.segments[0].points",
        "increasing",
    ),
    (
        H + "[[grid.segments]]\nkind = 'event'\nname = 'blackout'\n",
        "grid.segments[0].name",
        "unknown value 'blackout'",
    ),
    (
        H + "[[grid.segments]]\nkind = 'trace'\nfile = 'missing.csv'\n",
        "grid.segments[0].file",
        "trace file not found",
    ),
    (
        H + "[[faults]]\nkind = 'glitch'\nstart_s = 1.0\n",
        "faults[0].kind",
        "unknown",
    ),
    (
        H + "[[faults]]\nkind = 'nan'\nstart_s = 3.0\nend_s = 2.0\n",
        "faults[0].end_s",
        "must be after start_s",
    ),
    (H + "[fleet]\nn_evs = 2.5\n", "fleet.n_evs", "expected an integer"),
    (
        H + "[[fleet.evs]]\ncapacity_kwh = 50.0\n",
        "fleet.evs[0].p_charge_max_w",
        "required key is missing",
    ),
    (
        H + "[[fleet.evs]]\nmodel = 'midsize_bidi'\nsoc_pct = 120.0\n",
        "fleet.evs[0].soc_pct",
        "must be <= 100",
    ),
    (
        H + "[[fleet.evs]]\nmodel = 'tesla'\n",
        "fleet.evs[0].model",
        "unknown value 'tesla'",
    ),
    (
        H
        + "[fleet.defaults]\nsoc_pct = 50.0\nmin_soc_pct = 20.0\ntarget_soc_pct = 80.0\n"
        + "[[fleet.evs]]\nmodel = 'midsize_bidi'\np_charge_min_w = 20000.0\n",
        "fleet.evs[0].p_charge_min_w",
        "is above p_charge_max_w",
    ),
    (
        H + "[fleet]\nn_evs = 1\n[[fleet.evs]]\nmodel = 'midsize_bidi'\ncount = 3\n"
        "soc_pct = 50.0\nmin_soc_pct = 20.0\ntarget_soc_pct = 80.0\n",
        "fleet.n_evs",
        "less than the 3 cars",
    ),
    (H + "[service]\nname = 'fcr 2'\n", "service.name", "'fcr 2' is not a service name"),
    (
        H + "[criteria]\nmax_latency_scans = 1\n",
        "criteria.max_latency_scans",
        "needs [criteria.trigger]",
    ),
    (
        H + "[criteria]\nsite_limits_held = true\n",
        "criteria.site_limits_held",
        "no site.import_limit_w",
    ),
    (
        H + "[[criteria.points]]\nat_s = 9.0\nquantity = 'setpoint_w'\nvalue = 0\ntol = 1\n",
        "criteria.points[0].at_s",
        "must be <= 5",
    ),
    (
        H + "[[criteria.ranges]]\nfrom_s = 1.0\nquantity = 'power'\nmin = 0\n",
        "criteria.ranges[0].quantity",
        "unknown value 'power'",
    ),
    (
        H + "[criteria.trigger]\nhz = 49.9\ndirection = 'down'\n",
        "criteria.trigger.direction",
        "unknown value 'down'",
    ),
    (
        H + "[site]\nimport_limit_w = true\n",
        "site.import_limit_w",
        "expected a number",
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD_CASES, ids=[c[1] for c in BAD_CASES])
def test_bad_scenario_files_name_file_key_and_problem(
    tmp_path: Path, scenario_from_text: ScenarioFactory, text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        scenario_from_text(text, "bad")
    assert error.value.file == str(tmp_path / "bad.toml")
    assert error.value.key == key
    assert problem in error.value.problem
    assert str(error.value).startswith(f"{tmp_path / 'bad.toml'}: {key}: ")


def test_invalid_toml_and_unknown_names(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\nduration_s = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as error:
        load_scenario(broken)
    assert error.value.file == str(broken)
    with pytest.raises(ConfigError, match="built-in: ce_2019_01_10") as error:
        load_scenario("no_such_scenario")
    assert error.value.file == "no_such_scenario"


def test_service_names_come_from_the_programs_enumeration(
    tmp_path: Path, scenario_from_text: ScenarioFactory
) -> None:
    """One source of truth: GRID_SERVICE in the ST program. Every SVC_<NAME> is a scenario service
    (no Python list to keep in step), and a name it lacks is refused when the simulation is bound."""
    from plcrun.compiler.api import compile_file
    from plcrun.io.site_io import check_sim_fits, find_site_variables, service_enum, service_names

    program = compile_file(ROOT / "programs" / "freq_response.st")
    site = find_site_variables(program)
    assert site is not None
    enum = service_enum(program, site)
    assert enum is not None and enum.name.upper() == "GRID_SERVICE"
    names = service_names(enum)
    assert names["fcr_d_down"] == "SVC_FCR_D_DOWN" and names["vf_fcas"] == "SVC_VF_FCAS"
    assert len(names) == len(enum.values)
    for builtin in builtin_scenarios():
        check_sim_fits(program, load_scenario(builtin))  # every shipped scenario names one of them
    with pytest.raises(ConfigError) as error:
        check_sim_fits(program, scenario_from_text(H + "[service]\nname = 'fcr2'\n", "typo"))
    assert error.value.key == "service.name"
    assert "unknown service 'fcr2': the program's GRID_SERVICE has" in error.value.problem
    assert "did you mean 'fcr'" in error.value.problem
