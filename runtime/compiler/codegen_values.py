"""Code generation of values: defaults, initialisers and store conversions (wrap, binary32, truncation).

Everything here returns Python source text for the generated module. Constant initial values are
converted at compile time, so a generated constructor only contains literals.
"""

from __future__ import annotations

import struct
from typing import Any

from . import st_ast as A
from . import st_types as T
from .builtins import BuiltinRef, wrap_code
from .declarations import Declarations
from .model import EnumRef

_F32 = struct.Struct("f")


def f32_const(value: float) -> float:
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def py_float(value: float) -> str:
    if value != value:
        return "_nan"
    if value in (float("inf"), float("-inf")):
        return "(1e308 * 10)" if value > 0 else "(-1e308 * 10)"
    return repr(float(value))


def class_name(t: T.Type) -> str:
    if isinstance(t, T.StructType):
        return "S_" + t.name.upper()
    if isinstance(t, T.PouType):
        prefix = {"FUNCTION_BLOCK": "FB_", "PROGRAM": "P_", "FUNCTION": "F_"}[t.kind]
        return prefix + t.name.upper()
    raise AssertionError(t)


def convert_constant(value: object, t: T.Type) -> object:
    """A constant converted to how a variable of type ``t`` stores it."""
    u = T.underlying(t)
    if isinstance(u, T.StringType):
        return str(value)[: u.length]
    if T.is_bool(u):
        return bool(value)
    if T.is_real_like(u):
        number = float(value)  # type: ignore[arg-type]
        return f32_const(number) if u is T.REAL else number
    if isinstance(value, int) and not isinstance(value, bool):
        rng = T.int_range(u)
        if rng is not None and not isinstance(t, T.SubrangeType):
            low, high = rng
            return (value - low) % (high - low + 1) + low
    return value


