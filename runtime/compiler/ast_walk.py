"""Generic traversal of the ST AST: ``walk`` (every node below one, iteratively) and ``NodeVisitor``
(a method per node class, ``generic_visit`` for the rest).

Both rely on ``Node.children()`` only, so a new kind of node needs its ``children()`` and nothing
here. ``walk`` keeps its own stack: a sum of 10,000 terms is a tree 10,000 levels deep, which must
not meet Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from . import st_ast as A


def walk(nodes: A.Node | Iterable[A.Node]) -> Iterator[A.Node]:
    """Every node of ``nodes`` and below, pre-order, in source order."""
    stack: list[A.Node] = [nodes] if isinstance(nodes, A.Node) else list(nodes)[::-1]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def walk_with_depth(nodes: Iterable[A.Node]) -> Iterator[tuple[A.Node, int]]:
    """Like ``walk``, with each node's nesting depth (see ``nesting_step``)."""
    stack: list[tuple[A.Node, int]] = [(n, 1) for n in reversed(list(nodes))]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        for child in reversed(node.children()):
            stack.append((child, depth + nesting_step(node, child)))


def nesting_step(parent: A.Node, child: A.Node) -> int:
    """How much deeper ``child`` is nested than ``parent``, as a reader counts it: the left operand
    of a chain ``a + b - c ...`` and the inside of redundant parentheses are not deeper."""
    if isinstance(parent, A.Binary) and child is parent.left:
        return 0
    if isinstance(parent, A.Paren | A.Arg | A.CallStmt | A.CaseRange):
        return 0
    return 1


class NodeVisitor:
    """Calls ``visit_<ClassName>(node, *args)`` for a node, or ``generic_visit`` when there is none.

    ``generic_visit`` visits the children; a subclass overrides the methods of the nodes it cares
    about (calling ``generic_visit`` itself to go on below them). Results are returned, so a visitor
    can also compute (the checker returns types, the code generator code)."""

    _methods: ClassVar[dict[tuple[type, type], Any]] = {}

    def visit(self, node: A.Node, *args: Any) -> Any:
        key = (type(self), type(node))
        method = NodeVisitor._methods.get(key)
        if method is None:
            method = getattr(type(self), "visit_" + type(node).__name__, None) or type(self).generic_visit
            NodeVisitor._methods[key] = method
        return method(self, node, *args)

    def generic_visit(self, node: A.Node, *args: Any) -> Any:
        for child in node.children():
            self.visit(child, *args)
        return None
