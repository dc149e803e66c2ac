"""Which calls the code generator may inline: small function blocks and one-line functions whose
code cannot fault.

A call costs more than a small body in CPython (R_TRIG's body is two stores; the call around it
three times that). Inlining is only done where it cannot change what a user sees: the body has no
loop (no loop budget), no RETURN/EXIT, no call, no index (no bounds fault), no division, MOD or
``**`` and no conversion that can fault, so a runtime fault can never point into inlined code (it
would name the caller's line). A function block keeps its instance: the inlined body works on the
same object, so its state, paths and online change are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from . import st_ast as A
from . import st_types as T
from .ast_walk import walk
from .builtins import BuiltinRef
from .model import VarRef

INLINE_STATEMENTS = 16  # a function block body with more statements is called, not inlined
_SAFE_BUILTINS = {"PLC_TIME", "SEL", "MAX", "MIN", "LIMIT", "ABS"}
_CONTROL = (A.For, A.While, A.Repeat, A.Return, A.Exit, A.Continue, A.CallStmt, A.Index, A.Case)


def _safe_call(call: A.Call) -> bool:
    if call.ref is None or call.en is not None or call.eno is not None:
        return False
    kind, target = call.ref
    if kind != "builtin" or not isinstance(target, BuiltinRef):
        return False
    if target.name in _SAFE_BUILTINS:
        return True
    source = target.source  # a conversion: only to a real type (int/real/time -> REAL/LREAL)
    return (
        source is not None
        and T.is_real_like(target.result)
        and isinstance(T.underlying(source), T.ElementaryType)
        and not isinstance(T.underlying(source), T.StringType)
    )


def fault_free(
    nodes: list[A.Stmt] | A.Expr,
    index_ok: Callable[[A.Index], bool] | None = None,
    inlined_calls: bool = False,
) -> bool:
    """Can this code run without a runtime fault, a loop or leaving early, whatever the values?
    ``index_ok`` accepts the indexes known to be inside their bounds (a loop variable's range);
    ``inlined_calls`` accepts calls of one-line functions that are generated in place (their
    expression cannot fault; the arguments are checked like the rest)."""
    for node in walk(nodes):
        if index_ok is not None and isinstance(node, A.Index) and index_ok(node):
            continue
        if inlined_calls and isinstance(node, A.Call) and _inlined(node):
            continue
        if isinstance(node, _CONTROL):
            return False
        if isinstance(node, A.Binary) and node.op in ("/", "MOD", "**"):
            return False
        if isinstance(node, A.Call) and not _safe_call(node):
            return False
        if isinstance(node, A.Assign) and isinstance(node.target.ty, T.SubrangeType):
            return False
    return True


def _inlined(call: A.Call) -> bool:
    if call.ref is None or call.ref[0] != "function" or call.en is not None or call.eno is not None:
        return False
    target = call.ref[1]
    return isinstance(target, T.PouType) and inlinable_function(target) is not None


def inlinable_fb(pou: T.PouType) -> bool:
    """A function block whose body the caller may run in place of ``instance._body()``."""
    if pou.kind != "FUNCTION_BLOCK":
        return False
    if any(v.section in ("VAR_TEMP", "VAR_EXTERNAL") for v in pou.variables.values()):
        return False
    body: list[A.Stmt] = pou.decl.body
    count = sum(1 for n in walk(body) if isinstance(n, A.Stmt))
    return count <= INLINE_STATEMENTS and fault_free(body)


def inlinable_function(pou: T.PouType) -> A.Expr | None:
    """The result expression of a function ``F := expr;`` over elementary inputs only, or None."""
    if pou.kind != "FUNCTION" or pou.return_type is None or not T.is_elementary(pou.return_type):
        return None
    if any(v.section != "VAR_INPUT" or not T.is_elementary(v.type) for v in pou.variables.values()):
        return None
    if any(
        isinstance(t, T.SubrangeType) for t in [pou.return_type, *(v.type for v in pou.variables.values())]
    ):
        return None  # passing the argument or the result is a range check that can fault
    body: list[A.Stmt] = pou.decl.body
    if len(body) != 1 or not isinstance(body[0], A.Assign):
        return None
    target = body[0].target
    if not (isinstance(target, A.Name) and isinstance(target.ref, VarRef) and target.ref.scope == "result"):
        return None
    value = body[0].value
    return value if fault_free(value) else None
