"""Decoding of ST literal texts: durations, dates, based integers and strings with ``$`` escapes."""

from __future__ import annotations

import calendar
import re

from ..errors import PlcrunError

NS_PER = {
    "d": 86_400 * 10**9,
    "h": 3_600 * 10**9,
    "m": 60 * 10**9,
    "s": 10**9,
    "ms": 10**6,
    "us": 10**3,
    "ns": 1,
}
_DURATION_PART = re.compile(r"([0-9][0-9_]*(?:\.[0-9]+)?)(ms|us|ns|d|h|m|s)", re.I)


class LiteralError(PlcrunError, ValueError):
    """The text of a literal is malformed; the message says how."""


# Our limits: a numeric literal longer than this is certainly a mistake (the widest integer, ULINT,
# has 20 digits), and Python refuses to convert integer texts of 4,300 digits or more.
MAX_NUMBER_TEXT = 100
MAX_INTEGER = 2**64 - 1


def _check_length(text: str) -> None:
    if len(text) > MAX_NUMBER_TEXT:
        raise LiteralError(
            f"a numeric literal of {len(text)} characters is too long (at most {MAX_NUMBER_TEXT})"
        )


def _check_integer(value: int, text: str) -> int:
    if abs(value) > MAX_INTEGER:
        raise LiteralError(
            f"{text[:30]}{'...' if len(text) > 30 else ''} does not fit in 64 bits; "
            "write a REAL literal (e.g. 1.0E30) for larger numbers"
        )
    return value


def parse_duration(text: str) -> int:
    """``T#1h2m3s4ms`` / ``TIME#-1.5s`` / ``LTIME#5us`` -> nanoseconds."""
    _check_length(text)
    body = text.split("#", 1)[1]
    negative = body.startswith("-")
    body = body.lstrip("+-").replace("_", "")
    if not body:
        raise LiteralError(f"duration {text!r} has no value")
    total = 0
    at = 0
    for m in _DURATION_PART.finditer(body):
        if m.start() != at:
            break
        number, unit = m.group(1).replace("_", ""), m.group(2).lower()
        if "." in number:
            whole, frac = number.split(".")
            total += int(whole) * NS_PER[unit] + (int(frac) * NS_PER[unit]) // 10 ** len(frac)
        else:
            total += int(number) * NS_PER[unit]
        at = m.end()
    if at != len(body):
        raise LiteralError(
            f"duration {text!r} is malformed: use units d, h, m, s, ms, us, ns as in T#1h2m3s4ms"
        )
    return -total if negative else total


def parse_based(text: str) -> int:
    _check_length(text)
    base_text, digits = text.split("#", 1)
    digits = digits.replace("_", "")
    if not digits:
        raise LiteralError(f"based literal {text!r} has no digits")
    try:
        return _check_integer(int(digits, int(base_text)), text)
    except LiteralError:
        raise
    except ValueError:
        raise LiteralError(f"{digits!r} is not a valid base-{base_text} number") from None


def parse_decimal(text: str) -> int:
    _check_length(text)
    return _check_integer(int(text.replace("_", "")), text)


def parse_real(text: str) -> float:
    value = float(text.replace("_", ""))
    if value in (float("inf"), float("-inf")):
        raise LiteralError(f"{text[:30]} is beyond the range of LREAL")
    return value


def _epoch_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: float = 0.0) -> int:
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise LiteralError("date or time of day out of range")
    seconds = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))
    return seconds * 10**9 + round(second * 10**9)


def parse_date_literal(text: str) -> tuple[str, int]:
    """DATE/TOD/DT literals -> (type name, nanoseconds since the epoch or since midnight)."""
    _check_length(text)
    prefix, body = text.split("#", 1)
    prefix = prefix.upper()
    if prefix in ("TOD", "TIME_OF_DAY", "LTOD", "LTIME_OF_DAY"):
        parts = body.split(":")
        hour, minute = int(parts[0]), int(parts[1])
        second = float(parts[2]) if len(parts) > 2 else 0.0
        if hour >= 24 or minute >= 60 or second >= 60:
            raise LiteralError(f"time of day {text!r} out of range")
        return "TOD", (hour * 3600 + minute * 60) * 10**9 + round(second * 10**9)
    if prefix in ("D", "DATE", "LD", "LDATE"):
        y, mo, d = (int(p) for p in body.split("-"))
        return "DATE", _epoch_ns(y, mo, d)
    year, month, day, clock = body.split("-", 3)
    parts = clock.split(":")
    second = float(parts[2]) if len(parts) > 2 else 0.0
    return "DT", _epoch_ns(int(year), int(month), int(day), int(parts[0]), int(parts[1]), second)


_ESCAPES = {"$": "$", "'": "'", '"': '"', "L": "\n", "N": "\n", "P": "\f", "R": "\r", "T": "\t"}


def parse_string(raw: str) -> str:
    """Decode a quoted ST string literal (``'It$'s$N'``)."""
    wide = raw.startswith('"')
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt.upper() in _ESCAPES:
            out.append(_ESCAPES[nxt.upper()])
            i += 2
            continue
        width = 4 if wide else 2
        code = body[i + 1 : i + 1 + width]
        if len(code) == width and all(ch in "0123456789abcdefABCDEF" for ch in code):
            out.append(chr(int(code, 16)))
            i += 1 + width
            continue
        raise LiteralError(f"invalid escape '${nxt}' in string literal")
    return "".join(out)


def format_duration(ns: int) -> str:
    """Nanoseconds -> the shortest IEC literal, e.g. ``T#1h2m3s4ms`` or ``T#-10ms``."""
    if ns == 0:
        return "T#0s"
    sign = "-" if ns < 0 else ""
    rest = abs(ns)
    parts = []
    for unit in ("d", "h", "m", "s", "ms", "us", "ns"):
        amount, rest = divmod(rest, NS_PER[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return f"T#{sign}{''.join(parts)}"
