"""The command line as a user meets it: one clear line and a non-zero exit for every mistake."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]


def plcrun(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """In this process (tests/support/cli.py): none of these commands runs in real time."""
    return run_cli(*args, cwd=cwd)


def test_help_lists_the_commands_with_examples() -> None:
    result = plcrun("--help")
    assert result.returncode == 0
    for command in ("check", "run", "sim", "vars", "scenarios"):
        assert command in result.stdout
    assert "examples:" in result.stdout
    for command in ("check", "run", "sim", "vars"):
        sub = plcrun(command, "--help")
        assert sub.returncode == 0 and "example" in sub.stdout, command


def test_vars_lists_paths_types_locations_and_safe_values() -> None:
    result = plcrun("vars", str(ROOT / "tests/executor/programs/plant.st"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "plant.relay AT %QX0.0 : BOOL  [VAR]" in lines
    assert "plant.p_set : REAL  [VAR]  safe=-1.5" in lines
    rows = json.loads(plcrun("vars", str(ROOT / "tests/executor/programs/plant.st"), "--json").stdout)
    assert {"path": "plant.hz", "type_name": "LREAL"}.items() <= rows[0].items()


def test_scenarios_lists_the_builtin_ones() -> None:
    result = plcrun("scenarios")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"quiet_grid", "fcr_static", "gb_2019_08_09", "sensor_faults"} <= set(names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.st"], "plcrun: missing.st: no such file"),
        (
            ["sim", "programs/freq_response.st", "--scenario", "no_such"],
            "no such scenario file or built-in name",
        ),
        (["run", "stdlib/grid_ffr.st", "--duration", "1"], "nothing to run: declare a PROGRAM"),
        (
            ["run", "programs/freq_response.st", "--config", "nowhere.toml"],
            "nowhere.toml: cannot read the file",
        ),
        (["run", "programs/freq_response.st", "--duration", "-1"], "a duration must be positive"),
        (
            [
                "run",
                "programs/freq_response.st",
                "--retain",
                "/nonexistent/state/site.retain",
                "--duration",
                "1",
            ],
            "--retain /nonexistent/state/site.retain: cannot write there",
        ),
        (
            ["run", "programs/freq_response.st", "--duration", "5x"],
            "'5x' is not a duration: write e.g. 20, 20s, 5m or 1h",
        ),
        (
            ["run", "programs/freq_response.st", "--wake-tolerance-us", "0.1"],
            "argument --wake-tolerance-us: '0.1' is not a whole number of microseconds",
        ),
        (
            ["run", "programs/freq_response.st", "--spin-budget-us", "6000"],
            "argument --spin-budget-us: 6000 µs is outside 0..5000",
        ),
    ],
)
def test_mistakes_give_one_clear_line(args: list[str], message: str) -> None:
    result = plcrun(*args, cwd=ROOT)
    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_site_configuration_names_file_key_and_problem(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[devices.meter]\nhost = "127.0.0.1"\nport = 1502\nprofile = "sunspec"\n'
        '[devices.meter.points.hz]\nsunspec = "213.Hz"\nbind = "main.grid_hzz"\n'
    )
    result = plcrun("run", "programs/freq_response.st", "--config", str(config), "--duration", "1", cwd=ROOT)
    assert result.returncode == 1
    assert f"{config}: devices.meter.points.hz.bind" in result.stderr
    assert "main.grid_hzz" in result.stderr and "grid_hz" in result.stderr
    assert "Traceback" not in result.stderr


def test_parameters_show_in_vars_and_mistakes_stop_run_before_anything_starts() -> None:
    shown = plcrun(
        "vars",
        "programs/freq_response.st",
        "--config",
        "examples/site.toml",
        "--set",
        "main.enable=false",
        cwd=ROOT,
    )
    assert shown.returncode == 0, shown.stderr
    lines = {line.split(" :")[0]: line for line in shown.stdout.splitlines()}
    assert lines["main.n_evs"].endswith("= 2 (parameter)")
    assert lines["main.service"].endswith("= SVC_FCR (parameter)")
    assert lines["main.enable"].endswith("= FALSE (parameter)")
    wrong = plcrun(
        "run",
        "programs/freq_response.st",
        "--set",
        "main.servise=FCR",
        "--no-dashboard",
        "--duration",
        "5",
        cwd=ROOT,
    )
    assert wrong.returncode == 1
    assert "--set main.servise: unknown variable 'main.servise'" in wrong.stderr
    assert "did you mean 'main.service'" in wrong.stderr
    assert "running" not in wrong.stderr and "Traceback" not in wrong.stderr


def test_an_installed_program_is_found_by_its_name(tmp_path: Path) -> None:
    result = plcrun("check", "freq_response", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "freq_response.st: ok" in result.stderr


def test_sim_runs_a_scenario_and_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = plcrun(
        "sim", "programs/freq_response.st", "--scenario", "fcr_static", "--json", "--out", str(out), cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["activation_latency_scans"]["value"] <= 1
    picture = Path(report["picture"])
    assert picture.parent == out and picture.suffix in (".png", ".svg") and picture.stat().st_size > 1000
    series = Path(report["series_csv"]).read_text().splitlines()
    assert series[0].startswith("t_s,grid_hz,meter_hz") and series[0].endswith(",status")
    assert len(series) > 9000  # 90 s of 10 ms rows
    assert "fcr_static" in Path(report["html"]).read_text()
    assert json.loads((out / "report.json").read_text())["passed"] is True
