"""The standard functions of IEC 61131-3 (and a few system functions): typing and Python emission.

Arithmetic, comparison and logic functions (ADD, GT, AND, ...) are rewritten into operators by the
checker; this module covers the rest. ``type_builtin`` returns a ``BuiltinRef`` that the code
generator turns into Python with ``emit_builtin``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from . import st_types as T

# Functions rewritten into operators: name -> (operator, variadic?)
OPERATOR_FUNCTIONS = {
    "ADD": ("+", True),
    "MUL": ("*", True),
    "SUB": ("-", False),
    "DIV": ("/", False),
    "MOD": ("MOD", False),
    "EXPT": ("**", False),
    "AND": ("AND", True),
    "OR": ("OR", True),
    "XOR": ("XOR", True),
    "GT": (">", True),
    "GE": (">=", True),
    "EQ": ("=", True),
    "LE": ("<=", True),
    "LT": ("<", True),
    "NE": ("<>", False),
    "ADD_TIME": ("+", False),
    "SUB_TIME": ("-", False),
    "MUL_TIME": ("*", False),
    "DIV_TIME": ("/", False),
    "ADD_TOD_TIME": ("+", False),
    "ADD_DT_TIME": ("+", False),
    "SUB_DATE_DATE": ("-", False),
    "SUB_TOD_TIME": ("-", False),
    "SUB_TOD_TOD": ("-", False),
    "SUB_DT_TIME": ("-", False),
    "SUB_DT_DT": ("-", False),
}

REAL_FUNCTIONS = {
    "SQRT": "_sqrt",
    "LN": "_ln",
    "LOG": "_log",
    "EXP": "_exp",
    "SIN": "_sin",
    "COS": "_cos",
    "TAN": "_tan",
    "ASIN": "_asin",
    "ACOS": "_acos",
    "ATAN": "_atan",
}

STRING_FUNCTIONS: dict[str, tuple[list[str], str]] = {
    # name: (parameter kinds, result kind) with S = string, I = integer
    "LEN": (["S"], "I"),
    "LEFT": (["S", "I"], "S"),
    "RIGHT": (["S", "I"], "S"),
    "MID": (["S", "I", "I"], "S"),
    "INSERT": (["S", "S", "I"], "S"),
    "DELETE": (["S", "I", "I"], "S"),
    "REPLACE": (["S", "S", "I", "I"], "S"),
    "FIND": (["S", "S"], "I"),
}

# Formal parameter names of the standard functions, for calls like LIMIT(MN := 0, IN := x, MX := 9).
PARAMETER_NAMES: dict[str, list[str]] = {
    "SEL": ["G", "IN0", "IN1"],
    "LIMIT": ["MN", "IN", "MX"],
    "SHL": ["IN", "N"],
    "SHR": ["IN", "N"],
    "ROL": ["IN", "N"],
    "ROR": ["IN", "N"],
    "LEN": ["IN"],
    "LEFT": ["IN", "L"],
    "RIGHT": ["IN", "L"],
    "MID": ["IN", "L", "P"],
    "INSERT": ["IN1", "IN2", "P"],
    "DELETE": ["IN", "L", "P"],
    "REPLACE": ["IN1", "IN2", "L", "P"],
    "FIND": ["IN1", "IN2"],
    "EXPT": ["IN1", "IN2"],
    "ATAN2": ["Y", "X"],
}

SYSTEM_FUNCTIONS = {
    "PLC_TIME": "the logical time of the current scan (TIME since start)",
    "QUALITY_OF": "the data quality of an I/O-bound variable (IO_QUALITY)",
    "AGE_OF": "the age of an I/O-bound variable's value (TIME)",
    "TASK_OVERRUNS": "the number of overruns of the calling task (UDINT)",
    "TASK_RESET_OVERRUNS": "resets the overrun counter of the calling task (returns TRUE)",
    "TASK_SCAN_COUNT": "the number of scans the calling task has run (ULINT)",
    "TASK_LAST_EXEC_TIME": "the execution time of the calling task's previous scan (TIME)",
}

IO_QUALITY = T.EnumType(
    "IO_QUALITY",
    {"GOOD": 0, "STALE": 1, "BAD": 2, "COMM_LOST": 3, "UNBOUND": 4},
    {"GOOD": "GOOD", "STALE": "STALE", "BAD": "BAD", "COMM_LOST": "COMM_LOST", "UNBOUND": "UNBOUND"},
)

_CONVERSION = re.compile(r"^(?:([A-Z_]+?)_)?(TO|TRUNC)_([A-Z_]+)$")
_TYPE_NAMES = {**T.ELEMENTARY, **T.ELEMENTARY_ALIASES, "STRING": T.STRING, "WSTRING": T.WSTRING}


@dataclass
class BuiltinRef:
    """A checked call of a standard function."""

    name: str
    result: T.Type
    arg_types: list[T.Type]
    source: T.Type | None = None  # conversions: the source type
    extra: dict[str, object] = field(default_factory=dict)


def conversion_types(name: str) -> tuple[T.Type | None, str, T.Type] | None:
    """``INT_TO_REAL`` -> (INT, "TO", REAL); ``TO_REAL`` -> (None, "TO", REAL); else None."""
    m = _CONVERSION.match(name)
    if m is None:
        return None
    source_name, how, target_name = m.groups()
    target = _TYPE_NAMES.get(target_name)
    if target is None:
        return None
    source = None
    if source_name is not None:
        source = _TYPE_NAMES.get(source_name)
        if source is None:
            return None
    return source, how, target


def is_builtin(name: str) -> bool:
    upper = name.upper()
    return (
        upper in OPERATOR_FUNCTIONS
        or upper in REAL_FUNCTIONS
        or upper in STRING_FUNCTIONS
        or upper in SYSTEM_FUNCTIONS
        or upper in ("ABS", "ATAN2", "SEL", "MAX", "MIN", "LIMIT", "MUX", "SHL", "SHR", "ROL", "ROR")
        or upper in ("NOT", "TRUNC", "CONCAT")
        or conversion_types(upper) is not None
    )


# ------------------------------------------------------------------ emission


def wrap_code(code: str, t: T.Type, side: str = "") -> str:
    """Python code that wraps an integer expression to the range of ``t``. ``side`` "high" or
    "low": the value can only leave the range on that side (a variable of the range plus or minus
    a positive literal), so only that bound is tested."""
    rng = T.int_range(t)
    if rng is None:
        return code
    low, high = rng
    span = high - low + 1
    if low == 0:
        return f"(({code}) & {span - 1})"
    # signed: a range test is cheaper than the offset-mask-offset arithmetic for the values that
    # fit, which are nearly all; ``_w`` is a scratch local, read right after each assignment
    test = f"{low} <= (_w := {code}) <= {high}"
    if side == "high":
        test = f"(_w := {code}) <= {high}"
    elif side == "low":
        test = f"(_w := {code}) >= {low}"
    return f"(_w if {test} else ((_w + {-low}) & {span - 1}) - {-low})"


_ROUNDED = 4.6e18  # |x| up to this rounds inline; the result fits a 64-bit integer


def real_to_int_code(code: str, target: T.Type | None = None) -> str:
    """REAL -> integer rounding to nearest even, wrapped to ``target``; the helper (and its fault on
    NaN or infinity) only outside +-4.6e18, and for a 64-bit target the wrap only there too (``_v``
    is a scratch local, read right after its assignment)."""
    rng = T.int_range(target) if target is not None else None
    if rng is not None and rng[0] <= -_ROUNDED and rng[1] >= _ROUNDED:
        slow = wrap_code("_real_to_int(_v)", target) if target is not None else "_real_to_int(_v)"
        return f"(_round(_v) if {-_ROUNDED} <= (_v := {code}) <= {_ROUNDED} else {slow})"
    inline = f"(_round(_v) if {-_ROUNDED} <= (_v := {code}) <= {_ROUNDED} else _real_to_int(_v))"
    return wrap_code(inline, target) if target is not None else inline


def idiv_code(code: str, divisor: int) -> str:
    """Integer division by a positive constant, truncating toward zero, without a call."""
    if divisor == 1:
        return code
    return f"(_v // {divisor} if (_v := {code}) >= 0 else -(-_v // {divisor}))"


def imod_code(code: str, divisor: int) -> str:
    """MOD by a positive constant (the sign of the dividend), without a call."""
    return f"(_v % {divisor} if (_v := {code}) >= 0 else -(-_v % {divisor}))"


def convert_code(code: str, source: T.Type, target: T.Type, how: str = "TO") -> str:
    """Python code converting a value of ``source`` type to ``target`` (explicit conversion)."""
    s = T.underlying(source)
    t = T.underlying(target)
    if isinstance(t, T.StringType):
        return _to_string(code, s)
    if isinstance(s, T.StringType):
        if t is T.BOOL:
            return f"(({code}).strip().upper() in ('TRUE', '1'))"
        if T.is_real_like(t):
            return _round_real(f"_parse_real({code})", t)
        if isinstance(t, T.ElementaryType) and t.kind == "time":
            return wrap_code(f"({wrap_code(f'_parse_int({code})', t)} * 1000000)", t)
        return wrap_code(f"_parse_int({code})", t)
    if isinstance(s, T.EnumType):
        s = T.DINT
    if t is T.BOOL:
        return f"(({code}) != 0)"
    s_kind = s.kind if isinstance(s, T.ElementaryType) else ("int" if T.is_integer_like(s) else "real")
    t_el = t if isinstance(t, T.ElementaryType) else T.DINT
    if t_el.kind == "real":
        if s_kind == "time":
            return _round_real(f"(({code}) / {_time_unit(s)})", t_el)
        if s_kind == "real":
            return _round_real(code, t_el)
        return _round_real(f"_float({code})", t_el)
    if t_el.kind == "time" or t_el.kind == "date":
        return _to_time(code, s, s_kind, t_el)
    # integer or bit string target
    if s_kind == "real":
        if how == "TRUNC":
            return wrap_code(f"_trunc({code})", t_el)
        return real_to_int_code(code, t_el)
    if s_kind == "time":
        return wrap_code(idiv_code(code, _time_unit(s)), t_el)
    if s_kind == "date":
        return wrap_code(idiv_code(code, 1000000000), t_el)
    if s_kind == "bool":
        return f"_int({code})"
    return wrap_code(code, t_el)


def _time_unit(t: T.Type) -> int:
    """TIME converts to and from integers in milliseconds, LTIME in nanoseconds."""
    return 1 if getattr(t, "name", "") == "LTIME" else 1_000_000


def _to_time(code: str, source: T.Type, s_kind: str, target: T.ElementaryType) -> str:
    if s_kind in ("time", "date"):
        if target.name == "DATE" and getattr(source, "name", "") == "DT":
            return f"(({code}) - (({code}) % 86400000000000))"
        if target.name == "TOD" and getattr(source, "name", "") == "DT":
            return f"(({code}) % 86400000000000)"
        return code
    if target.kind == "date":
        factor = 1_000_000 if target.name == "TOD" else 1_000_000_000
        if s_kind == "real":
            return real_to_int_code(f"({code}) * {factor}", target)
        return wrap_code(f"(({code}) * {factor})", target)
    unit = _time_unit(target)
    if s_kind == "real":
        return real_to_int_code(f"({code}) * {unit}", target)
    return wrap_code(f"(_int({code}) * {unit})", target)


def _to_string(code: str, source: T.Type) -> str:
    if source is T.BOOL:
        return f"_fmt_bool({code})"
    if T.is_real_like(source):
        return f"_fmt_real({code})"
    if isinstance(source, T.ElementaryType) and source.kind == "time":
        return f"_fmt_time({code})"
    if isinstance(source, T.StringType):
        return code
    return f"_str({code})"


def _round_real(code: str, t: T.Type) -> str:
    return f"_f32({code})" if t is T.REAL else code


def emit_builtin(ref: BuiltinRef, args: list[str], self_path: Callable[[int], str] | None = None) -> str:
    """Python expression for a checked builtin call; ``args`` are already-converted argument codes."""
    name = ref.name
    result = ref.result
    if name in REAL_FUNCTIONS:
        return _round_real(f"{REAL_FUNCTIONS[name]}({args[0]})", result)
    if name == "ATAN2":
        return _round_real(f"_atan2({args[0]}, {args[1]})", result)
    if name == "ABS":
        return f"_abs({args[0]})"
    if name == "SEL":
        return f"({args[2]} if {args[0]} else {args[1]})"
    if name in ("MAX", "MIN"):
        return f"_{name.lower()}({', '.join(args)})"
    if name == "LIMIT":
        return f"_limit({args[0]}, {args[1]}, {args[2]})"
    if name == "MUX":
        return f"_mux({args[0]}, ({', '.join(args[1:])},))"
    if name in ("SHL", "SHR", "ROL", "ROR"):
        bits = ref.extra["bits"]
        inner = f"_{name.lower()}({args[0]}, {args[1]}, {bits})"
        return wrap_code(inner, result) if isinstance(result, T.ElementaryType) and result.signed else inner
    if name == "CONCAT":
        return "(" + " + ".join(args) + ")"
    if name == "LEN":
        return f"_len({args[0]})"
    if name in STRING_FUNCTIONS:
        return f"_{name.lower()}({', '.join(args)})"
    if name == "PLC_TIME":
        return "_rt.now"
    if name == "TASK_OVERRUNS":
        return "_rt.task.overruns"
    if name == "TASK_SCAN_COUNT":
        return "_rt.task.scans"
    if name == "TASK_LAST_EXEC_TIME":
        return "_rt.task.last_exec_ns"
    if name == "TASK_RESET_OVERRUNS":
        return "_reset_overruns(_rt)"
    if name == "QUALITY_OF":
        return f"_rt.qualities.get({args[0]}, 4)"  # ScanContext.quality without its call (4 = UNBOUND)
    if name == "AGE_OF":
        return f"_rt.age({args[0]})"
    if ref.source is not None:
        how = str(ref.extra.get("how", "TO"))
        return convert_code(args[0], ref.source, result, how)
    raise AssertionError(f"no emitter for builtin {name}")
