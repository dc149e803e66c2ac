"""Typing rules of ST operators and assignments: result types, common types, compatibility.

Pure functions over ``st_types``; the checker reports what they decide.
"""

from __future__ import annotations

from ..errors import PlcrunError
from . import st_types as T

COMPARISONS = frozenset({"=", "<>", "<", ">", "<=", ">="})
LOGICAL = frozenset({"AND", "OR", "XOR"})
ARITHMETIC = frozenset({"+", "-", "*", "/", "MOD", "**"})


class TypingError(PlcrunError):
    """The operands do not fit the operator; the message says why."""


def _el(t: T.Type) -> T.ElementaryType | None:
    u = T.underlying(t)
    return u if isinstance(u, T.ElementaryType) else None


def int_result(a: T.Type, b: T.Type) -> T.Type:
    a, b = T.underlying(a), T.underlying(b)
    if isinstance(a, T.LiteralIntType):
        return b
    if isinstance(b, T.LiteralIntType):
        return a
    assert isinstance(a, T.ElementaryType) and isinstance(b, T.ElementaryType)
    return T.wider(a, b)


def real_result(a: T.Type, b: T.Type) -> T.Type:
    kinds = [T.underlying(a), T.underlying(b)]
    if any(k is T.LREAL for k in kinds):
        return T.LREAL
    if all(isinstance(k, T.LiteralIntType | T.LiteralRealType) for k in kinds):
        return T.ANY_REAL_LIT
    for k in kinds:
        if isinstance(k, T.ElementaryType) and k.kind in ("int", "bits") and k.bits > 16:
            return T.LREAL
    return T.REAL


def numeric_result(a: T.Type, b: T.Type) -> T.Type:
    if T.is_real_like(a) or T.is_real_like(b):
        return real_result(a, b)
    return int_result(a, b)


def binary_type(op: str, a: T.Type, b: T.Type) -> T.Type:
    """Result type of ``a op b`` or TypingError."""
    if isinstance(a, T.ErrorType) or isinstance(b, T.ErrorType):
        return T.ERROR if op not in COMPARISONS else T.BOOL
    if op in LOGICAL:
        if T.is_bool(a) and T.is_bool(b):
            return T.BOOL
        if T.is_integer_like(a) and T.is_integer_like(b):
            return int_result(a, b)
        raise TypingError(f"{op} needs two BOOL or two bit-string operands, not {a.display} and {b.display}")
    if op in COMPARISONS:
        if comparable(a, b):
            return T.BOOL
        raise TypingError(f"cannot compare {a.display} with {b.display}")
    if op == "MOD":
        if T.is_integer_like(a) and T.is_integer_like(b):
            return int_result(a, b)
        raise TypingError(f"MOD needs integer operands, not {a.display} and {b.display}")
    if op == "**":
        if T.is_numeric(a) and T.is_numeric(b):
            if T.is_real_like(a):
                return T.LREAL if isinstance(T.underlying(a), T.LiteralRealType) else a
            return T.LREAL
        raise TypingError(f"** needs numeric operands, not {a.display} and {b.display}")
    time_result = _time_arithmetic(op, a, b)
    if time_result is not None:
        return time_result
    if T.is_numeric(a) and T.is_numeric(b):
        return numeric_result(a, b)
    raise TypingError(f"operator {op} cannot combine {a.display} and {b.display}")


def _time_arithmetic(op: str, a: T.Type, b: T.Type) -> T.Type | None:
    ea, eb = _el(a), _el(b)
    ka = ea.kind if ea else ""
    kb = eb.kind if eb else ""
    if ka == "time" and kb == "time" and op in "+-":
        return T.LTIME if T.LTIME in (ea, eb) else T.TIME
    if ka == "time" and T.is_numeric(b) and op in "*/":
        return a
    if kb == "time" and T.is_numeric(a) and op == "*":
        return b
    if ka == "date" and kb == "time" and op in "+-":
        return a
    if ka == "date" and kb == "date" and op == "-" and ea is eb:
        return T.TIME
    if (ka in ("time", "date") or kb in ("time", "date")) and op in ARITHMETIC:
        raise TypingError(f"operator {op} cannot combine {a.display} and {b.display}")
    return None


