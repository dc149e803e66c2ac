"""Run-time support for generated code: the scan context and the helpers generated code calls.

Generated code runs with no Python builtins; everything it may call is listed in ``NAMESPACE``.
Integer wrap-around and binary32 rounding are inlined by the code generator where that is cheaper;
the helpers here cover the rest. A runtime fault raises ``STFault`` (or a Python arithmetic error)
from a line of generated code whose line number is the ST line, so the executor can name it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from ..compiler.literals import format_duration
from ..errors import PlcrunError


class STFault(PlcrunError):
    """A runtime fault of ST code (index out of bounds, subrange violation, ...)."""


class ScanAborted(BaseException):
    """Raised inside a scan that exceeded its budget (runaway loop); BaseException so ST cannot mask it."""


class TaskInfo:
    """Per-task figures that ST reads through TASK_* functions; the executor keeps them current."""

    __slots__ = ("last_exec_ns", "name", "overruns", "reset_requested", "scans")

    def __init__(self, name: str) -> None:
        self.name = name
        self.overruns = 0
        self.scans = 0
        self.last_exec_ns = 0
        self.reset_requested = False


class ScanContext:
    """What generated code knows about the running scan: logical time, task, qualities, budget."""

    __slots__ = (
        "clock_now",
        "loop_budget",
        "loop_chunks",
        "now",
        "qualities",
        "stamps",
        "task",
        "time_limit",
        "wall_ns",
    )

    LOOP_CHUNK = 4096

    def __init__(self) -> None:
        self.now = 0  # logical time of the current scan, ns (the task's scan clock)
        self.task = TaskInfo("")
        self.qualities: dict[str, int] = {}  # path -> Quality of the bound input
        self.stamps: dict[str, int] = {}  # path -> acquisition time of its value (executor clock, ns)
        self.clock_now = 0  # executor clock at the start of the scan (ns), for AGE_OF
        self.loop_budget = 2_000_000  # WHILE/REPEAT iterations allowed per scan (virtual time)
        self.loop_chunks = 0
        self.time_limit: int | None = None  # wall-clock ns deadline for runaway loops (real time)
        self.wall_ns: Callable[[], int] | None = None

    def begin_scan(self, now_ns: int, task: TaskInfo) -> None:
        self.now = now_ns
        self.task = task
        self.loop_chunks = 0

    def loop_check(self) -> int:
        """Called every LOOP_CHUNK loop iterations; aborts a scan stuck in a loop."""
        self.loop_chunks += 1
        if self.loop_chunks * self.LOOP_CHUNK > self.loop_budget:
            raise ScanAborted(f"loop ran more than {self.loop_budget} iterations in one scan")
        if self.time_limit is not None and self.wall_ns is not None and self.wall_ns() > self.time_limit:
            raise ScanAborted("scan exceeded its watchdog time inside a loop")
        return self.LOOP_CHUNK

    def quality(self, path: str) -> int:
        # generated code reads ``qualities.get(path, 4)`` itself (QUALITY_OF, no call)
        return self.qualities.get(path, 4)  # 4 = UNBOUND

    def age(self, path: str) -> int:  # generated code (AGE_OF) inlines this
        stamp = self.stamps.get(path)
        return 0 if stamp is None else max(0, self.clock_now - stamp)


def enter_interpreter() -> None:
    """Does nothing, in Python: a native build (compiler/native_source.py) calls it every few thousand
    FOR-loop passes, because entering the interpreter is where CPython delivers an asynchronous
    exception (the runaway backstop's abort) and hands the GIL to waiting threads; C code never does."""


_F32 = struct.Struct("f")


def f32(value: float) -> float:
    """Round to IEEE-754 binary32 (REAL); out-of-range values become +-inf like the hardware."""
    try:
        return _F32.unpack(_F32.pack(value))[0]  # type: ignore[no-any-return]
    except OverflowError:
        return math.copysign(math.inf, value)


def make_f32_cell() -> memoryview[float]:
    """One program state's private 4-byte float32 cell (``_F32`` in generated code, which stores a
    REAL assignment through it: ``_F32[0] = value; x = _F32[0]``, no call)."""
    return memoryview(bytearray(4)).cast("f")


def make_f32(cell: memoryview[float] | None = None) -> Callable[[float], float]:
    """A faster binary32 rounding for one program state (a private 4-byte cell, so no thread shares
    it): storing into a float32 memoryview rounds to nearest and saturates to +-inf."""
    box = make_f32_cell() if cell is None else cell

    def f32_cell(value: float) -> float:
        box[0] = value
        return box[0]

    return f32_cell


def idiv(a: int, b: int) -> int:
    """Integer division truncating toward zero (ZeroDivisionError on 0)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def imod(a: int, b: int) -> int:
    """MOD with the sign of the dividend."""
    return a - b * idiv(a, b)


def oob(index: int, low: int, high: int) -> int:
    raise STFault(f"array index {index} is outside {low}..{high}")


def subrange_fault(value: int, low: int, high: int) -> int:
    raise STFault(f"value {value} is outside the subrange {low}..{high}")


def check_subrange(value: int, low: int, high: int) -> int:
    if low <= value <= high:
        return value
    raise STFault(f"value {value} is outside the subrange {low}..{high}")


def for_range(start: int, end: int, step: int) -> range:
    if step == 0:
        raise STFault("FOR loop step is 0")
    return range(start, end + 1, step) if step > 0 else range(start, end - 1, step)


def real_to_int(value: float) -> int:
    """Round to nearest, ties to even (IEEE-754 default rounding)."""
    if value != value or value in (math.inf, -math.inf):
        raise STFault(f"cannot convert {value} to an integer")
    return round(value)


def trunc(value: float) -> int:
    if value != value or value in (math.inf, -math.inf):
        raise STFault(f"cannot convert {value} to an integer")
    return int(value)


def mux(k: int, values: Sequence[Any]) -> Any:
    if 0 <= k < len(values):
        return values[k]
    raise STFault(f"MUX selector {k} is outside 0..{len(values) - 1}")


def limit(mn: Any, value: Any, mx: Any) -> Any:
    return mn if value < mn else (mx if value > mx else value)


def expt(base: float, exponent: float) -> float:
    try:
        return float(float(base) ** exponent)
    except ZeroDivisionError:
        raise STFault("0 raised to a negative power") from None
    except OverflowError:
        return math.inf


def _real1(fn: Callable[[float], float]) -> Callable[[float], float]:
    def safe(x: float) -> float:
        try:
            return fn(x)
        except ValueError:
            return math.nan
        except OverflowError:
            return math.inf

    return safe


def ln(x: float) -> float:
    if x == 0:
        return -math.inf
    return math.log(x) if x > 0 else math.nan


def log10(x: float) -> float:
    if x == 0:
        return -math.inf
    return math.log10(x) if x > 0 else math.nan


def shl(value: int, n: int, bits: int) -> int:
    return (value << n) & ((1 << bits) - 1) if n < bits else 0


def shr(value: int, n: int, bits: int) -> int:
    return (value & ((1 << bits) - 1)) >> n


def rol(value: int, n: int, bits: int) -> int:
    mask = (1 << bits) - 1
    value &= mask
    n %= bits
    return ((value << n) | (value >> (bits - n))) & mask


def ror(value: int, n: int, bits: int) -> int:
    mask = (1 << bits) - 1
    value &= mask
    n %= bits
    return ((value >> n) | (value << (bits - n))) & mask


def wrap(value: int, low: int, span: int) -> int:
    return (value - low) % span + low


# ------------------------------------------------------------------ strings (positions are 1-based)
def st_left(s: str, n: int) -> str:
    return s[: max(0, n)]


def st_right(s: str, n: int) -> str:
    return s[len(s) - n :] if n > 0 else ""


def st_mid(s: str, n: int, p: int) -> str:
    if p < 1 or n <= 0:
        return ""
    return s[p - 1 : p - 1 + n]


def st_insert(s: str, ins: str, p: int) -> str:
    p = max(0, min(p, len(s)))
    return s[:p] + ins + s[p:]


def st_delete(s: str, n: int, p: int) -> str:
    if p < 1 or n <= 0:
        return s
    return s[: p - 1] + s[p - 1 + n :]


def st_replace(s: str, new: str, n: int, p: int) -> str:
    p = max(1, p)
    return s[: p - 1] + new + s[p - 1 + max(0, n) :]


def st_find(s: str, sub: str) -> int:
    return s.find(sub) + 1 if sub else 0


def fmt_real(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") and "e" not in text else text


def fmt_bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def parse_int(text: str) -> int:
    cleaned = text.strip().replace("_", "")
    try:
        if "#" in cleaned:
            base, digits = cleaned.split("#", 1)
            return int(digits, int(base))
        return int(cleaned)
    except ValueError:
        return 0


def parse_real(text: str) -> float:
    try:
        return float(text.strip().replace("_", ""))
    except ValueError:
        return 0.0


def acopy(dst: list[Any], src: list[Any]) -> None:
    """Copy an array value into another of the same shape (structures and nested arrays by value)."""
    if not dst:
        return
    first = dst[0]
    if isinstance(first, list):
        for d, s in zip(dst, src, strict=True):
            acopy(d, s)
    elif hasattr(first, "_assign"):
        for d, s in zip(dst, src, strict=True):
            d._assign(s)
    else:
        dst[:] = src


def clone(value: Any) -> Any:
    """A deep copy of an array or structure value (for structured inputs passed by value)."""
    if isinstance(value, list):
        return (
            [clone(item) for item in value]
            if value and not isinstance(value[0], int | float | str)
            else list(value)
        )
    if hasattr(value, "_assign"):
        return type(value)()._assign(value)
    return value


def with_members(obj: Any, **members: Any) -> Any:
    """Set initial member values of a freshly built structure or function block instance."""
    for name, value in members.items():
        setattr(obj, name, value)
    return obj


def reset_overruns(rt: ScanContext) -> bool:
    rt.task.overruns = 0
    rt.task.reset_requested = True
    return True


def memo(table: list[tuple[object, object]], key: object, value: object) -> object:
    """Remember a conversion's argument and result at its call site (one tuple: atomic). Kept for
    code generated before ``memo_name`` (bench/codegen_differential.py runs it with this module)."""
    table[0] = (key, value)
    return value


def memo_name(namespace: dict[str, Any], table: str, key: object, value: object) -> object:
    """Remember a conversion's argument and result at its call site: one tuple bound to the
    site's module name. Kept for code generated before ``remember`` (bench/codegen_differential.py
    runs it with this module)."""
    namespace[table] = (key, value)
    return value


def remember(namespace: dict[str, Any], key_name: str, value_name: str, key: object, value: object) -> object:
    """Remember a conversion's argument and result at its call site: two module names of the
    state's namespace, the result bound first (only the state's scan thread runs generated code)."""
    namespace[value_name] = value
    namespace[key_name] = key
    return value


class PathTable(dict[Any, str]):
    """The process-image paths of one QUALITY_OF/AGE_OF site in a loop, by index (or element
    offset), for one instance: made by ``make`` the first time an index is asked for, after that
    one subscript (no ``get`` call and no ``or`` in the loop)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[Any], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Any) -> str:
        path = self[key] = self.make(key)
        return path


