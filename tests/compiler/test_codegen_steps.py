"""Two cheaper forms of common per-element code, with the values of the general forms:
``n := n + c`` / ``n := n - c`` (n of a type inside the target's, c a positive literal) tests only
the bound the sum can cross before wrapping; QUALITY_OF/AGE_OF of an indexed variable in a FOR
loop looks its process-image path up by one subscript of a table that makes missing paths itself
(by element offset when the loop runs over offsets), and reads each element's own quality/age."""

from __future__ import annotations

import re

from plcrun.compiler.api import compile_source
from plcrun.site import run_cycles

_STEP_SOURCE = """PROGRAM p
VAR
  a : INT := 32767; b : INT := -32768; c : SINT := 127; d : INT := 32767; e : INT := 100;
  f : INT := -32768; g : INT := 5; h : DINT := 40000; s : SINT := -128; k : INT;
  u : USINT := 255; ui : INT; big : INT := 32767;
END_VAR
a := a + 1;          (* -32768 *)
b := b - 1;          (* 32767 *)
c := c + 1;          (* -128 *)
d := 1 + d;          (* -32768 *)
e := e + 32767;      (* -32669 *)
f := f + 40000;      (* 7232 *)
g := g - 10;         (* -5: inside *)
k := DINT_TO_INT(h + 1);  (* a DINT: both bounds tested, -25535 *)
s := s - 1;          (* 127 *)
ui := u + 1;         (* a USINT into an INT: 256 *)
big := big + 65535;  (* the literal is as large as the range: both bounds, 32766 *)
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_a_step_by_a_literal_tests_one_bound_with_the_same_values() -> None:
    program = compile_source(_STEP_SOURCE, "steps.st")
    source = program.python_source
    assert "self.v_a = (_w if (_w := (self.v_a + 1)) <= 32767 else" in source
    assert "self.v_b = (_w if (_w := (self.v_b - 1)) >= -32768 else" in source
    assert "self.v_big = (_w if -32768 <= (_w :=" in source  # a literal of the range's size
    values = run_cycles(program, 1).values["p"]
    expected = {"a": -32768, "b": 32767, "c": -128, "d": -32768, "e": -32669, "f": 7232, "g": -5}
    expected.update({"k": -25535, "s": 127, "ui": 256, "big": 32766})
    assert {name: values[name] for name in expected} == expected
    values = run_cycles(program, 2).values["p"]  # and once more from there
    assert [values[n] for n in ("a", "b", "c", "s", "big")] == [-32767, 32766, -127, 126, 32765]


_PATH_SOURCE = """TYPE CAR : STRUCT on : BOOL; w : REAL; END_STRUCT; END_TYPE
PROGRAM p
VAR
  cars : ARRAY[1..6] OF CAR;
  zero : ARRAY[0..5] OF INT;
  grid : ARRAY[1..2, 1..2] OF INT;
  q1 : ARRAY[1..6] OF IO_QUALITY; q0 : ARRAY[0..5] OF IO_QUALITY; q2 : ARRAY[1..4] OF IO_QUALITY;
  age1 : ARRAY[1..6] OF TIME;
  n : INT := 6; i : INT; j : INT;
END_VAR
FOR i := 1 TO n DO
  q1[i] := QUALITY_OF(cars[i].on);
  age1[i] := AGE_OF(cars[i].w);
END_FOR;
FOR i := 0 TO n - 1 DO
  q0[i] := QUALITY_OF(zero[i]);
END_FOR;
FOR i := 1 TO 2 DO
  FOR j := 1 TO 2 DO
    q2[(i - 1) * 2 + j] := QUALITY_OF(grid[i, j]);
  END_FOR;
END_FOR;
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM main WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_qualities_and_ages_in_a_loop_are_each_elements_own() -> None:
    program = compile_source(_PATH_SOURCE, "paths.st")
    source = program.python_source
    assert "_PathTable(lambda _i, _o=self._path: f'{_o}.cars[{_i + 1}].on')" in source
    assert "_PathTable(lambda _i, _o=self._path: f'{_o}.zero[{_i}]')" in source
    state = program.new_state()
    rt = state.rt
    rt.qualities.update({"main.cars[2].on": 1, "main.cars[6].on": 3, "main.zero[0]": 2})
    rt.qualities.update({"main.zero[5]": 1, "main.grid[2,1]": 3, "main.grid[1,2]": 2})
    rt.stamps.update({"main.cars[1].w": 1_000_000, "main.cars[4].w": 7_000_000})
    task = program.tasks[0].name
    rt.clock_now = 10_000_000  # the executor sets it at each scan's start
    state.run_task_scan(task, 10_000_000)
    raw = state.accessor
    assert [raw(f"main.q1[{i}]").get() for i in range(1, 7)] == [4, 1, 4, 4, 4, 3]
    assert [raw(f"main.age1[{i}]").get() for i in range(1, 7)] == [9_000_000, 0, 0, 3_000_000, 0, 0]
    assert [raw(f"main.q0[{i}]").get() for i in range(6)] == [2, 4, 4, 4, 4, 1]
    assert [raw(f"main.q2[{i}]").get() for i in range(1, 5)] == [4, 2, 3, 4]
    rt.qualities["main.cars[2].on"] = 0  # the next scan reads the table's path again
    state.write("main.n", 3)
    state.run_task_scan(task, 20_000_000)
    assert [raw(f"main.q1[{i}]").get() for i in range(1, 7)] == [4, 0, 4, 4, 4, 3]


