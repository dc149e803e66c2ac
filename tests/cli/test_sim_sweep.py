"""``plcrun sim`` sweeps: every combination runs in a pool of processes, and each run's report is
exactly what the same ``plcrun sim`` for that one combination writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from plcrun.cli_sweep import parse_sweep, plan
from plcrun.errors import UsageError

from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "programs/freq_response.st"


def _same_report(a: Path, b: Path) -> None:
    left, right = json.loads((a / "report.json").read_text()), json.loads((b / "report.json").read_text())
    for key in ("scenario", "service", "passed", "checks", "metrics", "faults", "cars"):
        assert left[key] == right[key], key
    assert (a / "series.csv").read_bytes() == (b / "series.csv").read_bytes()
    assert (a / "cars.csv").read_bytes() == (b / "cars.csv").read_bytes()


@pytest.mark.slow
def test_a_sweep_gives_what_the_runs_give_one_by_one(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = run_cli(
        "sim", PROGRAM, "--scenario", "ocpp_curve", "--scenario", "loss_of_grid", "--evs", "4",
        "--sweep", "main.deadband_hz=-1.0,0.3", "--jobs", "2", "--out", str(out), cwd=ROOT,
    )  # fmt: skip
    # a 0.3 Hz deadband misses loss_of_grid's check points: the exit says not every run passed
    assert result.returncode == 1, result.stderr
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["scenario"], r["evs"], r["parameters"]) for r in rows] == [
        (scenario, "4", f"main.deadband_hz={value}")
        for scenario in ("ocpp_curve", "loss_of_grid")
        for value in ("-1.0", "0.3")
    ]
    assert [r["result"] for r in rows] == ["PASS", "PASS", "PASS", "FAIL"]
    assert "3 of 4 runs passed" in result.stdout
    assert "4/4 runs" in result.stderr  # the progress bar reached the end
    # Two of the combinations again, one by one, as a user would run them.
    for row in (rows[1], rows[3]):
        single = tmp_path / f"single-{row['run']}"
        one = run_cli(
            "sim", PROGRAM, "--scenario", row["scenario"], "--evs", row["evs"], "--set", row["parameters"],
            "--json", "--out", str(single), cwd=ROOT,
        )  # fmt: skip
        assert json.loads(one.stdout)["passed"] == (row["result"] == "PASS")
        _same_report(Path(row["folder"]), single)
        latency = json.loads(one.stdout)["metrics"].get("activation_latency_scans")
        assert row["activation_latency_scans"] == ("" if latency is None else str(latency))


def test_sweep_mistakes_are_reported_before_any_run(tmp_path: Path) -> None:
    result = run_cli(
        "sim", PROGRAM, "--scenario", "ocpp_curve", "--scenario", "loss_of_grid",
        "--sweep", "main.no_such=1,2", "--out", str(tmp_path / "s"), cwd=ROOT,
    )  # fmt: skip
    assert result.returncode != 0
    assert "no_such" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()
    result = run_cli("sim", PROGRAM, "--scenario", "gb_dm", "--scenario", "lfsm", "--json", cwd=ROOT)
    assert result.returncode != 0 and "--json is for one run" in result.stderr


def test_sweep_values_and_plan() -> None:
    assert parse_sweep(['main.x=1,[2, 3],"a,b"']) == [["main.x=1", "main.x=[2, 3]", 'main.x="a,b"']]
    with pytest.raises(UsageError, match="PATH=V1,V2"):
        parse_sweep(["main.x"])
    specs = plan(["a", "b"], [None, 5], ["main.y=1"], ["main.x=1,2"], Path("out"))
    assert len(specs) == 8
    assert specs[3].sets == ("main.y=1", "main.x=2") and specs[3].evs == 5
    assert specs[3].folder == str(Path("out") / "004-a-5evs-main.x=2")