def comparable(a: T.Type, b: T.Type) -> bool:
    a, b = T.underlying(a), T.underlying(b)
    if T.is_numeric(a) and T.is_numeric(b):
        return True
    if T.is_bool(a) and T.is_bool(b):
        return True
    if isinstance(a, T.StringType) and isinstance(b, T.StringType):
        return True
    if isinstance(a, T.EnumType) and isinstance(b, T.EnumType):
        return a is b
    ea, eb = _el(a), _el(b)
    if ea and eb and ea.kind == eb.kind and ea.kind in ("time", "date"):
        return ea.kind == "time" or ea is eb
    return False


def common_type(types: list[T.Type]) -> T.Type:
    """The type several values are brought to (MAX, MIN, LIMIT, SEL, MUX)."""
    result = types[0]
    for other in types[1:]:
        if isinstance(result, T.ErrorType) or isinstance(other, T.ErrorType):
            return T.ERROR
        if T.is_numeric(result) and T.is_numeric(other):
            result = numeric_result(result, other)
        elif T.same_type(result, other) or comparable(result, other):
            if isinstance(result, T.StringType):
                result = T.STRING
            continue
        else:
            raise TypingError(f"{result.display} and {other.display} have no common type")
    return result


def assignable(target: T.Type, value: T.Type) -> str:
    """'ok', 'narrowing' (allowed, warn) or an error message."""
    if isinstance(target, T.ErrorType) or isinstance(value, T.ErrorType):
        return "ok"
    t, v = T.underlying(target), T.underlying(value)
    if isinstance(t, T.PouType):
        return "function block instances cannot be assigned"
    if isinstance(v, T.PouType):
        return f"{value.display} is a function block instance, not a value; read one of its outputs"
    if isinstance(t, T.ArrayType) or isinstance(v, T.ArrayType):
        if isinstance(t, T.ArrayType) and isinstance(v, T.ArrayType) and T.same_type(t, v):
            return "ok"
        return f"cannot assign {value.display} to {target.display}"
    if isinstance(t, T.StructType) or isinstance(v, T.StructType):
        return "ok" if t is v else f"cannot assign {value.display} to {target.display}"
    if isinstance(t, T.EnumType) or isinstance(v, T.EnumType):
        return "ok" if t is v else f"cannot assign {value.display} to {target.display}"
    if isinstance(t, T.StringType):
        return "ok" if isinstance(v, T.StringType) else f"cannot assign {value.display} to {target.display}"
    if isinstance(v, T.StringType):
        return f"cannot assign {value.display} to {target.display}; use STRING_TO_{target.display}"
    if T.is_bool(t):
        return "ok" if T.is_bool(v) else f"cannot assign {value.display} to BOOL"
    if T.is_bool(v):
        return f"cannot assign BOOL to {target.display}; use BOOL_TO_{target.display}"
    te, ve = _el(t), _el(v)
    if te is not None and te.kind in ("time", "date"):
        if ve is not None and ve.kind == te.kind and (te.kind == "time" or te is ve):
            return "ok"
        return f"cannot assign {value.display} to {target.display}"
    if ve is not None and ve.kind in ("time", "date"):
        return f"cannot assign {value.display} to {target.display}; use {value.display}_TO_{target.display}"
    if T.is_real_like(t):
        if isinstance(v, T.LiteralIntType | T.LiteralRealType):
            return "ok"
        if t is T.REAL and v is T.LREAL:
            return "narrowing"
        return "ok"
    if T.is_integer_like(t):
        if T.is_real_like(v):
            return (
                f"cannot assign {value.display} to {target.display} implicitly; "
                f"use {value.display if isinstance(v, T.ElementaryType) else 'REAL'}_TO_{target.display} "
                "(rounds) or TRUNC"
            )
        if isinstance(v, T.LiteralIntType):
            return "ok"
        tr, vr = T.int_range(target), T.int_range(value)
        if tr is not None and vr is not None and (vr[0] < tr[0] or vr[1] > tr[1]):
            return "narrowing"
        return "ok"
    return f"cannot assign {value.display} to {target.display}"