_TESTED_SOURCE = """PROGRAM p
VAR
  flags : ARRAY[1..4] OF BOOL; hits : ARRAY[1..4] OF INT; w : ARRAY[1..4] OF REAL := [1.0, -2.0, 3.0, 0.0];
  ok : BOOL; other : BOOL := TRUE; n_ok : INT; n_other : INT; i : INT; k : INT := 1; chain : INT;
END_VAR
FOR i := 1 TO 4 DO
  flags[i] := w[i] > 0.0;
  IF flags[i] THEN
    hits[i] := 1;
  ELSIF w[i] < 0.0 THEN
    hits[i] := -1;
  END_IF;
END_FOR;
ok := w[k] > 2.0;
IF ok THEN n_ok := 1; END_IF;
other := FALSE;   (* the next IF tests something else: no stored value may leak into it *)
IF ok OR other THEN n_other := 1; ELSE n_other := 2; END_IF;
ok := TRUE;
IF other THEN chain := 1; ELSIF w[1] > 5.0 THEN chain := 2; ELSIF w[2] > 5.0 THEN chain := 3;
ELSIF w[3] > 5.0 THEN chain := 4; ELSIF w[4] > 5.0 THEN chain := 5; ELSIF ok THEN chain := 6;
ELSE chain := 7; END_IF;
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_an_if_right_after_a_bool_store_tests_the_stored_value() -> None:
    program = compile_source(_TESTED_SOURCE, "tested.st")
    source = program.python_source
    assert re.search(r"self\.v_ok = (_b\d+) = .*\n\s*if \1:", source)  # kept in a local for the IF
    assert re.search(r"\[_k\d+\] = (_b\d+) = .*\n\s*if \1:", source)  # an element, on the fast path
    assert "if (self.v_ok or self.v_other):" in source
    values = run_cycles(program, 1).values["p"]
    assert values["flags"] == [True, False, True, False]
    assert values["hits"] == [1, -1, 1, 0]
    assert (values["n_ok"], values["n_other"], values["chain"]) == (0, 2, 6)


_GUARD_SOURCE = """PROGRAM p
VAR
  f : ARRAY[0..3] OF LREAL := [1.0, 2.0, 3.0, 4.0]; g : ARRAY[1..2, 1..2] OF BOOL := [TRUE, FALSE, FALSE, TRUE];
  head : INT := 2; r : INT := 2; c : INT := 2; on : BOOL := TRUE; off : BOOL; x : LREAL := 3.0;
  same : BOOL; differs : BOOL; diag : BOOL; either : BOOL; bad : INT := 2;
END_VAR
same := on AND NOT (x > f[head] OR x < f[head]);
differs := off OR NOT (x > f[head] OR x < f[head]);
diag := on AND g[r, c];
either := off OR g[1, c];
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_an_index_guard_lets_and_or_skip_with_the_same_values_and_faults() -> None:
    program = compile_source(_GUARD_SOURCE, "guard.st")
    source = program.python_source
    assert "(self.v_on and (not ((self.v_x > self.v_f[self.v_head]) or" in source
    assert "if 0 <= self.v_head <= 3 else (self.v_on & (not" in source
    assert "if 1 <= self.v_r <= 2 and 1 <= self.v_c <= 2 else" in source
    values = run_cycles(program, 1).values["p"]
    assert (values["same"], values["differs"], values["diag"], values["either"]) == (True, True, True, False)
    # out of bounds: the guard fails, both operands run as before and the index faults at its line
    for line, variable, value in ((7, "head", 4), (9, "r", 3), (9, "c", 0)):
        faulty = _GUARD_SOURCE.replace(f"{variable} : INT := 2", f"{variable} : INT := {value}")
        faulty = faulty.replace("on : BOOL := TRUE", "on : BOOL")  # the left decides
        faults = run_cycles(compile_source(faulty, "guard.st"), 1).faults
        assert len(faults) == 1 and f"guard.st:{line}" in next(iter(faults.values()))
        assert f"index {value}" in next(iter(faults.values()))


_MINMAX_SOURCE = """TYPE CAR : STRUCT a : REAL; b : REAL; END_STRUCT; END_TYPE
PROGRAM p
VAR
  cars : ARRAY[1..3] OF CAR; lo : ARRAY[1..3] OF REAL; hi : ARRAY[1..3] OF REAL; nan : LREAL; i : INT;
  m : REAL := 2.0; n : REAL := -1.0; both : REAL; at_least_0 : REAL;
END_VAR
nan := SQRT(-1.0);
cars[1].a := 1.0; cars[1].b := 2.0; cars[2].a := LREAL_TO_REAL(nan); cars[2].b := 5.0;
cars[3].a := 7.0; cars[3].b := LREAL_TO_REAL(nan);
FOR i := 1 TO 3 DO
  lo[i] := MIN(cars[i].a, cars[i].b);
  hi[i] := MAX(-cars[i].a, 0.0);
END_FOR;
both := MIN(m, n);
at_least_0 := MAX(n, 0.0);
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_min_max_of_pure_reads_read_them_again_with_the_same_values() -> None:
    program = compile_source(_MINMAX_SOURCE, "minmax.st")
    source = program.python_source
    assert "self.v_both = (self.v_n if self.v_m > self.v_n else self.v_m)" in source
    assert re.search(r"\(_e\d+\.v_b if _e\d+\.v_a > _e\d+\.v_b else _e\d+\.v_a\)", source)
    values = run_cycles(program, 1).values["p"]
    lo, hi = values["lo"], values["hi"]
    assert lo[0] == 1.0 and _is_nan(lo[1]) and lo[2] == 7.0  # a NaN first wins, a NaN second loses
    assert hi[0] == 0.0 and _is_nan(hi[1]) and hi[2] == 0.0
    assert (values["both"], values["at_least_0"]) == (-1.0, 0.0)


def _is_nan(value: object) -> bool:
    return value is None or value != value  # the values' JSON form gives NaN as None
