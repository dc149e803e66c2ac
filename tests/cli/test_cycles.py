"""``plcrun run --cycles`` runs the executor in virtual time: a runaway loop is a clean positioned
fault (no traceback), infinities print as valid JSON, and the ST-visible task figures are the
executor's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plcrun.cli import main
from plcrun.compiler.api import compile_file
from plcrun.executor.config import ExecutorConfig
from plcrun.site import run_cycles

PROGRAMS = Path(__file__).parent / "programs"
PLANT = Path(__file__).parents[1] / "executor" / "programs" / "plant.st"


def test_a_runaway_loop_is_a_positioned_fault(capsys: pytest.CaptureFixture[str]) -> None:
    program = PROGRAMS / "runaway_now.st"
    assert main(["run", str(program), "--cycles", "3", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("plcrun: task ") and f"{program}:" in line and "faulted" in line


def test_infinite_reals_print_as_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(PROGRAMS / "infinite_real.st"), "--cycles", "1", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)["main"]
    assert values["up"] == "inf" and values["down"] == "-inf" and values["nothing"] is None


def test_a_division_by_zero_faults_the_task_and_names_the_line() -> None:
    program = compile_file(PLANT)
    clean = run_cycles(program, 2)
    assert clean.faults == {} and clean.values["plant"]["scans"] == 2
    source = PLANT.read_text().replace("divisor : INT := 1;", "divisor : INT := 0;")
    broken = PLANT.parent / "plant_div0.st"
    try:
        broken.write_text(source)
        result = run_cycles(compile_file(broken), 2)
    finally:
        broken.unlink()
    ((_task, message),) = result.faults.items()
    line = source.splitlines().index("q := 100 / divisor;") + 1
    assert f"plant_div0.st:{line}: runtime fault: division by zero" in message


def test_every_task_runs_its_cycles_on_its_own_period() -> None:
    """fast (10 ms) and slow (20 ms, higher priority) five scans each: the slow one first at equal
    instants, the fast one done after 40 ms while the slow one goes on to 80 ms."""
    program = compile_file(Path(__file__).parents[1] / "executor" / "programs" / "two_tasks.st")
    result = run_cycles(program, 5, ExecutorConfig())
    assert result.faults == {}
    assert result.values["f"]["runs"] == 5 and result.values["s"]["runs"] == 5
    assert result.values["cell"]["order"][:10] == [0, 1, 1, 0, 1, 1, 0, 1, 0, 0]
    assert result.values["cell"]["count"] == 10
