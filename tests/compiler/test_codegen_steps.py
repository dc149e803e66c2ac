"""Two cheaper forms of common per-element code, with the values of the general forms:
``n := n + c`` / ``n := n - c`` (n of a type inside the target's, c a positive literal) tests only
the bound the sum can cross before wrapping; QUALITY_OF/AGE_OF of an indexed variable in a FOR
loop looks its process-image path up by one subscript of a table that makes missing paths itself
(by element offset when the loop runs over offsets), and reads each element's own quality/age.
The programs and their expected values: ``codegen/*.st`` and ``*.expected.json`` (codegen_cases)."""

from __future__ import annotations

import re

from plcrun.compiler.api import compile_source

from tests.compiler.codegen_cases import HERE, assert_values, check_runs, load


def test_a_step_by_a_literal_tests_one_bound_with_the_same_values() -> None:
    program, expected = load("steps")
    source = program.python_source
    assert "self.v_a = (_w if (_w := (self.v_a + 1)) <= 32767 else" in source
    assert "self.v_b = (_w if (_w := (self.v_b - 1)) >= -32768 else" in source
    assert "self.v_big = (_w if -32768 <= (_w :=" in source  # a literal of the range's size
    check_runs(program, expected["runs"])  # one scan, then once more from there


def test_qualities_and_ages_in_a_loop_are_each_elements_own() -> None:
    program, expected = load("paths")
    source = program.python_source
    assert "_PathTable(lambda _i, _o=self._path: f'{_o}.cars[{_i + 1}].on')" in source
    assert "_PathTable(lambda _i, _o=self._path: f'{_o}.zero[{_i}]')" in source
    state = program.new_state()
    rt = state.rt
    task = program.tasks[0].name
    for number, scan in enumerate(expected["scans"], 1):  # the next scan reads the table's paths again
        rt.qualities.update(scan["qualities"])
        rt.stamps.update(scan.get("stamps", {}))
        for path, value in scan.get("write", {}).items():
            state.write(path, value)
        rt.clock_now = scan["now_ns"]  # the executor sets it at each scan's start
        state.run_task_scan(task, scan["now_ns"])
        assert_values(state.snapshot(), scan["values"], f"scan {number}")


def test_an_if_right_after_a_bool_store_tests_the_stored_value() -> None:
    program, expected = load("tested")
    source = program.python_source
    assert re.search(r"self\.v_ok = (_b\d+) = .*\n\s*if \1:", source)  # kept in a local for the IF
    assert re.search(r"\[_k\d+\] = (_b\d+) = .*\n\s*if \1:", source)  # an element, on the fast path
    assert "if (self.v_ok or self.v_other):" in source
    check_runs(program, expected["runs"])


def test_an_index_guard_lets_and_or_skip_with_the_same_values_and_faults() -> None:
    program, expected = load("guard")
    source = program.python_source
    assert "(self.v_on and (not ((self.v_x > self.v_f[self.v_head]) or" in source
    assert "if 0 <= self.v_head <= 3 else (self.v_on & (not" in source
    assert "if 1 <= self.v_r <= 2 and 1 <= self.v_c <= 2 else" in source
    check_runs(program, expected["runs"])
    # out of bounds: the guard fails, both operands run as before and the index faults at its line
    text = (HERE / "guard.st").read_text()
    for case in expected["out_of_bounds"]:
        faulty = text
        for old, new in case["replace"].items():
            assert old in faulty
            faulty = faulty.replace(old, new)
        check_runs(compile_source(faulty, "guard.st"), [{"cycles": 1, "fault": case["fault"]}])


def test_min_max_of_pure_reads_read_them_again_with_the_same_values() -> None:
    """A NaN first wins, a NaN second loses (the values' JSON form gives NaN as null)."""
    program, expected = load("minmax")
    source = program.python_source
    assert "self.v_both = (self.v_n if self.v_m > self.v_n else self.v_m)" in source
    assert re.search(r"\(_e\d+\.v_b if _e\d+\.v_a > _e\d+\.v_b else _e\d+\.v_a\)", source)
    check_runs(program, expected["runs"])
