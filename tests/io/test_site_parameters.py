"""Program parameters from the site file's [parameters] and --set: checked against the program before
anything starts (file, key, problem for each mistake, all at once), enumerations by name, arrays."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.io.site_config import SiteConfigError
from plcrun.io.site_io import SiteIo, config_io
from plcrun.io.site_parameters import set_option_entries
from plcrun.state.program import CompiledProgram

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def program() -> CompiledProgram:
    return compile_file(ROOT / "programs" / "freq_response.st")


def site_io(program: CompiledProgram, tmp_path: Path, parameters: str) -> SiteIo:
    text = (ROOT / "examples" / "site.toml").read_text()
    head, _, rest = text.partition("[parameters]")
    tail = rest[rest.index("\n# Points bound by name") :]
    path = tmp_path / "site.toml"
    path.write_text(head + "[parameters]\n" + textwrap.dedent(parameters) + tail)
    return config_io(program, str(path), AlarmBus(), dict, "gw")


def test_the_example_sets_what_the_site_program_needs(program: CompiledProgram) -> None:
    io = config_io(program, str(ROOT / "examples" / "site.toml"), AlarmBus(), dict, "gw")
    io.set_parameters(program, [])
    assert io.parameters["main.n_evs"] == 2
    assert io.parameters["main.service"] == "SVC_FCR"  # "FCR" in the file: the prefix may be left out
    assert io.parameters["main.p_contracted_w"] == 10000.0
    assert io.parameters["main.baseline_w"] == 0.0


def test_numbers_booleans_enumerations_arrays_and_dotted_keys(
    program: CompiledProgram, tmp_path: Path
) -> None:
    io = site_io(
        program,
        tmp_path,
        """
        "main.n_evs" = 2
        "main.service" = "SVC_DC"
        "main.enable" = false
        "main.plausible_hz" = [47.5, 51.5]
        "main.v2x_curve_w" = [-7000, 0, 7000]
        main.min_hold_s = 8          # a bare dotted key is a nested table in TOML: the same path
        "main.evs[1].bidirectional_allowed" = true
        """,
    )
    io.set_parameters(program, ["main.service=FFR", "main.p_contracted_w=5000", "main.deadband_hz=0.02"])
    assert io.parameters == {
        "main.n_evs": 2,
        "main.service": "SVC_FFR",  # the command line wins
        "main.enable": False,
        "main.plausible_hz[1]": 47.5,
        "main.plausible_hz[2]": 51.5,
        "main.v2x_curve_w[1]": -7000.0,
        "main.v2x_curve_w[2]": 0.0,
        "main.v2x_curve_w[3]": 7000.0,
        "main.min_hold_s": 8.0,
        "main.evs[1].bidirectional_allowed": True,
        "main.p_contracted_w": 5000.0,
        "main.deadband_hz": 0.02,
    }
    # the Quasar profile's default for the sessions (the [parameters] entry replaces the one of evs[1])
    assert io.initial_writes == {"main.evs[2].bidirectional_allowed": True}


def test_every_mistake_is_reported_with_file_key_and_problem(
    program: CompiledProgram, tmp_path: Path
) -> None:
    io = site_io(
        program,
        tmp_path,
        """
        "main.n_evz" = 2
        "main.n_evs" = 70000
        "main.service" = "XYZ"
        "main.enable" = "maybe"
        "main.p_contracted_w" = "ten"
        "main.evs[1].soc_pct" = 50.0
        "main.plausible_hz" = [45.0, 50.0, 65.0]
        "main.meas" = 1
        """,
    )
    with pytest.raises(SiteConfigError) as caught:
        io.set_parameters(program, ["main.deadband_hz", "main.baseline_w=abc"])
    found = {p.key: p.problem for p in caught.value.problems}
    file_part = str(caught.value).split(":", 1)[0]
    assert file_part.endswith("site.toml")
    assert "did you mean 'main.n_evs'" in found['parameters."main.n_evz"']
    assert "70000 is outside -32768..32767" in found['parameters."main.n_evs"']
    assert "'XYZ' is not a value of GRID_SERVICE" in found['parameters."main.service"']
    assert "not a BOOL" in found['parameters."main.enable"']
    assert "not a number" in found['parameters."main.p_contracted_w"']
    assert "input fed by a device" in found['parameters."main.evs[1].soc_pct"']  # charger-1 feeds it
    assert "3 values do not fit" in found['parameters."main.plausible_hz"']
    assert "structured" in found['parameters."main.meas"']
    assert "write PATH=VALUE" in found["main.deadband_hz"]
    assert "not a number" in found["--set main.baseline_w"]
    assert len(found) == 10


def test_constants_cannot_be_set(tmp_path: Path) -> None:
    source = tmp_path / "prog.st"
    source.write_text(
        "PROGRAM main\nVAR CONSTANT\n  limit : INT := 3;\nEND_VAR\nVAR\n  x : INT;\nEND_VAR\nx := limit;\nEND_PROGRAM\n"
    )
    program = compile_file(source)
    io = SiteIo()
    with pytest.raises(SiteConfigError) as caught:
        io.set_parameters(program, ["main.limit=4"])
    assert caught.value.problems[0].problem == "'main.limit' is a CONSTANT: it cannot be set at start"
    io.set_parameters(program, ["main.x=4"])
    assert io.parameters == {"main.x": 4}


def test_set_values_are_read_like_toml_values_or_text() -> None:
    entries, problems = set_option_entries(["a=7", "b=true", "c=[1, 2]", 'd="x y"', "e=FCR", "f=T#2s"])
    assert entries == {"a": 7, "b": True, "c": [1, 2], "d": "x y", "e": "FCR", "f": "T#2s"}
    assert problems == []
