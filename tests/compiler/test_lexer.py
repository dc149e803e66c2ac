"""The lexer is linear in its input: runs of blanks after an identifier (the CASE-label look-ahead,
error recovery) and deeply nested comments cost no more than ordinary text of the same length.

Costs are compared with compiling an ordinary program of the same size in the same run, so a loaded
machine slows both sides alike; the pathological inputs used to cost seconds to minutes (look-ahead
backtracking) or grew quadratically (nested comments)."""

from __future__ import annotations

import time
from collections.abc import Callable

from plcrun.compiler.api import check_source

N = 100_000


def _costs(first: Callable[[], object], second: Callable[[], object]) -> tuple[float, float]:
    """The best of five runs of each, taken in turns, so that a busy moment of a shared machine
    falls on both and not on one of them."""
    best = [float("inf"), float("inf")]
    for _ in range(5):
        for index, action in enumerate((first, second)):
            start = time.perf_counter()
            action()
            best[index] = min(best[index], time.perf_counter() - start)
    return best[0], best[1]


def _ordinary(size: int) -> str:
    line = "(* an ordinary comment *) // and another\n"
    body = line * (size // len(line))
    return f"PROGRAM p VAR x : INT; END_VAR\n{body}x := 1;\nEND_PROGRAM\n"


def _codes(text: str) -> list[str]:
    diagnostics, _ = check_source(text, "lex.st")
    return [d.code for d in diagnostics if d.is_error]


def _no_slower_than_ordinary(text: str) -> None:
    ordinary = _ordinary(len(text))
    baseline, cost = _costs(lambda: check_source(ordinary, "base.st"), lambda: check_source(text, "lex.st"))
    # quadratic work over N = 100,000 characters would be thousands of times the ordinary text's
    # cost; 10x leaves room for a loaded machine and still catches it
    assert cost < 10 * baseline + 0.05, f"{cost:.3f} s against {baseline:.3f} s for ordinary text"


def test_blanks_after_a_case_label_are_linear() -> None:
    text = (
        "PROGRAM p VAR x : INT; y : INT; END_VAR VAR CONSTANT limit : INT := 3; END_VAR\n"
        f"CASE x OF limit{' ' * N}: y := 1;\n 4, 5 (* c *) : y := 2;\nEND_CASE;\nEND_PROGRAM\n"
    )
    assert _codes(text) == []
    _no_slower_than_ordinary(text)


def test_blanks_after_an_identifier_in_a_broken_case_are_linear() -> None:
    text = (
        f"PROGRAM p VAR x : INT; y : INT; END_VAR\nCASE x OF a{' ' * N}\n 1: y := 1; END_CASE\nEND_PROGRAM\n"
    )
    assert "E0001" in _codes(text)
    _no_slower_than_ordinary(text)


def test_blanks_after_a_syntax_error_are_linear() -> None:
    text = f"PROGRAM p VAR x : INT; END_VAR\nx := := a{' ' * N}b;\nx := 2;\nEND_PROGRAM\n"
    assert _codes(text) == ["E0001"]
    _no_slower_than_ordinary(text)


def test_comments_in_the_label_look_ahead_nest() -> None:
    text = (
        "PROGRAM p VAR x : INT; y : INT; END_VAR VAR CONSTANT c : INT := 3; END_VAR\n"
        "CASE x OF c (* a (* nested *) comment *) // and a line comment\n : y := 1;\nEND_CASE;\nEND_PROGRAM\n"
    )
    assert _codes(text) == []


def test_deeply_nested_comments_are_linear() -> None:
    text = "PROGRAM p VAR x : INT; END_VAR\n" + "(*" * N + "*)" * N + "\nx := 1;\nEND_PROGRAM\n"
    assert _codes(text) == []
    _no_slower_than_ordinary(text)


def test_unclosed_nested_comment_names_the_inner_opener_in_linear_time() -> None:
    text = "PROGRAM p VAR x : INT; END_VAR\n(* outer\n" + "(* " * N + "\nx := 1;\nEND_PROGRAM\n"
    diagnostics, _ = check_source(text, "lex.st")
    first = next(d for d in diagnostics if d.code == "E0002")
    assert (first.pos.line, first.pos.col) == (2, 1)
    assert f"column {3 * N - 2}" in first.hint
    _no_slower_than_ordinary(text)
