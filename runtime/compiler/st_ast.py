"""The typed abstract syntax tree of Structured Text.

Nodes are plain dataclasses with a source position. The checker fills in the ``ty`` slot of every
expression (its resolved type) and ``ref`` slots of names (what they denote); code generation reads
those annotations and never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Pos

# ------------------------------------------------------------------ expressions


@dataclass(eq=False)
class Expr:
    pos: Pos
    ty: Any = field(default=None, init=False, repr=False)  # set by the checker (st_types.Type)


@dataclass(eq=False)
class IntLit(Expr):
    value: int
    type_name: str | None = None  # from a typed literal like INT#5


@dataclass(eq=False)
class RealLit(Expr):
    value: float
    text: str
    type_name: str | None = None


@dataclass(eq=False)
class BoolLit(Expr):
    value: bool
    type_name: str | None = None


@dataclass(eq=False)
class StringLit(Expr):
    value: str
    wide: bool = False


@dataclass(eq=False)
class TimeLit(Expr):
    nanoseconds: int
    type_name: str  # TIME or LTIME


@dataclass(eq=False)
class DateLit(Expr):
    value: int  # DATE: seconds since 1970; TOD: ns since midnight; DT: seconds since 1970
    type_name: str


@dataclass(eq=False)
class EnumLit(Expr):
    """``Type#Value``; a bare enum value is a ``Name`` that the checker resolves."""

    type_name: str
    value_name: str


@dataclass(eq=False)
class Name(Expr):
    name: str
    ref: Any = field(default=None, init=False, repr=False)  # set by the checker


@dataclass(eq=False)
class Member(Expr):
    base: Expr
    name: str
    name_pos: Pos | None = None


@dataclass(eq=False)
class Index(Expr):
    base: Expr
    indices: list[Expr]


@dataclass(eq=False)
class BitAccess(Expr):
    base: Expr
    bit: int


@dataclass(eq=False)
class DirectVar(Expr):
    address: str  # e.g. %IX0.0 used directly in code


@dataclass(eq=False)
class Deref(Expr):
    base: Expr


@dataclass(eq=False)
class Arg:
    pos: Pos
    name: str | None  # None for positional arguments
    value: Expr | None  # input value (``:=`` or positional)
    target: Expr | None = None  # output binding (``=>``)
    negated: bool = False


@dataclass(eq=False)
class Call(Expr):
    callee: Expr
    args: list[Arg]
    ref: Any = field(default=None, init=False, repr=False)  # resolved callee


@dataclass(eq=False)
class Unary(Expr):
    op: str  # "-", "+", "NOT"
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str  # OR XOR AND = <> < > <= >= + - * / MOD **
    left: Expr
    right: Expr
    op_pos: Pos | None = None


@dataclass(eq=False)
class Paren(Expr):
    inner: Expr


# ------------------------------------------------------------------ initialisers


@dataclass(eq=False)
class ArrayInit:
    pos: Pos
    elements: list[Any]  # Expr | ArrayInit | StructInit | RepeatedInit


@dataclass(eq=False)
class RepeatedInit:
    pos: Pos
    count: int
    value: Any | None


@dataclass(eq=False)
class StructInit:
    pos: Pos
    fields: list[tuple[str, Pos, Any]]


# ------------------------------------------------------------------ statements


@dataclass(eq=False)
class Stmt:
    pos: Pos


@dataclass(eq=False)
class Assign(Stmt):
    target: Expr
    value: Expr


@dataclass(eq=False)
class CallStmt(Stmt):
    call: Call


@dataclass(eq=False)
class If(Stmt):
    branches: list[tuple[Expr, list[Stmt]]]
    else_body: list[Stmt] | None


@dataclass(eq=False)
class CaseRange:
    pos: Pos
    low: Expr
    high: Expr


@dataclass(eq=False)
class Case(Stmt):
    selector: Expr
    elements: list[tuple[list[Expr | CaseRange], list[Stmt]]]
    else_body: list[Stmt] | None


@dataclass(eq=False)
class For(Stmt):
    var: Name
    start: Expr
    end: Expr
    step: Expr | None
    body: list[Stmt]


@dataclass(eq=False)
class While(Stmt):
    cond: Expr
    body: list[Stmt]


@dataclass(eq=False)
class Repeat(Stmt):
    body: list[Stmt]
    cond: Expr


@dataclass(eq=False)
class Exit(Stmt):
    pass


@dataclass(eq=False)
class Continue(Stmt):
    pass


@dataclass(eq=False)
class Return(Stmt):
    pass


@dataclass(eq=False)
class Empty(Stmt):
    pass


@dataclass(eq=False)
class Unsupported(Stmt):
    what: str


# ------------------------------------------------------------------ types in declarations


@dataclass(eq=False)
class TypeRef:
    pos: Pos


@dataclass(eq=False)
class NamedTypeRef(TypeRef):
    name: str


@dataclass(eq=False)
class StringTypeRef(TypeRef):
    wide: bool
    length: Expr | None


@dataclass(eq=False)
class ArrayTypeRef(TypeRef):
    ranges: list[tuple[Expr, Expr]]
    element: TypeRef


@dataclass(eq=False)
class SubrangeTypeRef(TypeRef):
    base: str
    low: Expr
    high: Expr


@dataclass(eq=False)
class EnumTypeRef(TypeRef):
    values: list[tuple[str, Pos, Expr | None]]
    base: str | None


@dataclass(eq=False)
class StructTypeRef(TypeRef):
    fields: list[VarDecl]


@dataclass(eq=False)
class PointerTypeRef(TypeRef):
    what: str


# ------------------------------------------------------------------ declarations


@dataclass(eq=False)
class VarDecl:
    pos: Pos
    names: list[tuple[str, Pos]]
    location: str | None
    type_ref: TypeRef
    init: Any | None  # Expr | ArrayInit | StructInit
    attributes: dict[str, str | None] = field(default_factory=dict)


@dataclass(eq=False)
class VarBlock:
    pos: Pos
    kind: str  # VAR, VAR_INPUT, ...
    constant: bool
    retain: bool
    decls: list[VarDecl]


@dataclass(eq=False)
class TypeDecl:
    pos: Pos
    name: str
    type_ref: TypeRef
    init: Any | None


@dataclass(eq=False)
class Pou:
    pos: Pos
    kind: str  # PROGRAM, FUNCTION_BLOCK, FUNCTION
    name: str
    return_type: TypeRef | None
    var_blocks: list[VarBlock]
    body: list[Stmt]
    end_pos: Pos
    unsupported: list[tuple[str, Pos]] = field(default_factory=list)


@dataclass(eq=False)
class TaskDecl:
    pos: Pos
    name: str
    params: dict[str, tuple[Pos, Expr]]


@dataclass(eq=False)
class ProgramConfig:
    pos: Pos
    instance: str
    task: str | None
    task_pos: Pos | None
    type_name: str
    type_pos: Pos
    args: list[Arg]


@dataclass(eq=False)
class Resource:
    pos: Pos
    name: str
    var_blocks: list[VarBlock]
    tasks: list[TaskDecl]
    programs: list[ProgramConfig]


@dataclass(eq=False)
class Configuration:
    pos: Pos
    name: str
    var_blocks: list[VarBlock]
    resources: list[Resource]


@dataclass(eq=False)
class CompilationUnit:
    filename: str
    pous: list[Pou]
    types: list[TypeDecl]
    configurations: list[Configuration]
    global_blocks: list[VarBlock]
