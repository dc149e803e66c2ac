"""Questions code generation asks about statement lists: which variables a loop assigns, which
arrays its variable indexes, which members it names, whether it calls other POUs, and so on.

Each is a loop over ``ast_walk.walk`` picking the node kinds it cares about."""

from __future__ import annotations

from . import st_ast as A
from . import st_types as T
from .ast_walk import walk
from .model import VarRef


def _is_var(e: A.Node | None, var: T.VarInfo) -> bool:
    return isinstance(e, A.Name) and isinstance(e.ref, VarRef) and e.ref.var is var


def assigns(body: list[A.Stmt], var: T.VarInfo) -> bool:
    """Does a statement list assign ``var``: as an assignment's or FOR's target, as an output
    (``=>``, ENO) or by passing it to a VAR_IN_OUT of any call?"""
    for node in walk(body):
        if isinstance(node, A.Assign | A.For):
            if _is_var(node.target if isinstance(node, A.Assign) else node.var, var):
                return True
        elif isinstance(node, A.Call):
            if _is_var(node.eno, var):
                return True
            for param, arg in node.bound:
                if _is_var(arg.target, var) or (param.section == "VAR_IN_OUT" and _is_var(arg.value, var)):
                    return True
    return False


def walk_exprs(body: list[A.Stmt]) -> list[A.Expr]:
    """Every expression node in a statement list (pre-order)."""
    return [n for n in walk(body) if isinstance(n, A.Expr)]


def calls_pous(body: list[A.Stmt]) -> bool:
    """Does the body call a function or function block (code that could see members)?"""
    for node in walk(body):
        if isinstance(node, A.CallStmt):
            return True
        if isinstance(node, A.Call) and node.ref is not None and node.ref[0] in ("fb", "function"):
            return True
    return False


def all_statements(body: list[A.Stmt]) -> list[A.Stmt]:
    return [n for n in walk(body) if isinstance(n, A.Stmt)]


def scalar_names(body: list[A.Stmt], loop_var: T.VarInfo) -> list[T.VarInfo]:
    """Elementary members and globals a loop body names (candidates to live in locals)."""
    seen: dict[int, T.VarInfo] = {}
    for e in walk(body):
        if isinstance(e, A.Name) and isinstance(e.ref, VarRef) and e.ref.scope in ("member", "global"):
            var = e.ref.var
            if var is loop_var or var.section == "VAR_IN_OUT":
                continue
            if T.is_elementary(var.type) or isinstance(T.underlying(var.type), T.EnumType):
                seen.setdefault(id(var), var)
    return list(seen.values())


def container_names(body: list[A.Stmt]) -> list[T.VarInfo]:
    """Array, structure and FB-instance members and globals a body names: the object each refers to
    is never replaced while a body runs (assignments copy into it; a VAR_IN_OUT is bound by the
    caller before the call), so a local can hold it."""
    seen: dict[int, T.VarInfo] = {}
    for e in walk(body):
        if isinstance(e, A.Name) and isinstance(e.ref, VarRef) and e.ref.scope in ("member", "global"):
            if isinstance(T.underlying(e.ref.var.type), T.ArrayType | T.StructType | T.PouType):
                seen.setdefault(id(e.ref.var), e.ref.var)
    return list(seen.values())


def is_loop_index(e: A.Index, var: T.VarInfo) -> bool:
    return len(e.indices) == 1 and _is_var(e.indices[0], var)


def index_sites(body: list[A.Stmt], var: T.VarInfo) -> list[tuple[int, int]]:
    """Bounds of the one-dimensional arrays that ``var`` indexes directly (``a[var]``) in ``body``."""
    sites = []
    for e in walk(body):
        if isinstance(e, A.Index) and is_loop_index(e, var):
            array = T.underlying(e.base.ty)
            if isinstance(array, T.ArrayType):
                sites.append(array.dims[0])
    return sites


def stable_base(e: A.Expr) -> bool:
    """An array reached only through names and members (no index or call on the way)."""
    while isinstance(e, A.Member):
        e = e.base
    return isinstance(e, A.Name) and isinstance(e.ref, VarRef)


def cacheable_arrays(body: list[A.Stmt], var: T.VarInfo) -> list[A.Expr]:
    """Arrays of structures or FB instances indexed by ``var``, whose element can be read once."""
    found: list[A.Expr] = []
    for e in walk(body):
        if isinstance(e, A.Index) and is_loop_index(e, var) and stable_base(e.base):
            array = T.underlying(e.base.ty)
            if isinstance(array, T.ArrayType) and isinstance(
                T.underlying(array.element), T.StructType | T.PouType
            ):
                found.append(e.base)
    return found


def has_continue(body: list[A.Stmt]) -> bool:
    """Does the body CONTINUE its own loop (not one nested inside it)?"""
    stack: list[A.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, A.Continue):
            return True
        if isinstance(node, A.If | A.Case):
            stack.extend(c for c in node.children() if isinstance(c, A.Stmt))
    return False


def chain_indices(target: A.Expr) -> list[A.Expr]:
    """The index expressions along a variable access (``evs[i].connected``: ``[i]``), outermost
    first."""
    indices: list[A.Expr] = []
    node = target
    while isinstance(node, A.Member | A.Index):
        if isinstance(node, A.Index):
            indices = list(node.indices) + indices
        node = node.base
    return indices
