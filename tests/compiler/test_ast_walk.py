"""The AST's generic traversal: ``children()`` of every node reaches every syntactic sub-node (checked
against a reflective walk over the dataclass fields), ``walk`` needs no recursion, and a
``NodeVisitor`` subclass sees exactly the nodes it asks for."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from plcrun.compiler import st_ast as A
from plcrun.compiler.ast_walk import NodeVisitor, walk
from plcrun.compiler.diagnostics import DiagnosticBag
from plcrun.compiler.parser import parse_source

ROOT = Path(__file__).parents[2]
SOURCES = sorted((ROOT / "tests" / "compiler" / "conformance").glob("*.st")) + sorted(
    (ROOT / "stdlib").glob("*.st")
)
# Fields filled in by the checker: facts about a node, not parts of it.
FACTS = {"ty", "ref", "bound", "desugared", "io_target", "label_values"}


def _reflective(value: Any, out: list[A.Node]) -> None:
    """Every node in ``value`` found by looking at all dataclass fields (the slow, obvious way)."""
    if isinstance(value, A.Node):
        out.append(value)
        for f in dataclasses.fields(value):  # type: ignore[arg-type]
            if f.name not in FACTS:
                _reflective(getattr(value, f.name), out)
    elif isinstance(value, list | tuple):
        for item in value:
            _reflective(item, out)


def _bodies(path: Path) -> list[A.Pou]:
    unit = parse_source(path.read_text(), path.name, DiagnosticBag())
    return unit.pous


def test_children_reach_every_node_of_every_shipped_body() -> None:
    checked = 0
    for path in SOURCES:
        for pou in _bodies(path):
            expected: list[A.Node] = []
            _reflective(pou.body, expected)
            walked = list(walk(pou.body))
            assert [id(n) for n in walked] == [id(n) for n in expected], f"{path.name}: {pou.name}"
            checked += len(walked)
    assert checked > 4_000


def test_walk_needs_no_recursion_for_a_sum_of_ten_thousand_terms() -> None:
    terms = " + ".join(f"x{i % 7}" for i in range(10_000))
    text = f"PROGRAM p VAR x0, x1, x2, x3, x4, x5, x6, y : LREAL; END_VAR y := {terms}; END_PROGRAM"
    unit = parse_source(text, "sum.st", DiagnosticBag())
    names = [n for n in walk(unit.pous[0].body) if isinstance(n, A.Name)]
    assert len(names) == 10_001  # y and every term, in source order
    assert [n.name for n in names[1:8]] == [f"x{i}" for i in range(7)]


class _CountLoops(NodeVisitor):
    def __init__(self) -> None:
        self.loops = 0
        self.deepest = 0
        self.depth = 0

    def visit_While(self, node: A.While) -> None:
        self.loops += 1
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        self.generic_visit(node)
        self.depth -= 1

    visit_For = visit_While
    visit_Repeat = visit_While


def test_a_visitor_overrides_only_what_it_needs() -> None:
    text = (
        "PROGRAM p VAR i, j : INT; b : BOOL; END_VAR\n"
        "FOR i := 1 TO 3 DO IF b THEN WHILE b DO b := FALSE; END_WHILE; END_IF; END_FOR;\n"
        "CASE i OF 1: REPEAT j := j + 1; UNTIL j > 3 END_REPEAT; END_CASE;\nEND_PROGRAM\n"
    )
    unit = parse_source(text, "v.st", DiagnosticBag())
    counter = _CountLoops()
    counter.visit(unit.pous[0])
    assert (counter.loops, counter.deepest) == (3, 2)
