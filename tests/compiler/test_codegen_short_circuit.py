"""BOOL AND/OR use Python's short circuit only where skipping the right operand cannot be seen, and
``x = c1 OR x = c2 ...`` over an integer or enumeration read becomes one membership test.

The values (truth table, NaN, effects of calls) are checked by ``conformance/short_circuit.st``
(the earlier compiler, which evaluated every operand, gives the same JSON); here: which code was
chosen, and that a right operand that can fault still faults when the left one decides.
"""

from __future__ import annotations

import re
from pathlib import Path

from plcrun.compiler.api import compile_file
from plcrun.site import run_cycles

HERE = Path(__file__).parent / "conformance"

_CONFIG = """
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def _body(source: str, name: str) -> str:
    start = source.index(f"class {name}:")
    end = source.find("\n# ---- ", start)
    return source[start : end if end > 0 else len(source)]


def test_short_circuit_only_where_skipping_cannot_be_seen() -> None:
    body = _body(compile_file(HERE / "short_circuit.st").python_source, "P_P")
    assert "self.v_truth[1] = (self.v_t and self.v_f)" in body
    assert "self.v_truth[5] = (self.v_t or self.v_f)" in body
    assert "(self.v_f & F_MARK(1, True))" in body  # a call with an effect: evaluated
    assert "(self.v_t | F_MARK(2, False)) | F_MARK(3, True)" in body
    # in the loop over flags: an index that may be out of bounds keeps &, one known in bounds: or
    assert re.search(r"\((_m\d+)\[(_k\d+)\] and \(\(\2 \+ 1\) > 1\)\) & \1\[", body)
    assert re.search(r"\(\(not _m\d+\[_k\d+\]\) or \(_m\d+ >= 2\)\)", body)
    assert "(self.v_w & 3855)" in body  # bit strings: & and |
    assert "self.v_member_or = (self.v_q in (2, 1, 3,))" in body  # x = c1 OR x = c2 ...: one read
    assert "self.v_real_or = ((self.v_r == 2.0) or" in body  # REAL: the comparisons as written


def _faults(tmp_path: Path, body: str) -> dict[str, str]:
    path = tmp_path / "skip.st"
    path.write_text(body + _CONFIG)
    return run_cycles(compile_file(path), 1).faults


def test_a_right_operand_that_divides_by_zero_still_faults(tmp_path: Path) -> None:
    faults = _faults(
        tmp_path,
        """PROGRAM p VAR f : BOOL; x : LREAL := 1.0; zero : LREAL; b : BOOL; END_VAR
b := f AND x / zero > 1.0;
END_PROGRAM
""",
    )
    assert len(faults) == 1 and "skip.st:2" in next(iter(faults.values()))


def test_a_right_operand_with_an_index_out_of_bounds_still_faults(tmp_path: Path) -> None:
    faults = _faults(
        tmp_path,
        """PROGRAM p VAR t : BOOL := TRUE; k : INT := 4; a : ARRAY[1..3] OF BOOL; b : BOOL; END_VAR
b := t OR a[k];
END_PROGRAM
""",
    )
    assert len(faults) == 1 and "skip.st:2" in next(iter(faults.values()))
    assert "index 4" in next(iter(faults.values()))


def test_a_one_line_function_generated_in_place_may_be_skipped(tmp_path: Path) -> None:
    path = tmp_path / "inline.st"
    path.write_text(
        """FUNCTION in_band : BOOL VAR_INPUT x : LREAL; lo : LREAL; hi : LREAL; END_VAR
in_band := x >= lo AND x <= hi;
END_FUNCTION
PROGRAM p VAR f : BOOL; t : BOOL := TRUE; x : LREAL := 0.5; zero : LREAL; a : BOOL; b : BOOL; END_VAR
a := f AND in_band(x, 0.0, 1.0);
b := t AND in_band(x / zero, 0.0, 1.0);
END_PROGRAM
"""
        + _CONFIG
    )
    body = _body(compile_file(path).python_source, "P_P")
    assert "self.v_a = (self.v_f and (" in body  # the inlined expression cannot fault: skipped
    assert "self.v_b = (self.v_t & (" in body  # its argument divides: evaluated
    faults = run_cycles(compile_file(path), 1).faults
    assert len(faults) == 1 and "inline.st:6" in next(iter(faults.values()))


def test_a_one_line_function_with_a_subrange_still_faults_when_skipping_would_hide_it(tmp_path: Path) -> None:
    """Passing an argument to a subrange parameter, or returning a subrange result, is a range check
    that can fault: such a function is called, not generated in place, and never skipped."""
    parameter = _faults(
        tmp_path,
        """TYPE R : INT(0..10); END_TYPE
FUNCTION positive : BOOL VAR_INPUT a : R; END_VAR positive := a > 0; END_FUNCTION
PROGRAM p VAR g : BOOL := TRUE; x : INT := 50; ok : BOOL; END_VAR
ok := g OR positive(x);
END_PROGRAM
""",
    )
    assert list(parameter.values()) == [
        f"{tmp_path / 'skip.st'}:4: runtime fault: value 50 is outside the subrange 0..10"
    ]
    result = _faults(
        tmp_path,
        """TYPE R : INT(0..10); END_TYPE
FUNCTION clip : R VAR_INPUT a : INT; END_VAR clip := a; END_FUNCTION
PROGRAM p VAR g : BOOL := TRUE; x : INT := 50; ok : BOOL; END_VAR
ok := g OR clip(x) > 0;
END_PROGRAM
""",
    )
    assert list(result.values()) == [
        f"{tmp_path / 'skip.st'}:2: runtime fault: value 50 is outside the subrange 0..10"
    ]
