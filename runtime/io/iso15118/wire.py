"""The line protocol between plcrun and its SECC process (standard library only: the SECC process,
which has no plcrun installed, loads this file by its path; plcrun imports it as usual).

One JSON object per line, UTF-8, at most ``MAX_LINE`` bytes including the newline, over a unix
socket pair. Every object has ``"t"`` (its kind). Each side checks every message it receives with
``check_*`` and drops (and counts) what does not fit; nothing a peer sends can raise out of these.

SECC process -> plcrun
  ``{"t": "hello", "version": 1, "evses": [id, ...]}``                      once, when started
  ``{"t": "state", "evse": id, "up": bool, "detail": str}``                 an SECC listens / stopped
  ``{"t": "ev", "evse": id, "fields": {field: value|null, ...}}``           the car's data changed
  ``{"t": "ended", "evse": id, "reason": str}``                             the session ended
  ``{"t": "alarm", "evse": id, "key": str, "raise": bool, "text": str}``    raise or clear an alarm
plcrun -> SECC process
  ``{"t": "setpoint", "evse": id, "w": float, "command": "run"|"stop"|"renegotiate"|"pause"}``
  ``{"t": "quit"}``
"""

from __future__ import annotations

import json
import math
from typing import Any

VERSION = 1
MAX_LINE = 16384
MAX_TEXT = 512
COMMANDS = ("run", "stop", "renegotiate", "pause")

# field -> allowed kind ("bool", "int" or "num") and the inclusive range of numbers
EV_FIELDS: dict[str, tuple[str, float, float]] = {
    "connected": ("bool", 0, 1),
    "bidirectional_allowed": ("bool", 0, 1),
    "protocol": ("int", 0, 20),
    "energy_mode": ("int", 0, 4),
    "control_mode": ("int", 0, 2),
    "auth_mode": ("int", 0, 2),
    "soc_pct": ("num", 0.0, 100.0),
    "target_soc_pct": ("num", 0.0, 100.0),
    "min_soc_pct": ("num", 0.0, 100.0),
    "departure_time": ("int", 0, 2**40),
    "e_target_wh": ("num", -1e7, 1e7),
    "e_min_wh": ("num", -1e7, 1e7),
    "e_max_wh": ("num", -1e7, 1e7),
    "e_v2x_min_wh": ("num", -1e7, 1e7),
    "e_v2x_max_wh": ("num", -1e7, 1e7),
    "p_charge_max_w": ("num", 0.0, 1e6),
    "p_charge_min_w": ("num", 0.0, 1e6),
    "p_discharge_max_w": ("num", 0.0, 1e6),
    "p_discharge_min_w": ("num", 0.0, 1e6),
    "p_present_w": ("num", -1e6, 1e6),
}


def encode(message: dict[str, Any]) -> bytes:
    """One line; raises ValueError when it would be longer than MAX_LINE."""
    line = json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(f"message of {len(line)} bytes is longer than {MAX_LINE}")
    return line


def decode(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """``(message, "")`` or ``(None, why)`` for a line that is not one JSON object with a ``t``."""
    if len(line) > MAX_LINE:
        return None, f"line of {len(line)} bytes is longer than {MAX_LINE}"
    try:
        doc = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"not JSON: {str(exc)[:80]}"
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), str):
        return None, 'not an object with a "t"'
    return doc, ""


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _text(value: object) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def check_from_secc(doc: dict[str, Any], evses: frozenset[str]) -> tuple[dict[str, Any] | None, str]:
    """A message of the SECC process, normalised (texts cut, fields checked), or ``(None, why)``."""
    kind = doc["t"]
    if kind == "hello":
        ids = doc.get("evses")
        if doc.get("version") != VERSION or not isinstance(ids, list):
            return None, f"hello of another protocol version: {str(doc.get('version'))[:20]}"
        return {"t": "hello", "evses": [i for i in ids if isinstance(i, str)]}, ""
    evse = doc.get("evse")
    if not isinstance(evse, str) or evse not in evses:
        return None, f"{kind}: unknown EVSE {str(evse)[:40]!r}"
    if kind == "state":
        detail = _text(doc.get("detail"))
        if not isinstance(doc.get("up"), bool) or detail is None:
            return None, "state: needs up (bool) and detail (text)"
        return {"t": kind, "evse": evse, "up": doc["up"], "detail": detail}, ""
    if kind == "ended":
        reason = _text(doc.get("reason"))
        return {"t": kind, "evse": evse, "reason": reason or "no reason given"}, ""
    if kind == "alarm":
        key, text = _text(doc.get("key")), _text(doc.get("text"))
        if key is None or text is None or not isinstance(doc.get("raise"), bool):
            return None, "alarm: needs key, text and raise"
        return {"t": kind, "evse": evse, "key": key, "raise": doc["raise"], "text": text}, ""
    if kind == "ev":
        fields = doc.get("fields")
        if not isinstance(fields, dict):
            return None, "ev: needs fields"
        good, bad = check_fields(fields)
        if bad:
            return None, "ev: " + "; ".join(bad)
        return {"t": kind, "evse": evse, "fields": good}, ""
    return None, f"unknown message kind {kind[:40]!r}"


def check_fields(fields: dict[str, Any]) -> tuple[dict[str, object], list[str]]:
    """Known fields with values of the right kind and range (None = unknown); the problems."""
    good: dict[str, object] = {}
    bad: list[str] = []
    for name, value in fields.items():
        spec = EV_FIELDS.get(name)
        if spec is None:
            bad.append(f"unknown field {str(name)[:40]!r}")
            continue
        if value is None:
            good[name] = None
            continue
        kind, low, high = spec
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        else:
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and low <= value <= high
            )
        if ok:
            good[name] = float(value) if kind == "num" else value
        else:
            bad.append(f"{name} = {str(value)[:40]} is not a {kind} in [{low:g}, {high:g}]")
    return good, bad


def check_to_secc(doc: dict[str, Any], evses: frozenset[str]) -> tuple[dict[str, Any] | None, str]:
    """A message of plcrun as the SECC process accepts it, or ``(None, why)``."""
    kind = doc["t"]
    if kind == "quit":
        return {"t": "quit"}, ""
    if kind != "setpoint":
        return None, f"unknown message kind {kind[:40]!r}"
    evse, power, command = doc.get("evse"), doc.get("w"), doc.get("command", "run")
    if not isinstance(evse, str) or evse not in evses:
        return None, f"setpoint: unknown EVSE {str(evse)[:40]!r}"
    if isinstance(power, bool) or not isinstance(power, int | float) or not math.isfinite(power):
        return None, f"setpoint: w = {str(power)[:40]} is not a finite number"
    if abs(power) > 1e6:
        return None, f"setpoint: w = {power:g} is beyond 1 MW"
    if command not in COMMANDS:
        return None, f"setpoint: command {str(command)[:40]!r} is not one of {COMMANDS}"
    return {"t": kind, "evse": evse, "w": float(power), "command": command}, ""
