"""The programs of the code generator's tests: ``codegen/<case>.st`` with its expected results beside
it in ``codegen/<case>.expected.json``. ``runs`` lists scan counts, each run from the start on the
executor in virtual time (as ``plcrun run --cycles``), with the values it must end with or the one
fault it must stop at (every listed text in its message)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plcrun.compiler.api import compile_file
from plcrun.site import run_cycles
from plcrun.state.program import CompiledProgram

HERE = Path(__file__).parent / "codegen"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()  # a variable the values lack: never equal to anything listed, null included


def load(case: str) -> tuple[CompiledProgram, dict[str, Any]]:
    """The compiled case and its expected results."""
    path = HERE / f"{case}.st"
    return compile_file(path), json.loads(path.with_suffix(".expected.json").read_text())


def check_runs(program: CompiledProgram, runs: list[dict[str, Any]]) -> None:
    for run in runs:
        result = run_cycles(program, run["cycles"])
        if "fault" in run:
            assert len(result.faults) == 1, result.faults
            message = next(iter(result.faults.values()))
            assert all(text in message for text in run["fault"]), (run["fault"], message)
        else:
            assert result.faults == {}
            assert_values(result.values, run["values"], f"after {run['cycles']} scans")


def assert_values(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """The listed variables only, compared by repr: 1 is not 1.0 nor True, -0.0 is not 0.0, and a
    NaN (null in the values' JSON form) only matches null."""
    listed = {name: _listed(actual.get(name, MISSING), value) for name, value in expected.items()}
    assert repr(listed) == repr(expected), where


def _listed(actual: Any, expected: Any) -> Any:
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {name: _listed(actual.get(name, MISSING), value) for name, value in expected.items()}
    return actual
