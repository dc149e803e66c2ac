"""Stores that need no call or wrap-around: an assignment of LREAL_TO_REAL(x) rounds through the
state's float32 cell (``_F32``) like an implicit REAL rounding, with the same values (nearest
binary32, overflow to infinity, NaN kept); ``a MOD c`` (c a literal whose results fit the
variable) is stored without the wrap test, with the values the earlier compiler gave; a
REAL -> integer/TIME conversion remembers its last argument and result (same values, and a NaN
still faults at its line after a good value was remembered)."""

from __future__ import annotations

import math

from plcrun.compiler.api import compile_source
from plcrun.site import run_cycles

_SOURCE = """PROGRAM p
VAR
  big : LREAL := 1.0E300; third : LREAL := 0.1; nan : LREAL;
  r_big : REAL; r_third : REAL; r_nan : REAL; r_neg : REAL; r_sum : REAL;
END_VAR
nan := SQRT(-1.0);
r_big := LREAL_TO_REAL(big);
r_third := LREAL_TO_REAL(third / 3.0);
r_nan := LREAL_TO_REAL(nan);
r_neg := LREAL_TO_REAL(-big);
r_sum := LREAL_TO_REAL(third) + LREAL_TO_REAL(third * 2.0);
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_lreal_to_real_assignment_rounds_through_the_cell() -> None:
    program = compile_source(_SOURCE, "cell.st")
    assert "_F32[0] = self.v_big\n        self.v_r_big = _F32[0]" in program.python_source
    values = run_cycles(program, 1).values["p"]
    assert values["r_big"] == math.inf and values["r_neg"] == -math.inf
    assert values["r_third"] == 0.03333333507180214  # the nearest binary32 of 0.1 / 3
    assert values["r_nan"] is None or math.isnan(values["r_nan"])
    assert values["r_sum"] == 0.30000001192092896


_MOD_SOURCE = """PROGRAM p
VAR
  a : INT := 32767; b : INT := -32768; c : DINT := -1000001; d : INT := 5;
  m1 : INT; m2 : INT; m3 : INT; m4 : INT; m5 : SINT; m6 : UINT;
END_VAR
m1 := (a + 1) MOD 512;     (* the sum leaves INT; its MOD fits *)
m2 := b MOD 512;
m3 := DINT_TO_INT(c MOD 1000);
m4 := (d - 11) MOD 4;
m5 := d MOD 200;           (* 199 does not fit SINT: wrapped as before *)
m6 := (d - 11) MOD 4;      (* negative results do not fit UINT: wrapped as before *)
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_a_small_mod_is_stored_without_the_wrap_test() -> None:
    program = compile_source(_MOD_SOURCE, "mod.st")
    source = program.python_source
    assert "self.v_m1 = (_v % 512 if (_v := (self.v_a + 1)) >= 0 else -(-_v % 512))" in source
    assert "self.v_m5 = (_w if" in source and "self.v_m6 = (((" in source  # still wrapped
    values = run_cycles(program, 1).values["p"]
    assert [values[f"m{i}"] for i in range(1, 7)] == [0, 0, -1, -2, 5, 65534]


def test_a_negative_literal_is_stored_as_its_value() -> None:
    program = compile_source(
        """PROGRAM p VAR a : LREAL := 5.0; b : LREAL := 5.0; c : LREAL; END_VAR
a := -1.5;
b := -0.0;
c := -3;
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
""",
        "neg.st",
    )
    assert "self.v_a = (-1.5)" in program.python_source and "_float(" not in program.python_source
    values = run_cycles(program, 1).values["p"]
    assert values["a"] == -1.5 and values["c"] == -3.0 and isinstance(values["c"], float)
    assert math.copysign(1.0, values["b"]) == -1.0  # -0.0 keeps its sign, as float(-0.0) did


