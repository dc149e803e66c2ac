"""What the checker produces: resolved references on the AST and the checked program model."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import st_types as T
from .diagnostics import Pos


@dataclass
class VarRef:
    """A name that denotes a variable. ``scope``: member (of the running POU instance), local
    (a Python local of the generated function), global, or result (a FUNCTION's return value)."""

    var: T.VarInfo
    scope: str


@dataclass
class EnumRef:
    type: T.EnumType
    value: int


@dataclass
class ConstRef:
    """A named constant whose value is inlined."""

    type: T.Type
    value: object


@dataclass
class TaskModel:
    name: str
    interval_ns: int
    priority: int
    pos: Pos


@dataclass
class InstanceModel:
    name: str
    pou: T.PouType
    task: str
    pos: Pos


@dataclass
class ProgramModel:
    """A checked program: everything code generation and the executor need."""

    types: dict[str, T.Type]
    pous: dict[str, T.PouType]
    globals: dict[str, T.VarInfo]
    globals_name: str  # the configuration's name, or "globals"
    tasks: list[TaskModel]
    instances: list[InstanceModel]
    sources: dict[str, str] = field(default_factory=dict)
    main_file: str = ""
    type_inits: dict[str, object] = field(default_factory=dict)
    decls: object = None  # the checker's Declarations (symbol tables, constants) for code generation
    # (POU name or "" for globals, variable) of every variable whose I/O quality the program reads
    quality_reads: set[tuple[str, str]] = field(default_factory=set)

    @property
    def quality_roots(self) -> set[str]:
        """Paths of the variables whose I/O quality the program reads itself (QUALITY_OF/AGE_OF)."""
        reads = self.quality_reads
        roots = {f"{self.globals_name.lower()}.{var}" for owner, var in reads if owner == ""}
        for inst in self.instances:
            roots |= {f"{inst.name.lower()}.{var}" for owner, var in reads if owner == inst.pou.name.upper()}
        return roots

    def used_pous(self) -> list[T.PouType]:
        """POUs reachable from the program instances (and their function calls), in dependency order."""
        order: list[T.PouType] = []
        seen: set[str] = set()

        def visit(pou: T.PouType) -> None:
            key = pou.name.upper()
            if key in seen:
                return
            seen.add(key)
            for dep in _dependencies(pou, self.pous):
                visit(dep)
            order.append(pou)

        for instance in self.instances:
            visit(instance.pou)
        for var in self.globals.values():
            for pou in pou_types_in(var.type):
                visit(pou)
        return order


def pou_types_in(t: T.Type) -> list[T.PouType]:
    if isinstance(t, T.PouType):
        return [t]
    if isinstance(t, T.ArrayType):
        return pou_types_in(t.element)
    if isinstance(t, T.StructType):
        out: list[T.PouType] = []
        for f in t.fields.values():
            out.extend(pou_types_in(f.type))
        return out
    return []


def _dependencies(pou: T.PouType, pous: dict[str, T.PouType]) -> list[T.PouType]:
    deps: list[T.PouType] = []
    for var in pou.variables.values():
        deps.extend(pou_types_in(var.type))
    deps.extend(pou.calls)
    return deps
