"""Whole-program rules checked after every body: no recursion through any cycle of calls, and
every ``{attribute 'safe' := '...'}`` value is a constant of its variable's type."""

from __future__ import annotations

from typing import Any

from . import st_types as T
from .declarations import Declarations
from .diagnostics import DiagnosticBag


def report_recursion(
    pous: dict[str, T.PouType],
    call_sites: dict[str, list[tuple[T.PouType, Any]]],
    main_file: str,
    diag: DiagnosticBag,
) -> None:
    """IEC 61131-3 forbids recursion: report each cycle of calls (functions calling functions,
    function blocks calling instances, through any number of POUs) once, naming it, at the call
    that closes it in the earliest POU of the cycle."""
    graph = {key: [callee.name.upper() for callee, _ in sites] for key, sites in call_sites.items()}
    for cycle in _cycles(graph):
        first = min(cycle, key=lambda k: (pous[k].decl.pos.file != main_file, _order(pous[k])))
        at = cycle.index(first)
        path = cycle[at:] + cycle[:at] + [first]
        callee = path[1]
        pos = next(p for c, p in call_sites[first] if c.name.upper() == callee)
        names = " -> ".join(pous[k].name for k in path)
        diag.error(
            "E0110",
            f"recursive calls: {names}; IEC 61131-3 does not allow recursion",
            pos,
            "rewrite the recursion as a loop, or keep state in a function block called once per scan",
        )


def _order(pou: T.PouType) -> tuple[int, int]:
    return (pou.decl.pos.line, pou.decl.pos.col)


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One elementary cycle (as a path of POU keys) per strongly connected component that has one;
    iterative (Tarjan's algorithm), deterministic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph.get(root, [])))]
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, []):
                    components.append(component)
    return [_cycle_in(sorted(c), graph) for c in components]


def _cycle_in(members: list[str], graph: dict[str, list[str]]) -> list[str]:
    """A simple cycle through the first member, staying inside the component (breadth-first)."""
    inside = set(members)
    start = members[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in graph.get(node, []):
                if child not in inside:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return path[::-1]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    return [start]


def check_safe_values(decls: Declarations, diag: DiagnosticBag) -> None:
    """The executor drives an output to its safe value on a fault, so the value must be valid for
    the variable at compile time, not discovered wrong at the first fault."""
    variables = list(decls.globals.values())
    for pou in decls.pous.values():
        if not pou.library:
            variables += list(pou.variables.values())
    for var in variables:
        if "safe" not in var.attributes:
            continue
        text = (var.attributes["safe"] or "").strip()
        for leaf in _leaf_types(var.type):
            problem = _safe_problem(text, leaf)
            if problem is not None:
                diag.error(
                    "E0201",
                    f"safe value '{text}' of '{var.name}' {problem}",
                    var.pos,
                    f"write a constant of {leaf.display}, e.g. {{attribute 'safe' := '{_example(leaf)}'}}",
                )
                break


def _leaf_types(t: T.Type) -> list[T.Type]:
    u = T.underlying(t)
    if isinstance(u, T.ArrayType):
        return _leaf_types(u.element)
    if isinstance(u, T.StructType):
        return [leaf for f in u.fields.values() for leaf in _leaf_types(f.type)]
    if isinstance(u, T.PouType):
        return []
    return [t]


def _number(text: str) -> int | float | None:
    try:
        return int(text) if len(text) <= 40 else None
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _safe_problem(text: str, t: T.Type) -> str | None:
    """Why ``text`` cannot be the safe value of a ``t`` (None when it can). The executor reads the
    text as TRUE/FALSE, then an integer, then a REAL, else a string."""
    u = T.underlying(t)
    if isinstance(u, T.ErrorType):
        return None
    if T.is_string(u):
        return None
    if T.is_bool(u):
        return None if text.upper() in ("TRUE", "FALSE", "0", "1") else "is not BOOL (TRUE or FALSE)"
    value = _number(text)
    if T.is_real_like(u):
        return None if value is not None else f"is not a number ({t.display})"
    if not isinstance(value, int):
        return f"is not an integer ({t.display})"
    if isinstance(u, T.EnumType):
        return None if value in u.values.values() else f"is not a value of {t.display}"
    rng = T.int_range(t)
    if rng is not None and not rng[0] <= value <= rng[1]:
        return f"does not fit in {t.display} ({rng[0]}..{rng[1]})"
    return None


def _example(t: T.Type) -> str:
    u = T.underlying(t)
    if T.is_bool(u):
        return "FALSE"
    if T.is_real_like(u):
        return "0.0"
    if isinstance(u, T.EnumType):
        return str(next(iter(u.values.values()), 0))
    return "0"
