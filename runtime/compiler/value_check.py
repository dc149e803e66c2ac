"""Values typed into the dashboard (or sent by a script) checked against a variable's ST type.

The checks are stricter than the executor's own conversion, which wraps integers and truncates
strings as ST assignments do: an operator who types 70000 into an INT gets told so instead of
seeing -1536. ``parse_value`` returns the value in its JSON form (TIME as ``T#...``, enums by name),
which is what the journal records and what the executor converts at the scan boundary.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import PlcrunError
from ..state.program import coerce, to_json
from . import st_types as T
from .literals import LiteralError, parse_duration

REAL_MAX = 3.4028234663852886e38
_TRUE = ("TRUE", "1")
_FALSE = ("FALSE", "0")


class ValueProblem(PlcrunError, ValueError):
    """A value that does not fit the variable's type; the message says why."""


def parse_value(value: Any, t: T.Type) -> Any:
    """The JSON form of ``value`` as a ``t``; raises ``ValueProblem``."""
    if value is None:
        raise ValueProblem(f"a value is needed for {t.display}")
    u = T.underlying(t)
    checked: object
    if isinstance(u, T.EnumType):
        checked = _enum(value, u)
    elif u is T.BOOL:
        checked = _bool(value)
    elif isinstance(u, T.StringType):
        checked = _string(value, u)
    elif T.is_real_like(u):
        checked = _real(value, u)
    elif isinstance(u, T.ElementaryType) and u.kind == "time":
        checked = _time(value, u)
    elif T.is_integer_like(u) or (isinstance(u, T.ElementaryType) and u.kind == "date"):
        checked = _integer(value, t)
    else:
        raise ValueProblem(f"values of type {t.display} cannot be written")
    try:
        stored = coerce(checked, t)
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueProblem(f"{value!r} is not a valid {t.display}: {error}") from None
    return to_json(stored, t)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = _text(value)
    if text is not None and text.upper() in _TRUE + _FALSE:
        return text.upper() in _TRUE
    raise ValueProblem(f"{value!r} is not a BOOL: use TRUE or FALSE")


def _real(value: Any, u: T.Type) -> float:
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = _text(value)
        try:
            number = float(text) if text else math.nan
        except ValueError:
            number = math.nan
        if text is None or (math.isnan(number) and text.lower() != "nan"):
            raise ValueProblem(f"{value!r} is not a number")
    if not math.isfinite(number):
        raise ValueProblem(f"{value!r}: only finite numbers can be written")
    if u is T.REAL and abs(number) > REAL_MAX:
        raise ValueProblem(f"{value!r} is too large for a REAL")
    return number


def _integer(value: Any, t: T.Type) -> int:
    if isinstance(value, bool):
        raise ValueProblem(f"{value!r} is not an integer")
    number: int
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        number = _parse_int_text(value, t)
    limits = T.int_range(t)
    if limits is not None and not limits[0] <= number <= limits[1]:
        raise ValueProblem(f"{number} is outside {limits[0]}..{limits[1]} ({t.display})")
    return number


def _parse_int_text(value: Any, t: T.Type) -> int:
    text = _text(value)
    if not text:
        raise ValueProblem(f"{value!r} is not an integer ({t.display})")
    digits = text.replace("_", "")
    try:
        if "#" in digits:  # IEC based literal: 16#FF, 2#1010, 8#17
            base, _, body = digits.partition("#")
            return int(body, int(base))
        return int(digits)
    except ValueError:
        raise ValueProblem(f"{value!r} is not an integer ({t.display})") from None


def _string(value: Any, u: T.StringType) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"{value!r} is not a string")
    if len(value) > u.length:
        raise ValueProblem(f"the text has {len(value)} characters; {u.display} holds at most {u.length}")
    return value


def _time(value: Any, u: T.ElementaryType) -> str:
    text = _text(value)
    if not text:
        raise ValueProblem(f"{value!r}: write {u.name} values as a duration such as T#1s500ms")
    literal = text if "#" in text else "T#" + text
    try:
        parse_duration(literal)
    except LiteralError as error:
        raise ValueProblem(str(error)) from None
    return literal


def _enum(value: Any, u: T.EnumType) -> str | int:
    text = _text(value)
    if text is not None:
        if text.upper() in u.values:
            return text
        raise ValueProblem(
            f"'{text}' is not a value of {u.name} ({', '.join(u.spelling.values() or u.values)})"
        )
    if isinstance(value, int) and not isinstance(value, bool) and value in u.values.values():
        return value
    raise ValueProblem(f"{value!r} is not a value of {u.name}")