_MEMO_SOURCE = """PROGRAM p
VAR
  scan : INT; hold_s : REAL := 1.5; x : LREAL := -1.0; z : LREAL;
  t_hold : TIME; t_sum : TIME; i_x : INT; i_sum : DINT; w_x : WORD; i_z : INT;
END_VAR
scan := scan + 1;
t_hold := REAL_TO_TIME(hold_s * 1000.0);
t_sum := t_sum + REAL_TO_TIME(hold_s * 1000.0);
x := x + 0.5;
i_x := LREAL_TO_INT(x);
i_sum := i_sum + LREAL_TO_INT(x) * 100 + LREAL_TO_INT(-x);
w_x := LREAL_TO_WORD(x + 3.0);
IF scan = 3 THEN z := -0.0; ELSE z := 0.0; END_IF;
i_z := LREAL_TO_INT(z);
IF scan = 9 THEN z := SQRT(-1.0); END_IF;
i_z := LREAL_TO_INT(z);
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_a_conversion_remembers_its_last_result_and_a_nan_still_faults() -> None:
    program = compile_source(_MEMO_SOURCE, "memo.st")
    assert program.python_source.count("_remember(") == 8
    result = run_cycles(program, 7)  # x: -0.5 .. 2.5 (ties to even), z: -0.0 at scan 3
    values = result.values["p"]
    assert (values["t_hold"], values["t_sum"]) == ("T#1s500ms", "T#10s500ms")
    assert (values["i_x"], values["i_sum"], values["w_x"], values["i_z"]) == (2, 693, 6, 0)
    faults = run_cycles(program, 9).faults  # the same site, remembered 0, gets NaN
    assert len(faults) == 1 and "memo.st:16" in next(iter(faults.values()))


_KEYED_SOURCE = """PROGRAM p
VAR
  scan : INT; x : REAL := -2.25; z : LREAL;
  a : DINT; b : DINT; c : DINT; d : DINT; e : DINT; t : TIME; s_a : DINT; s_t : TIME;
END_VAR
scan := scan + 1;
x := x + 0.75;
IF scan = 4 THEN z := -0.0; ELSIF scan = 5 THEN z := 0.0; ELSE z := 0.25; END_IF;
a := REAL_TO_DINT(x * 3.0);
b := REAL_TO_DINT(x / 0.5);
c := REAL_TO_DINT(7.0 - x);
d := LREAL_TO_DINT(z - 0.5);
e := LREAL_TO_DINT(2.0 * z + 0.5);
t := REAL_TO_TIME(1000.0 * x);
s_a := s_a + a;
s_t := s_t + t;
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_a_conversion_keyed_on_its_parameter_follows_every_change() -> None:
    program = compile_source(_KEYED_SOURCE, "keyed.st")
    source = program.python_source
    # x * c, x / c, c - x, c * x key on the variable itself; 2.0 * z + 0.5 keys on the product
    assert source.count(" == self.v_x else _remember(") == 4
    assert " == self.v_z else _remember(" in source  # a plain read: read again where it changed
    assert " == (_k5 := (2.0 * self.v_z)) else _remember(" in source  # the product: kept in a local
    total = 0
    for scans in range(1, 7):  # x: -1.5, -0.75, 0.0, 0.75, 1.5, 2.25 (exact in binary32)
        x = -2.25 + 0.75 * scans
        total += round(x * 3.0)  # Python rounds ties to even, as the conversions do
        values = run_cycles(program, scans).values["p"]
        expected = (round(x * 3.0), round(x / 0.5), round(7.0 - x), total)
        assert (values["a"], values["b"], values["c"], values["s_a"]) == expected, scans
    assert run_cycles(program, 4).values["p"]["t"] == "T#750ms"  # x = 0.75
    for scans in (4, 5, 6):  # z: -0.0, 0.0, 0.25
        values = run_cycles(program, scans).values["p"]
        z = {4: -0.0, 5: 0.0, 6: 0.25}[scans]
        assert (values["d"], values["e"]) == (round(z - 0.5), round(2.0 * z + 0.5)), scans


_ONCE_SOURCE = """FUNCTION bump : REAL
  VAR_INPUT x : REAL; END_VAR
  VAR_EXTERNAL calls : INT; END_VAR
  calls := calls + 1;
  bump := x;
END_FUNCTION
PROGRAM p
VAR m : REAL := 0.25; u : TIME; END_VAR
m := m + 0.5;
u := REAL_TO_TIME(bump(m) * 1000.0);
END_PROGRAM
CONFIGURATION c VAR_GLOBAL calls : INT; END_VAR
RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_a_remembered_conversion_evaluates_its_argument_once() -> None:
    """Only a plain read is read again where the key changed; a call is evaluated once, in a local."""
    program = compile_source(_ONCE_SOURCE, "once.st")
    assert " == (_k1 := F_BUMP(self.v_m)) else _remember(" in program.python_source
    for scans in (1, 2, 3):  # m: 0.75, 1.25, 1.75, a new key (a miss) every scan
        values = run_cycles(program, scans).values
        assert values["c"]["calls"] == scans  # bump runs once a scan
        assert values["p"]["u"] == {1: "T#750ms", 2: "T#1s250ms", 3: "T#1s750ms"}[scans]
