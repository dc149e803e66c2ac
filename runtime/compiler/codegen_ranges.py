"""Integer ranges the code generator can prove, so that range checks which cannot fail are left out
(``f[head]`` with ``head : INT(0..511)``, ``head := (head + 1) MOD 512``).

A scalar VAR or VAR_TEMP of a subrange type always holds a value of its range when the POU itself
writes it only by plain assignment: every assignment is checked against the range (or proved inside
it here), nothing outside the POU can name a VAR or VAR_TEMP, and the state's accessors (dashboard,
journal, retain, process image) check subranges on every write. Online change keeps a value only
when its type, subrange bounds included, is unchanged. Any other write in the body leaves the
variable unproved: a FOR control variable (the loop leaves end + 1 behind), a VAR_IN_OUT argument (a
function block writes it back unchecked), an output binding (``=>``), ENO and a bit write (``x.3``).

``value_range`` then follows literals and integer constants, such variables, ``+``/``-``, ``MOD`` by a
positive literal and ``LIMIT`` with such bounds; a store of a value proved inside the target's range
(a subrange, an integer or bit string type) needs neither the check nor the wrap-around.
"""

from __future__ import annotations

from collections.abc import Callable

from . import st_ast as A
from . import st_types as T
from .ast_walk import walk
from .builtins import BuiltinRef
from .model import ConstRef, VarRef

Range = tuple[int, int]
MAX_DEPTH = 12


def _root(e: A.Expr | None) -> T.VarInfo | None:
    while isinstance(e, A.BitAccess | A.Paren):
        e = e.base if isinstance(e, A.BitAccess) else e.inner
    if isinstance(e, A.Name) and isinstance(e.ref, VarRef):
        return e.ref.var
    return None


def range_kept(pou: T.PouType) -> dict[int, Range]:
    """id(VarInfo) -> (low, high) for the POU's scalar subrange VAR/VAR_TEMP variables that hold a
    value of their range at every moment (see the module docstring)."""
    candidates = {
        id(v): (v.type.low, v.type.high)
        for v in pou.variables.values()
        if v.section in ("VAR", "VAR_TEMP") and isinstance(v.type, T.SubrangeType)
    }
    if not candidates:
        return {}
    for node in walk(pou.decl.body):
        other: list[A.Expr | None] = []
        if isinstance(node, A.Assign) and not isinstance(node.target, A.Name):
            other.append(node.target)  # x.3 := ...
        elif isinstance(node, A.For):
            other.append(node.var)
        elif isinstance(node, A.Call):
            other.append(node.eno)
            for param, arg in node.bound:
                other.append(arg.target)
                if param.section == "VAR_IN_OUT":
                    other.append(arg.value)
        for target in other:
            var = _root(target)
            if var is not None:
                candidates.pop(id(var), None)
    return candidates


def value_range(e: A.Expr, known: Callable[[T.VarInfo], Range | None], depth: int = 0) -> Range | None:
    """The values integer expression ``e`` can have, or None when not proved. ``known`` gives the
    range of a variable read (None: unknown). Expressions deeper than ``MAX_DEPTH`` are not proved
    (a sum of thousands of terms must not exhaust Python's stack)."""
    if depth > MAX_DEPTH:
        return None
    while isinstance(e, A.Paren):
        e = e.inner
    if isinstance(e, A.IntLit):
        return (e.value, e.value)
    if isinstance(e, A.Name) and isinstance(e.ref, VarRef):
        return known(e.ref.var)
    if isinstance(e, A.Name) and isinstance(e.ref, ConstRef) and type(e.ref.value) is int:
        return (e.ref.value, e.ref.value)
    if isinstance(e, A.Unary) and e.op == "-" and isinstance(e.operand, A.IntLit):
        return (-e.operand.value, -e.operand.value)
    if isinstance(e, A.Call) and _is_limit(e) and T.is_integer_like(e.ty):
        mn, mx = (
            value_range(a.value, known, depth + 1) if a.value is not None else None
            for a in (e.args[0], e.args[2])
        )
        if mn is None or mx is None:
            return None
        return (min(mn[0], mx[0]), max(mn[1], mx[1]))  # mn, mx or a value between them
    if not isinstance(e, A.Binary) or not T.is_integer_like(e.ty):
        return None
    if e.op == "MOD":
        left = value_range(e.left, known, depth + 1)
        c = e.right.value if isinstance(e.right, A.IntLit) else 0
        if left is None or c <= 0:
            return None
        if left[0] >= 0:  # a non-negative dividend: the remainder of Python's % as well
            return left if left[1] < c else (0, c - 1)
        return (max(left[0], -(c - 1)), min(max(left[1], 0), c - 1))
    if e.op not in ("+", "-"):
        return None
    left, right = value_range(e.left, known, depth + 1), value_range(e.right, known, depth + 1)
    if left is None or right is None:
        return None
    if e.op == "+":
        low, high = left[0] + right[0], left[1] + right[1]
    else:
        low, high = left[0] - right[1], left[1] - right[0]
    span = T.int_range(e.ty)
    if span is None or low < span[0] or high > span[1]:
        return None  # the sum could wrap in its type
    return (low, high)


def name_plus_constant(e: A.Expr) -> tuple[A.Name, int] | None:
    """(x, c) for a variable read ``x``, ``x + c``, ``c + x`` or ``x - c`` (c a literal; -c for the
    last), else None."""
    while isinstance(e, A.Paren):
        e = e.inner
    name, c = e, 0
    if isinstance(e, A.Binary) and e.op in ("+", "-"):
        if isinstance(e.right, A.IntLit):
            name, c = e.left, e.right.value if e.op == "+" else -e.right.value
        elif e.op == "+" and isinstance(e.left, A.IntLit):
            name, c = e.right, e.left.value
        else:
            return None
    if isinstance(name, A.Name) and isinstance(name.ref, VarRef):
        return name, c
    return None


def _is_limit(e: A.Call) -> bool:
    """LIMIT(mn, in, mx) with positional arguments and no EN/ENO."""
    if e.ref is None or e.ref[0] != "builtin" or e.en is not None or e.eno is not None:
        return False
    target = e.ref[1]
    return (
        isinstance(target, BuiltinRef)
        and target.name == "LIMIT"
        and len(e.args) == 3
        and all(a.name is None and a.value is not None for a in e.args)
    )


def store_range(t: T.Type) -> Range | None:
    """The values a variable of type ``t`` holds, when it is an integer, a bit string or a subrange."""
    if isinstance(t, T.SubrangeType):
        return (t.low, t.high)
    if isinstance(t, T.ElementaryType) and t.is_anyint:
        return T.int_range(t)
    return None


def inside(rng: Range | None, low: int, high: int) -> bool:
    return rng is not None and low <= rng[0] and rng[1] <= high
