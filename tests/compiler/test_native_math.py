"""The native build's C twins of the interpreter's per-scan helpers (native_source's ``_C_HELPERS``):
EXP through libm's exp and the conversions to REAL through the float32 cast give every value the
interpreter gives, at overflow, underflow and the float32 range's edge (c_math.st, values worked
out by hand with Python's math and struct). Real Cython and gcc build (-O0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("Cython")

from plcrun.compiler.api import compile_file
from plcrun.compiler.native import enable_native
from plcrun.compiler.native_source import typed_source
from plcrun.site import run_cycles

from tests.compiler.test_conformance import _matches

C_MATH = Path(__file__).parent / "native" / "c_math.st"


def test_exp_and_real_conversions_in_c_give_the_interpreters_values(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLCRUN_NATIVE_CACHE", str(tmp_path_factory.getbasetemp() / "native-cache"))
    spec = json.loads(C_MATH.with_suffix(".expected.json").read_text())
    program = compile_file(C_MATH)
    lines, _ = typed_source(program)
    assert sum("_exp_c(" in line for line in lines) == 9 and sum("_f32_c(" in line for line in lines) == 7
    assert not any("_exp(" in line or "_f32(" in line for line in lines)
    assert enable_native(program, optimise="-O0") is None
    native = run_cycles(program, spec["cycles"])
    interpreted = run_cycles(compile_file(C_MATH), spec["cycles"])
    assert native.faults == interpreted.faults == {}
    _matches(interpreted.values, spec["values"], "c_math interpreted")
    _matches(native.values, spec["values"], "c_math native")
    assert repr(native.values) == repr(interpreted.values)
