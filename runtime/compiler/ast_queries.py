"""Questions code generation asks about statement lists: which variables a loop assigns, which
arrays its variable indexes, which members it names, whether it calls other POUs, and so on."""

from __future__ import annotations

from . import st_ast as A
from . import st_types as T
from .model import VarRef


def assigns(body: list[A.Stmt], var: T.VarInfo) -> bool:
    """Does a statement list assign ``var`` (directly, or by passing it as an output/in-out)?"""

    def is_var(e: A.Expr | None) -> bool:
        return isinstance(e, A.Name) and isinstance(e.ref, VarRef) and e.ref.var is var

    def in_call(call: A.Call) -> bool:
        return any(is_var(a.target) or (a.value is not None and is_var(a.value)) for a in call.args)

    for s in body:
        if isinstance(s, A.Assign) and is_var(s.target):
            return True
        if isinstance(s, A.CallStmt) and in_call(s.call):
            return True
        if isinstance(s, A.For) and (is_var(s.var) or assigns(s.body, var)):
            return True
        if isinstance(s, A.If):
            if any(assigns(b, var) for _, b in s.branches) or assigns(s.else_body or [], var):
                return True
        if isinstance(s, A.Case):
            if any(assigns(b, var) for _, b in s.elements) or assigns(s.else_body or [], var):
                return True
        if isinstance(s, A.While | A.Repeat) and assigns(s.body, var):
            return True
    return False


def walk_exprs(body: list[A.Stmt]) -> list[A.Expr]:
    """Every expression node in a statement list (pre-order), desugared calls included."""
    out: list[A.Expr] = []

    def expr(e: object) -> None:
        if not isinstance(e, A.Expr):
            return
        out.append(e)
        if isinstance(e, A.Binary):
            expr(e.left)
            expr(e.right)
        elif isinstance(e, A.Unary):
            expr(e.operand)
        elif isinstance(e, A.Paren):
            expr(e.inner)
        elif isinstance(e, A.Member | A.BitAccess):
            expr(e.base)
        elif isinstance(e, A.Index):
            expr(e.base)
            for i in e.indices:
                expr(i)
        elif isinstance(e, A.Call):
            expr(getattr(e, "desugared", None))
            expr(e.callee)
            for arg in e.args:
                expr(arg.value)
                expr(arg.target)

    def stmts(items: list[A.Stmt]) -> None:
        for s in items:
            if isinstance(s, A.Assign):
                expr(s.target)
                expr(s.value)
            elif isinstance(s, A.CallStmt):
                expr(s.call)
            elif isinstance(s, A.If):
                for cond, b in s.branches:
                    expr(cond)
                    stmts(b)
                stmts(s.else_body or [])
            elif isinstance(s, A.Case):
                expr(s.selector)
                for _, b in s.elements:
                    stmts(b)
                stmts(s.else_body or [])
            elif isinstance(s, A.For):
                for part in (s.var, s.start, s.end, s.step):
                    expr(part)
                stmts(s.body)
            elif isinstance(s, A.While | A.Repeat):
                expr(s.cond)
                stmts(s.body)

    stmts(body)
    return out


def calls_pous(body: list[A.Stmt]) -> bool:
    """Does the body call a function or function block (code that could see members)?"""
    for e in walk_exprs(body):
        if isinstance(e, A.Call) and e.ref is not None and e.ref[0] in ("fb", "function"):
            return True
    return any(isinstance(s, A.CallStmt) for s in all_statements(body))


def all_statements(body: list[A.Stmt]) -> list[A.Stmt]:
    out: list[A.Stmt] = []
    for s in body:
        out.append(s)
        if isinstance(s, A.If):
            for _, b in s.branches:
                out.extend(all_statements(b))
            out.extend(all_statements(s.else_body or []))
        elif isinstance(s, A.Case):
            for _, b in s.elements:
                out.extend(all_statements(b))
            out.extend(all_statements(s.else_body or []))
        elif isinstance(s, A.For | A.While | A.Repeat):
            out.extend(all_statements(s.body))
    return out


def scalar_names(body: list[A.Stmt], loop_var: T.VarInfo) -> list[T.VarInfo]:
    """Elementary members and globals a loop body names (candidates to live in locals)."""
    seen: dict[int, T.VarInfo] = {}
    for e in walk_exprs(body):
        if isinstance(e, A.Name) and isinstance(e.ref, VarRef) and e.ref.scope in ("member", "global"):
            var = e.ref.var
            if var is loop_var or var.section == "VAR_IN_OUT":
                continue
            if T.is_elementary(var.type) or isinstance(T.underlying(var.type), T.EnumType):
                seen.setdefault(id(var), var)
    return list(seen.values())


def is_loop_index(e: A.Index, var: T.VarInfo) -> bool:
    index = e.indices[0] if len(e.indices) == 1 else None
    return isinstance(index, A.Name) and isinstance(index.ref, VarRef) and index.ref.var is var


def index_sites(body: list[A.Stmt], var: T.VarInfo) -> list[tuple[int, int]]:
    """Bounds of the one-dimensional arrays that ``var`` indexes directly (``a[var]``) in ``body``."""
    sites = []
    for e in walk_exprs(body):
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
    for e in walk_exprs(body):
        if isinstance(e, A.Index) and is_loop_index(e, var) and stable_base(e.base):
            array = T.underlying(e.base.ty)
            if isinstance(array, T.ArrayType) and isinstance(
                T.underlying(array.element), T.StructType | T.PouType
            ):
                found.append(e.base)
    return found


def has_continue(body: list[A.Stmt]) -> bool:
    for s in body:
        if isinstance(s, A.Continue):
            return True
        if isinstance(s, A.If):
            if any(has_continue(b) for _, b in s.branches) or has_continue(s.else_body or []):
                return True
        if isinstance(s, A.Case):
            if any(has_continue(b) for _, b in s.elements) or has_continue(s.else_body or []):
                return True
    return False
