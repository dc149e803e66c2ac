"""JSON from the network, decoded within bounds that no message can push past.

``json.loads`` recurses once per nesting level (in C, then in Python when errors are formatted) and
turns any run of digits into an int: a message nested 7,000 deep raises ``RecursionError`` (or
overflows a small thread stack first), and a 400-digit number raises ``OverflowError`` wherever it is
converted to float later. ``loads_bounded`` checks the nesting depth before decoding, refuses
integers longer than ``MAX_INT_DIGITS`` digits, NaN and Infinity, and raises only ``JsonRejected``
(a ``ValueError``) with a reason a log line can carry.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import PlcrunError

MAX_DEPTH = 32
MAX_INT_DIGITS = 30  # more than any 64-bit integer; a float has 17 significant digits

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_OPENERS = frozenset(b"[{")


class JsonRejected(PlcrunError, ValueError):
    """The payload is not JSON plcrun accepts; ``str(error)`` says why."""


def nesting_depth(payload: bytes, limit: int) -> int:
    """The deepest nesting of arrays and objects, counting no further than ``limit + 1``."""
    depth = deepest = 0
    for match in _TOKENS.finditer(payload):
        token = match.group()
        if len(token) != 1:
            continue  # a string: brackets inside it do not count
        if token[0] in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JsonRejected(f"a number has {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonRejected(f"the number {text[:24]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a valid JSON number")


def loads_bounded(payload: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded value of ``payload`` or ``JsonRejected``."""
    if len(payload) > max_bytes:
        raise JsonRejected(f"message is larger than {max_bytes} bytes")
    depth = nesting_depth(payload, max_depth)
    if depth > max_depth:
        raise JsonRejected(f"message is nested more than {max_depth} levels deep")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRejected("message is not UTF-8") from None
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as error:
        raise JsonRejected(
            f"message is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    except RecursionError:  # cannot happen after the depth check; never let it out anyway
        raise JsonRejected(f"message is nested more than {max_depth} levels deep") from None
