"""Stores that need no call or wrap-around: an assignment of LREAL_TO_REAL(x) rounds through the
state's float32 cell (``_F32``) like an implicit REAL rounding, with the same values (nearest
binary32, overflow to infinity, NaN kept); ``a MOD c`` (c a literal whose results fit the
variable) is stored without the wrap test, with the values the earlier compiler gave; a
REAL -> integer/TIME conversion remembers its last argument and result (same values, and a NaN
still faults at its line after a good value was remembered). The programs and their expected
values: ``codegen/*.st`` and ``*.expected.json`` (codegen_cases)."""

from __future__ import annotations

from tests.compiler.codegen_cases import check_runs, load


def test_lreal_to_real_assignment_rounds_through_the_cell() -> None:
    """r_third is the nearest binary32 of 0.1 / 3."""
    program, expected = load("cell")
    assert "_F32[0] = self.v_big\n        self.v_r_big = _F32[0]" in program.python_source
    check_runs(program, expected["runs"])


def test_a_small_mod_is_stored_without_the_wrap_test() -> None:
    program, expected = load("mod")
    source = program.python_source
    assert "self.v_m1 = (_v % 512 if (_v := (self.v_a + 1)) >= 0 else -(-_v % 512))" in source
    assert "self.v_m5 = (_w if" in source and "self.v_m6 = (((" in source  # still wrapped
    check_runs(program, expected["runs"])


def test_a_negative_literal_is_stored_as_its_value() -> None:
    """c := -3 stores the REAL -3.0; -0.0 keeps its sign, as float(-0.0) did."""
    program, expected = load("negative")
    assert "self.v_a = (-1.5)" in program.python_source and "_float(" not in program.python_source
    check_runs(program, expected["runs"])


def test_a_conversion_remembers_its_last_result_and_a_nan_still_faults() -> None:
    """x: -0.5 .. 2.5 in 7 scans (ties to even), z: -0.0 at scan 3; at scan 9 the same site,
    remembered 0, gets NaN."""
    program, expected = load("memo")
    assert program.python_source.count("_remember(") == 8
    check_runs(program, expected["runs"])


def test_a_conversion_keyed_on_its_parameter_follows_every_change() -> None:
    """x: -1.5, -0.75, 0.0, 0.75, 1.5, 2.25 (exact in binary32), z: -0.0, 0.0, 0.25 at scans 4-6;
    the results are Python's round (ties to even, as the conversions)."""
    program, expected = load("keyed")
    source = program.python_source
    # x * c, x / c, c - x, c * x key on the variable itself; 2.0 * z + 0.5 keys on the product
    assert source.count(" == self.v_x else _remember(") == 4
    assert " == self.v_z else _remember(" in source  # a plain read: read again where it changed
    assert " == (_k5 := (2.0 * self.v_z)) else _remember(" in source  # the product: kept in a local
    check_runs(program, expected["runs"])


def test_a_remembered_conversion_evaluates_its_argument_once() -> None:
    """Only a plain read is read again where the key changed; a call is evaluated once, in a local:
    m is 0.75, 1.25, 1.75, a new key (a miss) every scan, and bump runs once a scan."""
    program, expected = load("once")
    assert " == (_k1 := F_BUMP(self.v_m)) else _remember(" in program.python_source
    check_runs(program, expected["runs"])
