"""Property tests: whatever the input, the compiler answers with diagnostics, never a Python
exception; identifiers, strings and pragmas never reach Python."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plcrun.compiler.api import check_source, compile_source
from plcrun.compiler.diagnostics import CompileError
from plcrun.executor.config import ExecutorConfig
from plcrun.executor.engine import NothingToRun
from plcrun.site import run_cycles

CONFORMANCE = sorted((Path(__file__).parent / "conformance").glob("*.st"))
SOURCES = [p.read_text() for p in CONFORMANCE]

PYTHON_BUGS = {"TypeError", "AttributeError", "NameError", "KeyError", "UnboundLocalError", "AssertionError"}
TOKENS = (
    "PROGRAM END_PROGRAM FUNCTION_BLOCK END_FUNCTION_BLOCK FUNCTION END_FUNCTION VAR VAR_INPUT END_VAR "
    "IF THEN ELSIF ELSE END_IF CASE OF END_CASE FOR TO BY DO END_FOR WHILE END_WHILE REPEAT UNTIL "
    "END_REPEAT EXIT RETURN TYPE END_TYPE STRUCT END_STRUCT ARRAY AT CONFIGURATION RESOURCE TASK WITH ON "
    "INT REAL BOOL TIME STRING TON x y z main := ; : , . .. ( ) [ ] + - * / ** = <> < >= AND OR NOT MOD "
    "1 0 -7 3.5 16#FF T#10ms INT#5 'a$'b' \"w\" TRUE %IX0.0 (* *) // { } {{ }} ^ => # $ \\ \n"
).split(" ")


def _check_never_crashes(text: str) -> None:
    diagnostics, _ = check_source(text, "fuzz.st")
    for d in diagnostics:
        assert d.pos.line >= 0 and d.code[0] in "EW"
    try:
        program = compile_source(text, "fuzz.st")
    except CompileError as error:
        assert error.diagnostics
        return
    try:  # the executor turns any runtime error into a positioned task fault
        result = run_cycles(program, 2, ExecutorConfig(loop_budget=50_000))
    except NothingToRun:
        return
    for message in result.faults.values():  # ST faults, never a Python error of generated code
        assert "runtime fault: " in message
        assert message.split("runtime fault: ", 1)[1].split(":")[0] not in PYTHON_BUGS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup_only_gives_diagnostics(text: str) -> None:
    _check_never_crashes(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_only_gives_diagnostics(text: str) -> None:
    _check_never_crashes(text)


@st.composite
def mutated_programs(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "replace"]))
        span = draw(st.integers(1, 12))
        piece = draw(st.sampled_from(TOKENS))
        if kind == "delete":
            text = text[:at] + text[at + span :]
        elif kind == "insert":
            text = text[:at] + " " + piece + " " + text[at:]
        else:
            text = text[:at] + piece + text[at + span :]
    return text


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_programs())
def test_mutated_programs_only_give_diagnostics(text: str) -> None:
    _check_never_crashes(text)


PYTHON_NAMES = sorted(
    {k for k in keyword.kwlist if k.isidentifier()}
    | {"open", "exec", "eval", "compile", "os", "sys", "self", "print", "globals", "locals", "getattr"}
    | {"__import__", "__builtins__", "__class__", "_G", "_rt", "_f32", "r_", "v_x", "S_POINT", "_range"}
)
ST_RESERVED = {"AND", "OR", "NOT", "FOR", "IF", "ELSE", "WHILE", "RETURN", "CONTINUE", "FALSE", "TRUE", "IN"}
IEC_IDENTIFIER = re.compile(r"(?:[A-Za-z]|_[A-Za-z0-9])(?:_?[A-Za-z0-9])*\Z")


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([n for n in PYTHON_NAMES if n.upper() not in ST_RESERVED and IEC_IDENTIFIER.match(n)]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)
def test_identifiers_and_strings_stay_data(name: str, payload: str) -> None:
    quoted = "'" + payload.replace("$", "$$").replace("'", "$'") + "'"
    source = (
        f"PROGRAM prog\nVAR\n  {name} : INT := 7;\n"
        f"  {{attribute 'safe' := 'x\"); import os; (\"'}}\n  s : STRING(100) := {quoted};\n"
        f"  copy : STRING(100);\nEND_VAR\n{{ import os }}\n"
        f"{name} := {name} + 1;\ncopy := s;\nEND_PROGRAM\n"
    )
    program = compile_source(source, "inject.st")
    assert any(d.code == "W0001" for d in program.diagnostics)  # the pragma is skipped, not run
    values = run_cycles(program, 1).values["prog"]
    assert values[name] == 8
    assert values["copy"] == payload
    assert set(program.new_state().namespace["__builtins__"]) == {"__build_class__"}


def test_python_dunder_names_are_not_st_identifiers() -> None:
    for name in sorted(n for n in PYTHON_NAMES if not IEC_IDENTIFIER.match(n)):
        source = f"PROGRAM p VAR {name} : INT; END_VAR {name} := 1; END_PROGRAM"
        diagnostics, _ = check_source(source, "dunder.st")
        assert {d.code for d in diagnostics if d.is_error} == {"E0010"}, name


def test_c_code_in_pragmas_is_refused() -> None:
    source = "PROGRAM p VAR x : INT; END_VAR { import os; os.system('boom') } x := 1; END_PROGRAM"
    diagnostics, _ = check_source(source, "c.st")
    assert [d.code for d in diagnostics if d.is_error] == ["E0006"]


def test_generated_code_has_no_builtins() -> None:
    program = compile_source("PROGRAM p VAR x : INT; END_VAR x := 1; END_PROGRAM", "p.st")
    state = program.new_state()
    namespace = state.namespace
    for forbidden in ("open", "__import__", "eval", "exec", "getattr", "globals"):
        assert forbidden not in namespace["__builtins__"]
        assert forbidden not in namespace
