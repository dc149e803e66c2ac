"""From registers to an engineering value and back, with the checks that make a value BAD.

Input: raw registers -> number (word/byte order) -> "not implemented" sentinels, NaN -> scale factor
(a power of ten read from the device) and fixed scale/offset -> sign -> plausibility range -> the ST
variable's type. Output: the reverse, clamped into the configured limits and the register type.
Problems are short, stable sentences (they become alarm texts; the offending value goes to the log).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...errors import PlcrunError
from .codec import (
    FLOAT_TYPES,
    INTEGER_RANGES,
    SUNSPEC_SF_NOT_IMPLEMENTED,
    clamp_to_type,
    decode,
    decode_string,
    encode,
    is_not_implemented,
)
from .model import BIT_TABLES, PointSpec

MAX_SCALE_EXPONENT = 10  # SunSpec scale factors are small powers of ten; anything else is a broken device
_INTEGER_ST = frozenset(
    {"SINT", "INT", "DINT", "LINT", "USINT", "UINT", "UDINT", "ULINT", "BYTE", "WORD", "DWORD", "LWORD"}
)


class PointProblem(PlcrunError):
    """The device answered, but the value is unusable (the point goes BAD)."""

    def __init__(self, problem: str, detail: str = "") -> None:
        self.problem = problem
        self.detail = detail
        super().__init__(problem)


def default_value(point: PointSpec) -> object:
    """What a variable holds before the first good value arrives."""
    if point.yields_bool or point.table in BIT_TABLES:
        return False
    if point.dtype == "string":
        return ""
    if point.st_type in _INTEGER_ST:
        return 0
    return 0.0


def scale_power(sf: int) -> float:
    """10^sf, checking the scale-factor register first."""
    if sf == SUNSPEC_SF_NOT_IMPLEMENTED:
        raise PointProblem("scale factor register says 'not implemented' (0x8000)")
    if not -MAX_SCALE_EXPONENT <= sf <= MAX_SCALE_EXPONENT:
        raise PointProblem(f"implausible scale factor {sf} (a power of ten between -10 and 10 expected)")
    return 10.0**sf


def _apply_power(raw: int | float, sf: int) -> float:
    power = scale_power(sf)
    # dividing by 10^n is exact where multiplying by 10^-n is not (4999 * 0.01 != 49.99)
    return raw / (10.0**-sf) if sf < 0 else raw * power


def decode_input(point: PointSpec, words: Sequence[int] | Sequence[bool], sf: int | None) -> object:
    """The engineering value of ``point`` from its registers (and scale-factor register, if any)."""
    if point.table in BIT_TABLES:
        return bool(words[0])
    if point.dtype == "string":
        return decode_string([int(w) for w in words])
    if point.dtype == "bool":
        return int(words[0]) != 0
    raw = decode([int(w) for w in words], point.dtype, point.word_order, point.byte_order)
    if point.bit is not None:
        return bool((int(raw) >> point.bit) & 1)
    if point.true_values is not None:
        return int(raw) in point.true_values
    if point.dtype in FLOAT_TYPES:
        if math.isnan(raw):
            raise PointProblem("not a number (NaN): the device has no valid value")
        if math.isinf(raw):
            raise PointProblem("infinite value")
    elif point.sunspec_sentinels and is_not_implemented(raw, point.dtype):
        raise PointProblem(f"'not implemented' value {_hex(int(raw), point.dtype)}")
    if point.sentinel is not None and point.dtype not in FLOAT_TYPES and _matches(int(raw), point):
        raise PointProblem(f"'not implemented' value {point.sentinel}")
    value: int | float = raw
    if sf is not None:
        value = _apply_power(raw, sf)
    if point.scale != 1.0 or point.offset != 0.0:
        value = value * point.scale + point.offset
    if point.negate:
        value = -value
    if point.plausible is not None:
        low, high = point.plausible
        if not low <= value <= high:
            raise PointProblem(f"value outside the plausible range {low:g}..{high:g}", f"read {value:g}")
    if point.st_type in _INTEGER_ST:
        return int(value)
    if point.st_type is None and point.is_integer_valued and not point.negate:
        return int(value)
    return float(value)


def _matches(raw: int, point: PointSpec) -> bool:
    sentinel = point.sentinel
    low, _high = INTEGER_RANGES[point.dtype]
    if raw == sentinel:
        return True
    # a sentinel written as an unsigned bit pattern (0x8000) for a signed type
    return low < 0 and raw < 0 and raw + (1 << (8 * 2 * point.registers)) == sentinel


def _hex(raw: int, dtype: str) -> str:
    bits = {"int16": 16, "uint16": 16, "int32": 32, "uint32": 32}.get(dtype, 64)
    return f"0x{raw & ((1 << bits) - 1):0{bits // 4}X}"


def encode_output(point: PointSpec, value: object, sf: int | None) -> tuple[list[int] | list[bool], bool]:
    """Registers (or coil states) for an output value, and whether it had to be clamped."""
    if point.table == "coil":
        return [bool(value)], False
    if point.dtype == "bool":
        return [1 if value else 0], False
    if isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(value)  # type: ignore[arg-type]  # numpy scalars and the like
        except (TypeError, ValueError):
            raise PointProblem(f"cannot write {type(value).__name__} to a {point.dtype} register") from None
    if not math.isfinite(number):
        raise PointProblem("refusing to write a value that is not a finite number")
    clamped = False
    if point.limits is not None:
        low, high = point.limits
        if not low <= number <= high:
            number, clamped = min(max(number, low), high), True
    if point.negate:
        number = -number
    number = (number - point.offset) / point.scale
    if sf is not None:
        number = number / scale_power(sf)
    raw, type_clamped = clamp_to_type(number, point.dtype)
    return encode(raw, point.dtype, point.word_order, point.byte_order), clamped or type_clamped