def literal_code(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return py_float(value)
    if isinstance(value, int | str):
        return repr(value)
    raise AssertionError(value)


class ValueBuilder:
    """Default values and initialisers of variables as Python expressions."""

    def __init__(self, decls: Declarations) -> None:
        self.decls = decls

    def default(self, t: T.Type) -> str:
        u = t
        if isinstance(u, T.SubrangeType):
            return repr(u.low if not u.low <= 0 <= u.high else 0)
        u = T.underlying(u)
        if isinstance(u, T.ElementaryType):
            if u is T.BOOL:
                return "False"
            if u.kind == "real":
                return "0.0"
            return "0"
        if isinstance(u, T.StringType):
            return "''"
        if isinstance(u, T.EnumType):
            return repr(u.default)
        if isinstance(u, T.StructType | T.PouType):
            return f"{class_name(u)}()"
        if isinstance(u, T.ArrayType):
            return self._array(u, 0, [])
        if isinstance(u, T.LiteralIntType):
            return "0"
        if isinstance(u, T.LiteralRealType):
            return "0.0"
        return "None"

    def _array(self, t: T.ArrayType, dim: int, flat: list[str]) -> str:
        """Nested list for dimension ``dim``; ``flat`` holds initial element codes in row-major order."""
        low, high = t.dims[dim]
        count = high - low + 1
        last = dim == len(t.dims) - 1
        if last and not flat:
            element = self.default(t.element)
            if isinstance(T.underlying(t.element), T.ElementaryType | T.StringType | T.EnumType):
                return f"[{element}] * {count}"
            return f"[{element} for _ in _range({count})]"
        if last:
            items = flat[:count]
            del flat[:count]
            rest = count - len(items)
            code = "[" + ", ".join(items) + "]"
            if rest:
                element = self.default(t.element)
                if isinstance(T.underlying(t.element), T.ElementaryType | T.StringType | T.EnumType):
                    code += f" + [{element}] * {rest}"
                else:
                    code += f" + [{element} for _ in _range({rest})]"
            return code
        if not flat:
            inner = self._array(t, dim + 1, [])
            return f"[{inner} for _ in _range({count})]"
        return "[" + ", ".join(self._array(t, dim + 1, flat) for _ in range(count)) + "]"

    def initial(self, t: T.Type, init: Any) -> str:
        """Python expression for a fresh value of type ``t`` with the (checked) initialiser ``init``."""
        if init is None:
            return self.default(t)
        u = T.underlying(t)
        if isinstance(init, A.ArrayInit) and isinstance(u, T.ArrayType):
            flat: list[str] = []
            for element in init.elements:
                if isinstance(element, A.RepeatedInit):
                    code = self.initial(u.element, element.value)
                    flat.extend([code] * element.count)
                else:
                    flat.append(self.initial(u.element, element))
            return self._array(u, 0, flat[: u.size])
        if isinstance(init, A.StructInit) and isinstance(u, T.StructType | T.PouType):
            members = u.fields if isinstance(u, T.StructType) else u.variables
            parts = []
            for name, _, value in init.fields:
                member = members.get(name.upper())
                if member is not None:
                    parts.append(f"v_{name.lower()}={self.initial(member.type, value)}")
            return f"_with({class_name(u)}(), {', '.join(parts)})"
        value = self.constant(init)
        if value is None:
            return self.default(t)
        return literal_code(convert_constant(value, t))

    def constant(self, init: Any) -> object | None:
        if isinstance(init, A.Name) and isinstance(init.ref, EnumRef):
            return init.ref.value
        if isinstance(init, A.EnumLit):
            enum = self.decls.types.get(init.type_name.upper())
            if isinstance(enum, T.EnumType):
                return enum.values.get(init.value_name.upper())
            return None
        if isinstance(init, A.DateLit):
            return init.value
        return self.decls.const_value(init)


_SELECTIONS = ("MAX", "MIN", "LIMIT", "SEL", "ABS")  # their result is one of their (REAL) inputs


def is_binary32(e: A.Expr | None) -> bool:
    """Is this REAL expression's value already rounded to binary32 (a variable, literal, call result,
    or a sign change or selection (MAX, MIN, LIMIT, SEL, ABS) of such values)?"""
    while isinstance(e, A.Paren):
        e = e.inner
    if isinstance(e, A.Name | A.Member | A.Index | A.RealLit):
        return True
    if isinstance(e, A.IntLit):
        return abs(e.value) <= 1 << 24  # exact in binary32
    if isinstance(e, A.Unary) and e.op in ("-", "+"):
        return _real_operand(e.operand)
    if isinstance(e, A.Call) and e.ref is not None:
        kind, target = e.ref
        if kind == "function" or (isinstance(target, BuiltinRef) and target.source is not None):
            return True
        if isinstance(target, BuiltinRef) and target.name in _SELECTIONS and e.en is None:
            values = [a.value for a in e.args if a.value is not None]
            if target.name == "SEL":
                values = values[1:]  # the selector is a BOOL
            return bool(values) and all(_real_operand(v) for v in values)
    return False


def _real_operand(e: A.Expr) -> bool:
    """A REAL (or literal) operand whose value is binary32."""
    u = T.underlying(e.ty) if e.ty is not None else None
    if isinstance(u, T.LiteralIntType | T.LiteralRealType):  # generated unrounded: exact values only
        inner = e
        while isinstance(inner, A.Paren) or (isinstance(inner, A.Unary) and inner.op in ("-", "+")):
            inner = inner.inner if isinstance(inner, A.Paren) else inner.operand
        if isinstance(inner, A.RealLit):
            return f32_const(inner.value) == inner.value
        return isinstance(inner, A.IntLit) and abs(inner.value) <= 1 << 24
    return u is T.REAL and is_binary32(e)


def _converts_to(e: A.Expr | None, target: T.Type) -> bool:
    """A conversion call (``X_TO_T``) to exactly ``target``: its code already wraps to the type."""
    while isinstance(e, A.Paren):
        e = e.inner
    if not isinstance(e, A.Call) or e.ref is None or e.en is not None:
        return False
    ref = e.ref[1]
    return isinstance(ref, BuiltinRef) and ref.source is not None and T.underlying(ref.result) is target


def _small_mod(e: A.Expr | None, target: T.Type) -> bool:
    """``a MOD c`` with a literal c > 0 whose every result (-c < r < c) fits ``target``: no wrap."""
    while isinstance(e, A.Paren):
        e = e.inner
    if not (isinstance(e, A.Binary) and e.op == "MOD" and isinstance(e.right, A.IntLit)):
        return False
    span = T.int_range(target)
    c = e.right.value
    return c > 0 and span is not None and span[0] <= -(c - 1) and c - 1 <= span[1]


def _step_side(e: A.Expr | None, target: T.Type) -> str:
    """ "high" for ``x + c`` or ``c + x``, "low" for ``x - c``, where x is a variable whose type's
    range lies inside ``target``'s and c a literal 0 < c < the range's size: the sum can leave the
    range on that side only (``n := n + 1``); else ""."""
    while isinstance(e, A.Paren):
        e = e.inner
    if not (isinstance(e, A.Binary) and e.op in ("+", "-")):
        return ""
    variable, literal = e.left, e.right
    if e.op == "+" and isinstance(variable, A.IntLit):
        variable, literal = literal, variable
    rng, span = T.int_range(variable.ty) if variable.ty is not None else None, T.int_range(target)
    if not (
        isinstance(literal, A.IntLit)
        and isinstance(variable, A.Name | A.Member | A.Index)
        and rng is not None
        and span is not None
        and span[0] <= rng[0]
        and rng[1] <= span[1]
        and 0 < literal.value < span[1] - span[0]
    ):
        return ""
    return "high" if e.op == "+" else "low"


def _is_plc_time(e: A.Expr | None) -> bool:
    while isinstance(e, A.Paren):
        e = e.inner
    if not isinstance(e, A.Call) or e.ref is None:
        return False
    target = e.ref[1]
    return isinstance(target, BuiltinRef) and target.name in ("PLC_TIME", "AGE_OF")


def output_store(destination: str, value: str, value_type: T.Type, target: T.Type) -> str:
    """The statement storing a call's output (``=>``, or what a function gives back) in
    ``destination``: a structure or an array by value into the destination's own object, as an
    assignment stores it (the destination never becomes the callee's object: a later call does not
    change it, and whatever holds its elements still holds them); anything else converted."""
    u = T.underlying(target)
    if isinstance(u, T.StructType):
        return f"{destination}._assign({value})"
    if isinstance(u, T.ArrayType):
        return f"_acopy({destination}, {value})"
    return f"{destination} = {store_code(value, value_type, target)}"


def store_code(code: str, value_type: T.Type, target: T.Type, value_expr: A.Expr | None = None) -> str:
    """Convert ``code`` (of ``value_type``) to how ``target`` stores it: wrap, round, truncate."""
    t = target
    v = T.underlying(value_type) if value_type is not None else None
    if isinstance(t, T.SubrangeType):
        return f"_subrange({code}, {t.low}, {t.high})"
    u = T.underlying(t)
    if u is T.BOOL and isinstance(v, T.LiteralIntType):
        return "True" if isinstance(value_expr, A.IntLit) and value_expr.value else "False"
    if isinstance(u, T.ElementaryType):
        if u.kind == "real":
            if isinstance(v, T.LiteralIntType | T.LiteralRealType) and isinstance(
                value_expr, A.IntLit | A.RealLit
            ):
                return py_float(convert_constant(value_expr.value, u))  # type: ignore[arg-type]
            if (
                u is not T.REAL
                and isinstance(v, T.LiteralIntType | T.LiteralRealType)
                and isinstance(value_expr, A.Unary)
                and value_expr.op == "-"
                and isinstance(value_expr.operand, A.IntLit | A.RealLit)
            ):  # a negative literal: its LREAL value, not a call of float() each time
                return f"({py_float(float(-value_expr.operand.value))})"
            if u is T.REAL:
                if v is T.REAL and is_binary32(value_expr):
                    return code
                if isinstance(v, T.ElementaryType) and v.kind in ("int", "bits") and v.bits <= 16:
                    return f"_float({code})"
                return f"_f32({code})"
            if isinstance(v, T.ElementaryType) and v.kind == "real":
                return code
            return f"_float({code})"
        if u.kind in ("int", "bits"):
            if isinstance(v, T.LiteralIntType) and isinstance(value_expr, A.IntLit):
                return repr(convert_constant(value_expr.value, u))
            if _converts_to(value_expr, u) or _small_mod(value_expr, u):
                return code
            if isinstance(value_expr, A.Name | A.Member | A.Index) and isinstance(v, T.ElementaryType):
                vr, tr = T.int_range(v), T.int_range(u)
                if vr is not None and tr is not None and tr[0] <= vr[0] and vr[1] <= tr[1]:
                    return code
            if v is T.BOOL:
                return f"_int({code})"
            return wrap_code(code, u, _step_side(value_expr, u))
        if u.kind in ("time", "date"):
            if isinstance(value_expr, A.TimeLit | A.DateLit | A.Name | A.Member | A.Index):
                return code
            if u.name == "TIME" and _is_plc_time(value_expr):
                return code  # the scan's logical time and an input's age are TIMEs by construction
            if _converts_to(value_expr, u):
                return code
            return wrap_code(code, u)
        return code
    if isinstance(u, T.StringType):
        if isinstance(v, T.StringType) and v.length <= u.length:
            return code
        return f"({code})[:{u.length}]"
    return code
