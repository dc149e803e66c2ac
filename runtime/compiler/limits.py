"""The compiler's own limits, checked right after parsing (before any recursive pass runs).

Size is free: a sum of 100,000 terms, 5,000 ELSIF or CASE branches, a body of 100,000 statements all
compile (the passes treat operator chains and statement lists iteratively, and code generation keeps
Python's parser and compiler within their limits). Nesting is what costs recursion, so nesting is
what we bound, at a depth no readable program reaches: ``MAX_NESTING`` levels of statements inside
statements, operands inside parentheses, arguments inside calls, indices inside indices, counted
together. Deeper code gets E0009 at the first construct past the limit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import st_ast as A
from .ast_walk import nesting_step, walk_with_depth
from .diagnostics import DiagnosticBag

MAX_NESTING = 200

# The recursive passes (checker, constant folding, code generation) use at most about eight Python
# frames per nesting level; this much recursion room is made while compiling.
RECURSION_ROOM = 8 * MAX_NESTING + 2_000


def check_nesting(unit: A.CompilationUnit, diag: DiagnosticBag) -> bool:
    """Report (once per POU or declaration) nesting past ``MAX_NESTING``; True when all is within."""
    ok = True
    for pou in unit.pous:
        for node, depth in walk_with_depth(pou.body):
            if depth > MAX_NESTING:
                _report(diag, node.pos)
                ok = False
                break
    for decl in _declarations(unit):
        pos = _too_deep_declaration(decl)
        if pos is not None:
            _report(diag, pos)
            ok = False
    return ok


def _report(diag: DiagnosticBag, pos: Any) -> None:
    diag.error(
        "E0009",
        f"nested more than {MAX_NESTING} levels deep",
        pos,
        "move the inner part into a FUNCTION, or use a variable for an intermediate result",
    )


def _declarations(unit: A.CompilationUnit) -> Iterator[Any]:
    for pou in unit.pous:
        for block in pou.var_blocks:
            yield from block.decls
    for block in unit.global_blocks:
        yield from block.decls
    for config in unit.configurations:
        for block in config.var_blocks:
            yield from block.decls
        for resource in config.resources:
            for block in resource.var_blocks:
                yield from block.decls
            yield from resource.tasks
            yield from resource.programs
    yield from unit.types


def _too_deep_declaration(decl: Any) -> Any:
    """Position of the first part of a declaration (type, initial value, task parameter) nested too
    deeply, or None."""
    stack: list[tuple[Any, int]] = [(decl, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            return getattr(item, "pos", None) or decl.pos
        for part in _parts(item):
            step = nesting_step(item, part) if isinstance(item, A.Node) else 1
            stack.append((part, depth + step))
    return None


def _parts(item: Any) -> list[Any]:
    if isinstance(item, A.VarDecl | A.TypeDecl):
        return [p for p in (item.type_ref, item.init) if p is not None]
    if isinstance(item, A.ArrayTypeRef):
        return [item.element, *(e for r in item.ranges for e in r)]
    if isinstance(item, A.StructTypeRef):
        return list(item.fields)
    if isinstance(item, A.TaskDecl):
        return [expr for _, expr in item.params.values()]
    if isinstance(item, A.ProgramConfig):
        return list(item.args)
    if isinstance(item, A.EnumTypeRef):
        return [value for _, _, value in item.values if value is not None]
    if isinstance(item, A.StringTypeRef | A.SubrangeTypeRef):
        return [e for e in (getattr(item, "length", None), getattr(item, "low", None)) if e is not None]
    if isinstance(item, A.ArrayInit):
        return list(item.elements)
    if isinstance(item, A.RepeatedInit):
        return [item.value] if item.value is not None else []
    if isinstance(item, A.StructInit):
        return [value for _, _, value in item.fields]
    if isinstance(item, A.Node):
        return list(item.children())
    return []


_room_lock = threading.Lock()
_room_users = 0
_saved_limit = 0


@contextmanager
def recursion_room() -> Iterator[None]:
    """Raise Python's recursion limit to ``RECURSION_ROOM`` while compiling (restored afterwards;
    compilations on several threads share one raise)."""
    global _room_users, _saved_limit
    with _room_lock:
        if _room_users == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_saved_limit, RECURSION_ROOM))
        _room_users += 1
    try:
        yield
    finally:
        with _room_lock:
            _room_users -= 1
            if _room_users == 0:
                sys.setrecursionlimit(_saved_limit)
