"""Short circuit behind an index guard: BOOL ``a AND b`` / ``a OR b`` whose right operand could
fault only by an index out of its bounds, every such index a plain read of a variable of the
running instance (``f[head]`` in ROCOF), runs as Python's ``and``/``or`` with unchecked indices
when one range test of those variables before it says they are inside (one test instead of a
bounds check per access, and the right operand skipped when the left decides); otherwise as
before (``&``/``|``, every operand evaluated, the out-of-bounds fault at its line)."""

from __future__ import annotations

from collections.abc import Callable

from . import st_ast as A
from . import st_types as T
from .ast_walk import walk
from .codegen_inline import fault_free
from .model import VarRef


def index_guards(e: A.Binary, proven: Callable[[A.Index], bool]) -> dict[int, tuple[A.Name, int, int]] | None:
    """For ``e`` (AND/OR of BOOLs): the variables whose range the guard tests, each with its
    (name node, low, high) over every array it indexes in ``e``; None when the form does not fit
    (a call with effects, another possible fault, an index that is not a plain read, a global,
    nothing to guard)."""
    if not (T.is_bool(e.ty) and T.is_bool(e.left.ty) and T.is_bool(e.right.ty)):
        return None
    ranges: dict[int, tuple[A.Name, int, int]] = {}

    def guarded(node: A.Index) -> bool:
        if proven(node):
            return True
        base_type = T.underlying(node.base.ty)
        if not isinstance(base_type, T.ArrayType):
            return False
        for index, (low, high) in zip(node.indices, base_type.dims, strict=True):
            if isinstance(index, A.IntLit):
                if not low <= index.value <= high:
                    return False
                continue
            if not (
                isinstance(index, A.Name)
                and isinstance(index.ref, VarRef)
                and index.ref.scope in ("member", "local")
                and T.is_integer_like(index.ty)
            ):
                return False
            known = ranges.get(id(index.ref.var))
            if known is not None:
                low, high = max(low, known[1]), min(high, known[2])
            ranges[id(index.ref.var)] = (index, low, high)
        return True

    for side in (e.left, e.right):
        if any(isinstance(n, A.Deref) for n in walk(side)):
            return None
        if not fault_free(side, index_ok=guarded, inlined_calls=True):
            return None
    if not ranges or any(low > high for _, low, high in ranges.values()):
        return None
    return ranges
