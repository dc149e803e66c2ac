"""Legal ST compiles and runs whatever its size; the nesting limit is ours, positioned (E0009).

Each program is generated at a size that used to break the compiler (RecursionError, "internal
compiler error" from Python's parser, 100 indentation levels, 20 nested loops) and its results are
compared with the same computation done in Python."""

from __future__ import annotations

from typing import Any

import pytest
from plcrun.compiler.api import check_source, compile_source
from plcrun.compiler.limits import MAX_NESTING
from plcrun.site import run_cycles


def _run(text: str, cycles: int = 1) -> dict[str, Any]:
    result = run_cycles(compile_source(text, "big.st"), cycles)
    assert result.faults == {}
    values: dict[str, Any] = result.values["p"]
    return values


def _errors(text: str) -> list[tuple[str, int, int]]:
    diagnostics, _ = check_source(text, "big.st")
    return [(d.code, d.pos.line, d.pos.col) for d in diagnostics if d.is_error]


def test_a_sum_of_five_thousand_terms() -> None:
    terms = " + ".join(f"a[{i % 5 + 1}]" for i in range(5_000)) + " - 3"
    text = (
        "PROGRAM p VAR a : ARRAY[1..5] OF DINT := [1, 20, 300, 4000, 50000]; x : DINT; r : LREAL; END_VAR\n"
        f"x := {terms};\nr := {' + '.join(['0.1'] * 3000)};\nEND_PROGRAM\n"
    )
    values = _run(text)
    assert values["x"] == 1000 * 54321 - 3
    expected = 0.0
    for _ in range(3000):
        expected += 0.1  # left to right, like the ST
    assert values["r"] == expected


def test_deep_parentheses_and_right_nested_operands() -> None:
    depth = MAX_NESTING - 10
    nested = "".join(f"({i} + " for i in range(1, depth)) + "x" + ")" * (depth - 1)
    text = (
        "PROGRAM p VAR x : LINT := 5; y : LINT; z : LINT; END_VAR\n"
        f"y := {'(' * 500}x * 2{')' * 500};\nz := {nested};\nEND_PROGRAM\n"
    )
    values = _run(text)
    assert values["y"] == 10
    assert values["z"] == sum(range(1, depth)) + 5


def test_nested_ifs_and_loops_with_exit_continue_and_return() -> None:
    ifs = 98
    loops = 30
    body = "".join("IF b THEN\n" for _ in range(ifs)) + "n := n + 1;\n" + "END_IF;\n" * ifs
    # 30 nested FOR loops of one iteration each; the innermost counts, CONTINUEs once, EXITs its own
    # loop on the second pass of an inner WHILE, and RETURNs from the program when the count is 3.
    inner = (
        "k := 0;\nWHILE TRUE DO\n k := k + 1;\n IF k = 1 THEN CONTINUE; END_IF;\n"
        " m := m + 1;\n IF m = 3 THEN RETURN; END_IF;\n EXIT;\nEND_WHILE;\n"
    )
    nest = "".join(f"FOR i{j} := 1 TO 1 DO\n" for j in range(loops)) + inner + "END_FOR;\n" * loops
    decls = " ".join(f"i{j} : INT;" for j in range(loops))
    text = (
        f"PROGRAM p VAR b : BOOL := TRUE; n : INT; k : INT; m : INT; after : INT; {decls} END_VAR\n"
        f"{body}{nest}after := after + 1;\nEND_PROGRAM\n"
    )
    values = _run(text, cycles=4)
    assert values["n"] == 4
    assert values["m"] == 4  # cycle 3 returned before `after`; cycle 4 went on
    assert values["after"] == 3
    assert values["i0"] == 2 and values[f"i{loops - 1}"] == 2


def test_deep_loops_in_a_function_share_its_locals() -> None:
    loops = 25
    nest = "".join(f"FOR i{j} := 1 TO hi DO\n" for j in range(loops))
    nest += "acc := acc + 1;\nIF acc = limit THEN deep := acc * 10; RETURN; END_IF;\n" + "END_FOR;\n" * loops
    decls = " ".join(f"i{j} : INT;" for j in range(loops))
    text = (
        f"FUNCTION deep : DINT VAR_INPUT hi : INT; limit : DINT; END_VAR VAR acc : DINT; {decls} END_VAR\n"
        f"deep := -acc;\n{nest}deep := deep - acc;\nEND_FUNCTION\n"
        "PROGRAM p VAR x : DINT; y : DINT; END_VAR\n"
        "x := deep(hi := 2, limit := 1000);\ny := deep(hi := 1, limit := 0);\nEND_PROGRAM\n"
    )
    values = _run(text)
    assert values["x"] == 10_000  # returned from 25 loops deep
    assert values["y"] == -1  # one pass through every loop, then the end of the function


