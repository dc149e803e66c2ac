"""A proved FOR loop reads a structure element into a local only when one pass through the body can
reach it twice or more (a nested loop counts as more); an element reached once on each path is
indexed where it is used. Values: ``conformance/element_reads.st`` (the same with 8d7aa93's
compiler, which always used a local). Here: which code the generator chose, and that a loop whose
indices may leave the array still faults at the ST line of the index."""

from __future__ import annotations

import re
from pathlib import Path

from plcrun.compiler.api import compile_file, compile_source
from plcrun.site import run_cycles

HERE = Path(__file__).parent / "conformance"
FETCH = re.compile(r"^ +(_e\d+) = _m\d+\[_k\d+\]$", re.M)


def _fast_loops(source: str) -> list[str]:
    """The fast copy of each proved FOR loop over ``a`` of P_ELEMENT_READS, in order."""
    body = source[source.index("class P_ELEMENT_READS:") :]
    return re.findall(r"if _last\d+ <= 6:\n(.*?)\n        else:", body, re.S)


def test_an_element_gets_a_local_only_when_a_pass_reaches_it_twice() -> None:
    loops = _fast_loops(compile_file(HERE / "element_reads.st").python_source)
    assert len(loops) == 4
    one_store, one_per_path, store_then_read, nested = loops
    assert not FETCH.search(one_store)
    assert not FETCH.search(one_per_path)
    assert "_m10[_k9].v_v = " in one_per_path and "_m10[_k9].v_w" in one_per_path
    local = FETCH.search(store_then_read)
    assert local is not None  # the read after the store goes through the same element object
    assert f"{local[1]}.v_v = " in store_then_read and f"+ {local[1]}.v_v)" in store_then_read
    local = FETCH.search(nested)
    assert local is not None and f"{local[1]}.v_w" in nested


def test_an_index_outside_the_array_faults_at_its_line() -> None:
    program = compile_source(
        """TYPE Cell : STRUCT v : INT; w : INT; END_STRUCT; END_TYPE
PROGRAM p VAR a : ARRAY[1..6] OF Cell; n : INT := 7; i : INT; flag : BOOL; END_VAR
FOR i := 1 TO n DO
  IF flag THEN
    a[i].v := i;
  ELSE
    a[i].w := i;
  END_IF;
END_FOR;
END_PROGRAM
CONFIGURATION c RESOURCE r ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM main WITH t : p;
END_RESOURCE END_CONFIGURATION
""",
        "one_per_path.st",
    )
    result = run_cycles(program, 1)
    assert len(result.faults) == 1
    fault = next(iter(result.faults.values()))
    assert "one_per_path.st:7" in fault and "index 7 is outside 1..6" in fault, fault
    assert result.values["main"]["a"][5]["w"] == 6  # the elements before the bad index were written
