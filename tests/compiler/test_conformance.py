"""Conformance suite: every ``conformance/*.st`` runs for its cycles and must end with the values
in the ``.expected.json`` beside it (only the listed variables are compared)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from plcrun.site import run_cycles

HERE = Path(__file__).parent / "conformance"
CASES = sorted(HERE.glob("*.st"))


def _matches(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: missing {key!r} (have {sorted(actual)})"
            _matches(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: {actual!r} != {expected!r}"
        )
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _matches(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, float), f"{where}: expected a REAL, got {actual!r}"
        assert actual == expected or (math.isnan(actual) and math.isnan(expected)), (
            f"{where}: {actual!r} != {expected!r}"
        )
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


def test_there_are_cases() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_conformance(case: Path) -> None:
    spec = json.loads(case.with_suffix(".expected.json").read_text())
    result = run_cycles(compile_file(case), spec["cycles"])  # the executor in virtual time, as `run --cycles`
    assert result.faults == {}
    _matches(result.values, spec["values"], case.stem)


def test_cli_run_prints_the_same_json() -> None:
    case = HERE / "timers.st"
    spec = json.loads(case.with_suffix(".expected.json").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "plcrun.cli", "run", str(case), "--cycles", str(spec["cycles"]), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    _matches(json.loads(result.stdout), spec["values"], "cli")
