"""The code generator's fast paths are taken where they may be, and only there.

Their behaviour (values, evaluation order, wrap-around) is checked by
``conformance/codegen_fast_paths.st``; here: which code the generator chose, and that a fault in a
function block that is not inlined still points at that block's ST line.
"""

from __future__ import annotations

import re
from pathlib import Path

from plcrun.compiler.api import compile_file, compile_source
from plcrun.site import run_cycles

HERE = Path(__file__).parent / "conformance"


def _class_source(source: str, name: str) -> str:
    start = source.index(f"class {name}:")
    end = source.find("\n# ---- ", start)
    return source[start : end if end > 0 else len(source)]


def test_fast_paths_are_taken_in_the_conformance_program() -> None:
    body = _class_source(compile_file(HERE / "codegen_fast_paths.st").python_source, "P_FAST")
    for call in ("_max(", "_min(", "F_IN_BAND(", "self.v_single._body()", "_body()\n        self.v_edges"):
        assert call not in body, call  # inlined
    assert re.search(r"(_fb\d+) = self\.v_ret_fb\n(.*\n)*? +\1\._body\(\)", body)  # a loop, RETURN: called
    # FOR k := 1 TO n over ARRAY[1..]: the offsets 0 .. n - 1 straight from n, no range checked first
    assert re.search(
        r"(_last\d+) = self\.v_n_vals\n +if \1 <= 10:\n(.*\n)*? +for _k\d+ in _range\(\1\):", body
    )
    assert "self.v_lim_low = ((-1.0) if (_t" in body  # LIMIT with plain bounds: inline
    assert "_limit(1.0, F_NOTE(7.0), 5.0)" in body  # a call in IN (may write what a bound reads): not
    assert "F_NOTE(" in body  # writes a global: called
    assert "for _e" in body  # the whole array of cells: element iteration
    assert "& 4294967295) - 2147483648)" in body  # DINT wrap only on the rare path ...
    assert "-2147483648 <= (_w := " in body  # ... behind a range test
    assert "_F32[0] = (self.v_r * 3.0)\n        self.v_r_prod = _F32[0]" in body  # REAL store, no call


def test_limit_with_a_call_in_a_bound_keeps_the_call() -> None:
    program = compile_source(
        """
FUNCTION twice : LREAL VAR_INPUT x : LREAL; END_VAR twice := 2.0 * x; END_FUNCTION
PROGRAM p VAR a : LREAL := 3.0; b : LREAL; END_VAR
b := LIMIT(twice(a), 1.0, 10.0);
END_PROGRAM
""",
        "limit_call.st",
    )
    body = _class_source(program.python_source, "P_P")
    assert "_limit(" in body  # the low bound is not a plain read: evaluated once, in order


def test_a_fault_in_a_block_that_is_not_inlined_names_the_block_line(tmp_path: Path) -> None:
    path = tmp_path / "fault.st"
    path.write_text(
        """FUNCTION_BLOCK RATIO
VAR_INPUT a : DINT; b : DINT; END_VAR
VAR_OUTPUT q : DINT; END_VAR
q := a / b;
END_FUNCTION_BLOCK
PROGRAM p VAR r : RATIO; n : DINT := 2; END_VAR
n := n - 1;
r(a := 10, b := n);
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""
    )
    program = compile_file(path)
    assert "._body()" in _class_source(program.python_source, "P_P")  # a division: not inlined
    result = run_cycles(program, 2)
    assert len(result.faults) == 1
    fault = next(iter(result.faults.values()))
    assert "fault.st:4" in fault, fault


def test_rounding_a_nan_to_an_integer_still_faults(tmp_path: Path) -> None:
    path = tmp_path / "nan.st"
    path.write_text(
        """PROGRAM p VAR x : LREAL; n : DINT; END_VAR
x := SQRT(-1.0);
n := LREAL_TO_DINT(x);
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""
    )
    result = run_cycles(compile_file(path), 1)
    fault = next(iter(result.faults.values()))
    assert "nan.st:3" in fault and "nan" in fault.lower(), fault


def test_limit_with_elements_of_a_proved_loop_is_inline(tmp_path: Path) -> None:
    path = tmp_path / "limit_loop.st"
    path.write_text(
        """PROGRAM p
VAR lo : ARRAY[1..4] OF LREAL := [0.0, 1.0, 2.0, -1.0]; hi : ARRAY[1..4] OF LREAL := [1.0, 1.5, 2.0, 1.0];
  out : ARRAY[1..4] OF LREAL; x : LREAL := 1.75; n : INT := 4; i : INT; nan : LREAL;
  ins : ARRAY[1..4] OF LREAL; out_nan : ARRAY[1..4] OF LREAL;
END_VAR
nan := SQRT(-1.0);
FOR i := 1 TO n DO
  out[i] := LIMIT(lo[i], x * hi[i], hi[i]);
END_FOR;
out[4] := LIMIT(lo[4], nan, hi[4]);
ins[2] := nan;
FOR i := 1 TO n DO
  out_nan[i] := LIMIT(lo[i], ins[i] * x, hi[i]);   (* the inline form with NaN in the loop *)
END_FOR;
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""
    )
    program = compile_file(path)
    loop = program.python_source.split("for _k", 1)[1].split("else:", 1)[0]
    assert "_limit(" not in loop and " if (_t" in loop  # lo[i] and hi[i] read twice: inline
    out = run_cycles(program, 1).values["p"]["out"]
    assert out[:3] == [1.0, 1.5, 2.0]  # x * hi above hi, inside, at the bound
    assert out[3] is None or out[3] != out[3]  # NaN passes LIMIT, as support.limit lets it
    second = program.python_source.split("= self.v_out_nan", 1)[1].split("else:", 1)[0]  # its fast loop
    assert "_limit(" not in second and " if (_t" in second
    out_nan = run_cycles(program, 1).values["p"]["out_nan"]
    assert (
        out_nan[0] == 0.0 and out_nan[2] == 2.0 and out_nan[3] == 0.0
    )  # 0 * x: lo, 2.0 (lo = hi), 0 in [-1, 1]
    assert out_nan[1] is None or out_nan[1] != out_nan[1]  # NaN passes the inline LIMIT too
