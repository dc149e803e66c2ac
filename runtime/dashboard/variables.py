"""The program's variables as a lazily expanded tree for the dashboard's watch.

Paths are the executor's (``main.evs[3].soc_pct``, ``cfg.limit_w``; located addresses such as
``%IX0.0`` resolve to the variable they locate). A node is resolved from the compiled program's
declarations alone; values are read through ``ProgramState.accessor``, only for the nodes a request
shows, so a 1,000-EV program is never walked leaf by leaf. Structures, arrays and FB instances
report how many children they have; their children are listed page by page on request.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..compiler import st_types as T
from ..state.program import CompiledProgram, PathError, ProgramState, to_json

_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[([-0-9, ]+)\]")
HIDDEN_SECTIONS = ("VAR_TEMP", "VAR_EXTERNAL", "VAR_IN_OUT")
QUALITY_NAMES = ("GOOD", "STALE", "BAD", "COMM_LOST", "UNBOUND")
SEARCH_DEPTH = 8


@dataclass(frozen=True)
class Node:
    """One resolved path: a root (program instance or the globals) or a variable/element."""

    path: str  # canonical: lower-case names, indices without spaces
    name: str  # the last step as shown in the tree: "soc_pct", "[3]", "main"
    type: T.Type | None  # None for a root
    var: T.VarInfo | None  # the declaration the path ends in (an element: its array's)
    root_members: dict[str, T.VarInfo] | None = None  # a root's variables
    root_kind: str = ""  # "program" or "globals"

    @property
    def elementary(self) -> bool:
        if self.type is None:
            return False
        return T.is_elementary(self.type) or isinstance(T.underlying(self.type), T.EnumType)


def quality_name(value: int) -> str:
    return QUALITY_NAMES[value] if 0 <= value < len(QUALITY_NAMES) else str(value)


def _roots(program: CompiledProgram) -> dict[str, tuple[str, dict[str, T.VarInfo]]]:
    roots: dict[str, tuple[str, dict[str, T.VarInfo]]] = {}
    for inst in program.instances:
        roots[inst.name.lower()] = ("program", inst.pou.variables)
    if program.model.globals:
        roots[program.model.globals_name.lower()] = ("globals", program.model.globals)
    return roots


def members_of(t: T.Type) -> dict[str, T.VarInfo]:
    """The visible members of a structure or FB type (empty for anything else)."""
    u = T.underlying(t)
    if isinstance(u, T.StructType):
        return u.fields
    if isinstance(u, T.PouType):
        return {k: v for k, v in u.variables.items() if v.section not in HIDDEN_SECTIONS}
    return {}


def resolve(program: CompiledProgram, path: str) -> Node:
    """The node of ``path`` (any case, spaces in indices allowed); ``PathError`` if there is none."""
    text = path.strip()
    if not text:
        raise PathError("empty variable path")
    if text.startswith("%"):
        located = program.located.get(text.upper())
        if located is None:
            raise PathError(f"no variable is located at {text}")
        text = located
    matches = list(_STEP.finditer(text))
    if not matches or "".join(m.group(0) for m in matches) != text or matches[0].group(1) is None:
        raise PathError(f"malformed variable path '{path}'")
    head = matches[0].group(1).lower()
    roots = _roots(program)
    if head not in roots:
        raise PathError(f"no program instance or configuration named '{matches[0].group(1)}'")
    kind, members = roots[head]
    if len(matches) == 1:
        return Node(head, head, None, None, members, kind)
    canonical = head
    current: T.Type | None = None
    var: T.VarInfo | None = None
    name = head
    for match in matches[1:]:
        member, index = match.group(1), match.group(2)
        if member is not None:
            scope = members if current is None else members_of(current)
            found = scope.get(member.upper())
            if found is None or found.section in HIDDEN_SECTIONS:
                if current is not None and not scope:
                    raise PathError(f"'{path}': {current.display} has no members")
                raise PathError(f"'{path}': no variable '{member}'")
            var, current = found, found.type
            name = found.name.lower()
            canonical += "." + name
        else:
            array = T.underlying(current) if current is not None else None
            if not isinstance(array, T.ArrayType):
                raise PathError(f"'{path}': not an array")
            try:
                numbers = [int(p) for p in index.split(",")]
            except ValueError:
                raise PathError(f"'{path}': malformed index [{index}]") from None
            if len(numbers) != len(array.dims):
                raise PathError(f"'{path}': needs {len(array.dims)} indices")
            for number, (low, high) in zip(numbers, array.dims, strict=True):
                if not low <= number <= high:
                    raise PathError(f"'{path}': index {number} is outside {low}..{high}")
            name = "[" + ",".join(map(str, numbers)) + "]"
            canonical += name
            current = array.element
    return Node(canonical, name, current, var)


def kind_of(node: Node) -> str:
    if node.type is None:
        return node.root_kind
    u = T.underlying(node.type)
    if isinstance(u, T.ArrayType):
        return "array"
    if isinstance(u, T.StructType):
        return "struct"
    if isinstance(u, T.PouType):
        return "fb"
    if isinstance(u, T.EnumType):
        return "enum"
    return "elementary"


def child_count(node: Node) -> int:
    if node.root_members is not None:
        return sum(1 for v in node.root_members.values() if v.section not in HIDDEN_SECTIONS)
    if node.type is None:
        return 0
    u = T.underlying(node.type)
    if isinstance(u, T.ArrayType):
        return u.size
    return len(members_of(u))


def _child_paths(node: Node) -> Iterator[str]:
    """Paths of the children, in declaration (or index) order."""
    if node.root_members is not None:
        for var in node.root_members.values():
            if var.section not in HIDDEN_SECTIONS:
                yield f"{node.path}.{var.name.lower()}"
        return
    if node.type is None:
        return
    u = T.underlying(node.type)
    if isinstance(u, T.ArrayType):
        for index in itertools.product(*(range(lo, hi + 1) for lo, hi in u.dims)):
            yield f"{node.path}[{','.join(map(str, index))}]"
        return
    for var in members_of(u).values():
        yield f"{node.path}.{var.name.lower()}"


def type_name(node: Node) -> str:
    if node.type is None:
        return "PROGRAM" if node.root_kind == "program" else "VAR_GLOBAL"
    return node.type.display


class VariableReader:
    """Describes nodes with their current values; call it on any thread (reads are not atomic
    across variables, each single value is)."""

    def __init__(
        self, program: CompiledProgram, state: ProgramState, forces: dict[str, Any], now_ns: int
    ) -> None:
        self.program = program
        self.now_ns = now_ns
        self.state = state
        self.qualities = dict(state.rt.qualities)  # one copy per request: the scan thread updates it
        self.stamps = dict(state.rt.stamps)
        self.forces = {_canonical_or_same(program, p): v for p, v in forces.items()}

    def describe(self, node: Node, with_value: bool = True) -> dict[str, Any]:
        var = node.var
        out: dict[str, Any] = {
            "path": node.path,
            "name": node.name,
            "type": type_name(node),
            "kind": kind_of(node),
            "children": child_count(node),
            "section": var.section if var is not None else None,
            "constant": bool(var is not None and var.constant),
            "retain": bool(var is not None and var.retain),
            "location": var.location if var is not None and not node.name.startswith("[") else None,
            "writable": node.elementary and not (var is not None and var.constant),
        }
        if node.elementary and node.type is not None:
            accessor = self.state.accessor(node.path)
            if with_value:
                out["value"] = to_json(accessor.get(), node.type)
            forced = node.path in self.forces
            out["forced"] = forced
            if forced:
                out["forced_value"] = to_json(self.forces[node.path], node.type)
            quality = self.qualities.get(node.path)
            out["quality"] = None if quality is None else quality_name(quality)
            stamp = self.stamps.get(node.path)
            out["age_s"] = None if stamp is None else (self.now_ns - stamp) / 1e9
        return out

    def children(self, node: Node, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        total = child_count(node)
        page = itertools.islice(_child_paths(node), offset, offset + limit)
        return total, [self.describe(resolve(self.program, path)) for path in page]

    def roots(self) -> list[dict[str, Any]]:
        out = []
        for name, (kind, members) in _roots(self.program).items():
            out.append(self.describe(Node(name, name, None, None, members, kind)))
        return out

    def value_of(self, node: Node) -> Any:
        """The JSON value of any node that is not a root (a structure as an object)."""
        if node.type is None:
            raise PathError(f"'{node.path}' is a program instance; expand it instead")
        accessor = self.state.accessor(node.path)
        return to_json(accessor.get(), node.type)


def leaf_count(t: T.Type) -> int:
    """How many elementary values a value of ``t`` holds (to refuse reading huge structures)."""
    u = T.underlying(t)
    if isinstance(u, T.ArrayType):
        return u.size * leaf_count(u.element)
    members = members_of(u)
    if members:
        return sum(leaf_count(v.type) for v in members.values())
    return 1


def search(program: CompiledProgram, query: str, limit: int) -> tuple[list[tuple[str, list[str]]], bool]:
    """Paths whose text contains ``query`` (case-insensitive), walking declarations without
    expanding arrays: an array of structures whose element members match is one hit, with the
    matching member paths relative to an element (``["soc_pct", "soc_age"]``); expand the array to
    reach them. An exact path comes first. Returns ([(path, element matches)], truncated)."""
    needle = query.strip().lower()
    found: dict[str, list[str]] = {}
    if needle:
        with contextlib.suppress(PathError):
            found[resolve(program, needle).path] = []
        for path in _completions(program, needle):
            found.setdefault(path, [])
    for path, inner in _declared_paths(program):
        if needle in path or (inner is not None and needle in inner):
            hits = found.setdefault(path, [])
            if inner is not None and needle in inner and inner not in hits:
                hits.append(inner)
            if len(found) > limit:
                return list(found.items())[:limit], True
    return list(found.items()), False


def _completions(program: CompiledProgram, text: str) -> list[str]:
    """Members of the structure before the last dot whose names start with what follows it
    (``main.evs[2].so`` -> ``main.evs[2].soc_pct``, ...)."""
    parent, dot, partial = text.rpartition(".")
    if not dot:
        return []
    try:
        node = resolve(program, parent)
    except PathError:
        return []
    if node.type is not None and isinstance(T.underlying(node.type), T.ArrayType):
        return []
    return [p for p in _child_paths(node) if p.rpartition(".")[2].startswith(partial)]


def _declared_paths(program: CompiledProgram) -> Iterator[tuple[str, str | None]]:
    """(path, None) for every declared variable and member outside arrays; (array path, member
    path inside an element such as ``"[i].soc_pct"``) for members of array elements."""

    def walk(
        prefix: str, members: dict[str, T.VarInfo], depth: int, array: str | None
    ) -> Iterator[tuple[str, str | None]]:
        for var in members.values():
            if var.section in HIDDEN_SECTIONS:
                continue
            path = f"{prefix}.{var.name.lower()}"
            yield (path, None) if array is None else (array, path)
            u = T.underlying(var.type)
            is_array = isinstance(u, T.ArrayType)
            inner = members_of(u.element) if isinstance(u, T.ArrayType) else members_of(u)
            if not inner or depth >= SEARCH_DEPTH:
                continue
            if array is None and is_array:
                yield from walk("[i]", inner, depth + 1, path)
            else:
                yield from walk(path + ("[j]" if is_array else ""), inner, depth + 1, array)

    for name, (_, members) in _roots(program).items():
        yield name, None
        yield from walk(name, members, 1, None)


def _canonical_or_same(program: CompiledProgram, path: str) -> str:
    try:
        return resolve(program, path).path
    except PathError:
        return path


def canonical(program: CompiledProgram, path: str) -> str:
    return _canonical_or_same(program, path)
