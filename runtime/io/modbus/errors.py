"""Modbus exception responses explained in words an operator can act on.

A device answers a request it cannot serve with an exception code (Modbus Application Protocol
v1.1b3, section 7). The messages name the device, the unit id, the function, the address and what
the standard says the code means, e.g. ``register 40086 is not supported by device 'site-meter'
(unit 1)``.
"""

from __future__ import annotations

from typing import Final

FUNCTION_NAMES: Final[dict[int, str]] = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
    5: "write single coil",
    6: "write single register",
    15: "write multiple coils",
    16: "write multiple registers",
}

EXCEPTION_NAMES: Final[dict[int, str]] = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}

# Codes that say something about the addressed points (split the request to find them);
# the others say something about the device at this moment (retry later).
POINT_EXCEPTIONS: Final[frozenset[int]] = frozenset({1, 2, 3})
GATEWAY_EXCEPTIONS: Final[frozenset[int]] = frozenset({10, 11})


def _what(function: int) -> str:
    if function in (1, 5, 15):
        return "coil"
    if function == 2:
        return "discrete input"
    if function == 4:
        return "input register"
    return "register"


def _span(function: int, address: int, count: int) -> str:
    noun = _what(function)
    if count <= 1:
        return f"{noun} {address}"
    return f"{noun}s {address}..{address + count - 1}"


def explain(code: int, device: str, unit: int, function: int, address: int, count: int) -> str:
    """One sentence naming the device, unit, function, address and the standard meaning of ``code``."""
    who = f"device '{device}' (unit {unit})"
    span = _span(function, address, count)
    fname = FUNCTION_NAMES.get(function, "unknown function")
    if code == 1:
        meaning = f"function {function} ({fname}) is not supported by {who}"
    elif code == 2:
        verb = "is" if count <= 1 else "are"
        meaning = f"{span} {verb} not supported by {who}"
    elif code == 3:
        meaning = f"{who} rejected the value or count in the request for {span}"
    elif code == 4:
        meaning = f"{who} failed while processing the request for {span}"
    elif code == 5:
        meaning = f"{who} accepted the request for {span} but needs long to process it"
    elif code == 6:
        meaning = f"{who} is busy and did not process the request for {span}"
    elif code == 8:
        meaning = f"{who} found a memory parity error reading {span}"
    elif code == 10:
        meaning = f"the gateway in front of {who} has no path to it"
    elif code == 11:
        meaning = f"{who} did not answer its gateway"
    else:
        meaning = f"{who} answered with an unknown exception for {span}"
    name = EXCEPTION_NAMES.get(code, "UNKNOWN")
    return f"{meaning} (Modbus exception {code:02d} {name} to function {function} '{fname}' at {address})"
