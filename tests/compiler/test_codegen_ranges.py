"""Range proofs of subrange variables (runtime/compiler/codegen_ranges.py): a VAR/VAR_TEMP of a
subrange type that its POU writes only by assignment needs no check where it indexes an array or
is stored from a proved value (``(head + 1) MOD 512``); every other write (FOR, VAR_IN_OUT, a bit)
leaves the checks in place, so an out-of-range index still faults at its ST line. The values of
the ring itself are the conformance case ``conformance/subrange_ring.st``. Inside a FOR loop whose
range is known, indices computed from the loop variable (``a[i - 1]``, ``b[i MOD 4]``) are proved
the same way (``conformance/loop_neighbours.st``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file, compile_source
from plcrun.site import run_cycles

HERE = Path(__file__).parent / "ranges"
RING = Path(__file__).parent / "conformance" / "subrange_ring.st"


def _body(source: str, cls: str) -> str:
    start = source.index(f"class {cls}:")
    return source[start : source.index("\n# ----", start)]


def test_the_ring_has_no_index_or_range_check() -> None:
    source = compile_file(RING).python_source
    ring = _body(source, "FB_RING4")
    assert "_oob(" not in ring and "_subrange(" not in ring
    assert "self.v_head = ((self.v_head + 1) % 4)" in ring
    assert "self.v_after_oldest = self.v_buf[self.v_next]" in ring
    main = _body(source, "P_P")
    assert "self.v_seen[self.v_h] = " in main
    # a negative dividend keeps MOD's general code; an unproved value stored into a subrange its check
    assert "self.v_below = (_v % 4 if (_v := (self.v_h - 5)) >= 0 else -(-_v % 4))" in main
    assert "self.v_back = _subrange(" in main


def test_indices_from_a_loop_variable_inside_the_array_have_no_check() -> None:
    """a[i - 1] with i in 2..5 and b[i MOD 4] with i in 0..7 (values: conformance/loop_neighbours)."""
    body = _body(
        compile_file(Path(__file__).parent / "conformance" / "loop_neighbours.st").python_source, "P_P"
    )
    assert "(_m4[_k2 - 1] - _m4[_k2 - 2])" in body  # i - 1 at offset i - 2, the constants folded
    assert "_m12[(_k11 % 4)] = " in body
    assert "(_m17[_k15] + _m17[_k15 - 1])" in body  # i runs as _k15 + 1: a[i - 1] at offset _k15 - 1
    assert body.count("_oob(") == 4  # a[i + 1] with i in 1..n, n unknown; e's loop when m > 5


def test_a_store_that_may_leave_the_range_keeps_its_check_and_faults_at_its_line() -> None:
    program = compile_file(HERE / "step_out.st")
    assert "self.v_h = _subrange(" in program.python_source
    assert "self.v_a[self.v_h] = self.v_h" in program.python_source
    assert run_cycles(program, 3).faults == {}
    faults = run_cycles(program, 4).faults
    assert len(faults) == 1
    message = next(iter(faults.values()))
    assert "step_out.st:8" in message and "value 4 is outside the subrange 0..3" in message


@pytest.mark.parametrize(
    ("case", "line", "index"),
    [
        ("for_end", 11, 4),
        ("in_out", 15, 7),
        ("bit_write", 9, 4),
        ("negative_mod", 8, -1),
        ("loop_past_end", 11, 5),
        ("difference", 9, -1),
    ],
)
def test_an_unproved_index_keeps_its_check_and_faults_at_its_line(case: str, line: int, index: int) -> None:
    program = compile_file(HERE / f"{case}.st")
    assert "_oob(" in _body(program.python_source, "P_P")
    faults = run_cycles(program, 1).faults
    assert len(faults) == 1
    message = next(iter(faults.values()))
    assert f"{case}.st:{line}" in message and f"index {index} " in message


def test_a_sum_that_could_wrap_is_not_proved() -> None:
    program = compile_source(
        """PROGRAM p
VAR h : INT(0..3); a : ARRAY[0..3] OF INT; x : INT; END_VAR
x := a[(h + 32767) MOD 4];
x := a[(h + 32764) MOD 4];
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
""",
        "wrap.st",
    )
    body = _body(program.python_source, "P_P")
    assert "<= 3 else _oob(_i1, 0, 3)]" in body and "(_v := (self.v_h + 32767))" in body  # may leave INT
    assert "self.v_a[((self.v_h + 32764) % 4)]" in body  # at most 32767


def test_writes_from_outside_are_checked_against_the_subrange() -> None:
    state = compile_file(RING).new_state()
    state.write("main.r.head", 3)
    assert state.read("main.r.head") == 3
    for bad in (4, -1):
        with pytest.raises(ValueError, match=r"outside 0\.\.3"):
            state.write("main.r.head", bad)
    assert state.read("main.r.head") == 3


def test_a_store_proved_inside_its_type_has_no_wrap() -> None:
    """LIMIT with literal or CONSTANT bounds, a negative literal (values: conformance/proved_stores)."""
    body = _body(
        compile_file(Path(__file__).parent / "conformance" / "proved_stores.st").python_source, "P_P"
    )
    assert "self.v_n = (0 if (_t1 := self.v_k) < 0 else (1000 if _t1 > 1000 else _t1))" in body
    assert "self.v_m = (-1)" in body and "self.v_u = (0 if" in body
    assert "self.v_s = (_w if -128 <= (_w := " in body  # 0..1000 does not fit SINT: wrapped
    faults = run_cycles(compile_file(HERE / "limit_store.st"), 1).faults  # LIMIT(10, k, 5) is 5 or 10
    assert len(faults) == 1
    message = next(iter(faults.values()))
    assert "limit_store.st:8" in message and "value 5 is outside the subrange 6..127" in message
