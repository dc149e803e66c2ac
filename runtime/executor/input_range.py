"""Whether a driver's value fits the ST type of the variable it is copied into.

The compiler's converters follow the hardware: a REAL saturates to ±infinity, an integer wraps
around. That is right inside a program and wrong at its edge: an EVerest discharge limit of 1e39
would reach the program as a GOOD infinity (and an allocation dividing by it as NaN for every
car), a meter register of 70,000 as a GOOD 4,464 in an INT. The process image asks ``misfit`` first;
a value that does not fit makes that one input BAD and leaves the variable as it was.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

from ..compiler import st_types as T

Check = Callable[[object], str | None]
_F32 = struct.Struct("f")


def _real_check(name: str, single: bool) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None  # not a number: the converter decides (and refuses what it cannot take)
        try:
            number = float(value)
        except OverflowError:
            return f"{_short(value)} is outside the range of {name}"
        if not math.isfinite(number):
            return f"{_short(value)} is not a finite {name}"
        if single and math.isinf(_F32.unpack(_F32.pack(number))[0]):  # rounds beyond the largest REAL
            return f"{_short(value)} is outside the range of {name}"
        return None

    return check


def _int_check(name: str, low: int, high: int) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, float):
            if not math.isfinite(value):
                return f"{value} is not a finite {name}"
            value = round(value)
        if isinstance(value, int) and not low <= value <= high:
            return f"{_short(value)} is outside {name} ({low}..{high})"
        return None

    return check


def misfit_check(t: T.Type) -> Check | None:
    """A function saying why a value does not fit ``t`` (None when it does), or None when every
    value the converter accepts fits (BOOL, strings, enumerations, structures)."""
    u = T.underlying(t)
    if u is T.REAL or u is T.LREAL:
        return _real_check(u.name, u is T.REAL)
    if isinstance(u, T.ElementaryType) and u.kind in ("int", "bits"):
        low, high = T.int_range(t) or (u.minimum, u.maximum)
        return _int_check(getattr(t, "name", u.name) or u.name, low, high)
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"
