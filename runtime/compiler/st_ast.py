"""The typed abstract syntax tree of Structured Text.

Nodes are plain dataclasses with a source position. Every node of a body (expressions, arguments,
CASE ranges, statements) says what its sub-nodes are with ``children()``, so a pass that cares about
a few kinds of node is a small ``NodeVisitor`` subclass or a loop over ``walk(node)`` (both in
``ast_walk``).

What the checker computes for code generation is declared here as fields that the parser leaves at
their defaults (``init=False``): ``Expr.ty`` (the resolved type), ``Name.ref`` / ``Member.ref`` /
``DirectVar.ref`` (what a name denotes), ``Call.ref`` / ``Call.bound`` / ``Call.desugared`` /
``Call.en`` / ``Call.eno`` / ``Call.io_target``, ``Case.label_values``. Code generation reads them
and never guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from .diagnostics import Pos

if TYPE_CHECKING:
    from .builtins import BuiltinRef
    from .model import ConstRef, EnumRef, VarRef
    from .st_types import PouType, VarInfo

    # What a call denotes once checked: ("fb", instance type), ("function", pou), ("builtin", ref)
    # or ("desugared", None) (an operator written as a function: see ``Call.desugared``).
    CallTarget: TypeAlias = tuple[str, PouType] | tuple[str, BuiltinRef] | tuple[str, None]


class Node:
    """Base of every node that ``walk`` and ``NodeVisitor`` traverse."""

    pos: Pos

    def children(self) -> Sequence[Node]:
        """The direct sub-nodes, in source (and evaluation) order."""
        return ()


# ------------------------------------------------------------------ expressions


@dataclass(eq=False)
class Expr(Node):
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
    # set by the checker: a variable, an enumeration value or an inlined constant
    ref: VarRef | EnumRef | ConstRef | None = field(default=None, init=False, repr=False)


@dataclass(eq=False)
class Member(Expr):
    base: Expr
    name: str
    name_pos: Pos | None = None
    ref: VarInfo | None = field(default=None, init=False, repr=False)  # the field or parameter named

    def children(self) -> Sequence[Node]:
        return (self.base,)


@dataclass(eq=False)
class Index(Expr):
    base: Expr
    indices: list[Expr]

    def children(self) -> Sequence[Node]:
        return (self.base, *self.indices)


@dataclass(eq=False)
class BitAccess(Expr):
    base: Expr
    bit: int

    def children(self) -> Sequence[Node]:
        return (self.base,)


@dataclass(eq=False)
class DirectVar(Expr):
    address: str  # e.g. %IX0.0 used directly in code
    ref: VarRef | None = field(default=None, init=False, repr=False)  # the variable declared AT it


@dataclass(eq=False)
class Deref(Expr):
    base: Expr

    def children(self) -> Sequence[Node]:
        return (self.base,)


@dataclass(eq=False)
class Arg(Node):
    pos: Pos
    name: str | None  # None for positional arguments
    value: Expr | None  # input value (``:=`` or positional)
    target: Expr | None = None  # output binding (``=>``)
    negated: bool = False

    def children(self) -> Sequence[Node]:
        return tuple(e for e in (self.value, self.target) if e is not None)


@dataclass(eq=False)
class Call(Expr):
    callee: Expr
    args: list[Arg]  # EN and ENO are moved to ``en`` / ``eno`` by the checker
    ref: CallTarget | None = field(default=None, init=False, repr=False)  # what is called
    # arguments matched to the parameters of a function or function block
    bound: list[tuple[VarInfo, Arg]] = field(default_factory=list, init=False, repr=False)
    # an operator written as a function (ADD(a, b, c), GT(a, b, c), NOT(x)): the expression it means,
    # built from the same argument nodes
    desugared: Expr | None = field(default=None, init=False, repr=False)
    en: Expr | None = field(default=None, init=False, repr=False)  # EN := condition
    eno: Expr | None = field(default=None, init=False, repr=False)  # ENO => variable
    io_target: Expr | None = field(default=None, init=False, repr=False)  # QUALITY_OF/AGE_OF's variable

    def children(self) -> Sequence[Node]:
        extra = tuple(e for e in (self.en, self.eno) if e is not None)
        return (self.callee, *extra, *self.args)


@dataclass(eq=False)
class Unary(Expr):
    op: str  # "-", "+", "NOT"
    operand: Expr

    def children(self) -> Sequence[Node]:
        return (self.operand,)


@dataclass(eq=False)
class Binary(Expr):
    op: str  # OR XOR AND = <> < > <= >= + - * / MOD **
    left: Expr
    right: Expr
    op_pos: Pos | None = None

    def children(self) -> Sequence[Node]:
        return (self.left, self.right)


@dataclass(eq=False)
class Paren(Expr):
    inner: Expr

    def children(self) -> Sequence[Node]:
        return (self.inner,)


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
class Stmt(Node):
    pos: Pos


@dataclass(eq=False)
class Assign(Stmt):
    target: Expr
    value: Expr

    def children(self) -> Sequence[Node]:
        return (self.target, self.value)


@dataclass(eq=False)
class CallStmt(Stmt):
    call: Call

    def children(self) -> Sequence[Node]:
        return (self.call,)


@dataclass(eq=False)
class If(Stmt):
    branches: list[tuple[Expr, list[Stmt]]]
    else_body: list[Stmt] | None

    def children(self) -> Sequence[Node]:
        out: list[Node] = []
        for cond, body in self.branches:
            out.append(cond)
            out.extend(body)
        out.extend(self.else_body or ())
        return out


@dataclass(eq=False)
class CaseRange(Node):
    pos: Pos
    low: Expr
    high: Expr

    def children(self) -> Sequence[Node]:
        return (self.low, self.high)


@dataclass(eq=False)
class Case(Stmt):
    selector: Expr
    elements: list[tuple[list[Expr | CaseRange], list[Stmt]]]
    else_body: list[Stmt] | None
    # per element, its labels as (low, high) ranges of selector values (set by the checker)
    label_values: list[list[tuple[int, int]]] = field(default_factory=list, init=False, repr=False)

    def children(self) -> Sequence[Node]:
        out: list[Node] = [self.selector]
        for labels, body in self.elements:
            out.extend(labels)
            out.extend(body)
        out.extend(self.else_body or ())
        return out


@dataclass(eq=False)
class For(Stmt):
    var: Name
    start: Expr
    end: Expr
    step: Expr | None
    body: list[Stmt]

    def children(self) -> Sequence[Node]:
        head = (
            (self.var, self.start, self.end)
            if self.step is None
            else (self.var, self.start, self.end, self.step)
        )
        return (*head, *self.body)


@dataclass(eq=False)
class While(Stmt):
    cond: Expr
    body: list[Stmt]

    def children(self) -> Sequence[Node]:
        return (self.cond, *self.body)


@dataclass(eq=False)
class Repeat(Stmt):
    body: list[Stmt]
    cond: Expr

    def children(self) -> Sequence[Node]:
        return (*self.body, self.cond)


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
class Pou(Node):
    pos: Pos
    kind: str  # PROGRAM, FUNCTION_BLOCK, FUNCTION
    name: str
    return_type: TypeRef | None
    var_blocks: list[VarBlock]
    body: list[Stmt]
    end_pos: Pos
    unsupported: list[tuple[str, Pos]] = field(default_factory=list)

    def children(self) -> Sequence[Node]:
        return self.body


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