NAMESPACE: dict[str, object] = {
    "_memo": memo,
    "_memo_name": memo_name,
    "_remember": remember,
    "_PathTable": PathTable,
    "_acopy": acopy,
    "_clone": clone,
    "_with": with_members,
    "_LOOP_CHUNK": ScanContext.LOOP_CHUNK,
    "_reset_overruns": reset_overruns,
    "_f32": f32,
    "_idiv": idiv,
    "_imod": imod,
    "_oob": oob,
    "_subrange": check_subrange,
    "_for_range": for_range,
    "_real_to_int": real_to_int,
    "_trunc": trunc,
    "_mux": mux,
    "_limit": limit,
    "_expt": expt,
    "_sqrt": _real1(math.sqrt),
    "_ln": ln,
    "_log": log10,
    "_exp": _real1(math.exp),
    "_sin": _real1(math.sin),
    "_cos": _real1(math.cos),
    "_tan": _real1(math.tan),
    "_asin": _real1(math.asin),
    "_acos": _real1(math.acos),
    "_atan": _real1(math.atan),
    "_atan2": math.atan2,
    "_shl": shl,
    "_shr": shr,
    "_rol": rol,
    "_ror": ror,
    "_wrap": wrap,
    "_left": st_left,
    "_right": st_right,
    "_mid": st_mid,
    "_insert": st_insert,
    "_delete": st_delete,
    "_replace": st_replace,
    "_find": st_find,
    "_fmt_real": fmt_real,
    "_fmt_bool": fmt_bool,
    "_fmt_time": format_duration,
    "_parse_int": parse_int,
    "_parse_real": parse_real,
    "_abs": abs,
    "_min": min,
    "_max": max,
    "_float": float,
    "_int": int,
    "_bool": bool,
    "_str": str,
    "_len": len,
    "_range": range,
    "_round": round,
    "_list": list,
    "_nan": math.nan,
    "_STFault": STFault,
}