@pytest.mark.parametrize("branches", [991, 2_500])
def test_case_with_thousands_of_branches(branches: int) -> None:
    elements = "".join(f"{k * 3}: y := {k};\n" for k in range(branches))
    elements += f"{branches * 3 + 10}..{branches * 3 + 20}, {branches * 3 + 1}: y := -2;\n"
    text = (
        "PROGRAM p VAR x : DINT := -3; y : DINT; log : ARRAY[1..6] OF DINT; n : INT; END_VAR\n"
        f"n := n + 1;\nCASE x OF\n{elements}ELSE y := -1;\nEND_CASE;\nlog[n] := y;\n"
        f"CASE n OF 1: x := 0; 2: x := {(branches - 1) * 3}; 3: x := 4; 4: x := {branches * 3 + 15};"
        f" 5: x := {branches * 3 + 1}; END_CASE;\nEND_PROGRAM\n"
    )
    values = _run(text, cycles=6)
    assert values["log"] == [-1, 0, branches - 1, -1, -2, -2]


def test_if_with_thousands_of_elsif_branches() -> None:
    count = 2_000
    chain = "IF x = 0 THEN y := 0;\n" + "".join(
        f"ELSIF x = {k} THEN y := {k * 2};\n" for k in range(1, count)
    )
    text = (
        "PROGRAM p VAR x : INT; y : INT; log : ARRAY[1..3] OF INT; n : INT; END_VAR\n"
        f"n := n + 1;\n{chain}ELSE y := -1;\nEND_IF;\nlog[n] := y;\n"
        f"x := SEL(n = 1, {count + 5}, {count - 1});\nEND_PROGRAM\n"
    )
    values = _run(text, cycles=3)
    assert values["log"] == [0, (count - 1) * 2, -1]


def test_huge_literals_are_diagnostics() -> None:
    digits = "1" * 4_400
    text = (
        f"PROGRAM p VAR x : LINT; r : LREAL; t : TIME; END_VAR\nx := {digits};\n"
        f"x := 18446744073709551616;\nr := 1.0E999;\nt := T#{'9' * 5_000}s;\n"
        f"x := 16#{'F' * 17};\nEND_PROGRAM\n"
    )
    assert _errors(text) == [
        ("E0005", 2, 6),
        ("E0005", 3, 6),
        ("E0005", 4, 6),
        ("E0005", 5, 6),
        ("E0005", 6, 6),
    ]
    ok = "PROGRAM p VAR x : ULINT; y : LINT; END_VAR\nx := 18446744073709551615;\ny := -9223372036854775808;\nEND_PROGRAM\n"
    values = _run(ok)
    assert (values["x"], values["y"]) == (2**64 - 1, -(2**63))


def test_nesting_past_the_limit_is_e0009_at_the_construct() -> None:
    deep_expr = "x := " + "-(" * (MAX_NESTING + 5) + "1" + ")" * (MAX_NESTING + 5) + ";\n"
    deep_ifs = "IF TRUE THEN\n" * (MAX_NESTING + 1) + "x := 1;\n" + "END_IF;\n" * (MAX_NESTING + 1)
    text = f"PROGRAM p VAR x : INT; END_VAR\n{deep_expr}{deep_ifs}END_PROGRAM\n"
    errors = _errors(text)
    # reported once per POU, at the first construct past the limit: the 199th "(" of the chain
    assert errors == [("E0009", 2, 5 + 2 * (MAX_NESTING - 1))]
    diagnostics, sources = check_source(text, "big.st")
    rendered = diagnostics[0].render(sources["big.st"])
    assert f"nested more than {MAX_NESTING} levels deep" in rendered
    deep_init = f"PROGRAM p VAR a : ARRAY[1..2] OF INT := {'[' * (MAX_NESTING + 2)}1{']' * (MAX_NESTING + 2)}; END_VAR END_PROGRAM"
    assert [e[0] for e in _errors(deep_init)] == ["E0009"]


def test_declarations_and_configurations_are_bounded_too() -> None:
    deep = "-(" * 3_000 + "1" + ")" * 3_000
    chain = " + ".join(["1"] * 2_000)
    cases = [
        f"CONFIGURATION c TASK t(INTERVAL := T#10ms, PRIORITY := {deep}); PROGRAM i WITH t : p;"
        " END_CONFIGURATION PROGRAM p END_PROGRAM",
        f"TYPE E : (A := {deep}, B); END_TYPE PROGRAM p END_PROGRAM",
        f"TYPE S : STRUCT a : INT := {deep}; END_STRUCT; END_TYPE PROGRAM p END_PROGRAM",
        f"PROGRAM p VAR a : ARRAY[1..2] OF INT := [{deep}, 2]; END_VAR END_PROGRAM",
    ]
    for text in cases:
        assert [e[0] for e in _errors(text)] == ["E0009"], text[:60]
    # a long chain is not deep: it initialises, and the program runs
    values = _run(f"PROGRAM p VAR x : DINT := {chain}; END_VAR x := x + 1; END_PROGRAM")
    assert values["x"] == 2_001
