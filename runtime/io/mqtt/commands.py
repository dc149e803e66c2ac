"""Cloud-to-gateway commands: JSON messages checked against a fixed schema before the program sees them.

A command arrives on its own topic (``topics.command`` with ``{name}``). ``validate_command`` either
returns the process-image values it sets or raises ``CommandRejected`` with a reason naming the
offending field; a rejected message changes nothing. Schemas (docs/mqtt.md, "Commands"):

- ``frequency_watt_curve``: ``{"curve": [{"frequency_hz": f, "power_w": p}, ...], "baseline_w": b}``,
  1 to ``array_length`` points with strictly increasing frequency (OCPP 2.1 ``v2xFreqWattCurve`` and
  ``v2xBaseline``; ``baseline_w`` is optional and defaults to 0). Array elements past the last point
  repeat the last point, so the program should loop to the count it is given.
- ``bool``: ``{"value": true}``; ``number``: ``{"value": 1234.5}`` within the configured ``min``/``max``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ...errors import PlcrunError
from .config import CommandBinding, CurveCommand, ValueCommand

MAX_COMMAND_BYTES = 16 * 1024


class CommandRejected(PlcrunError):
    """The message does not match the command's schema; ``str(error)`` says why."""


def _object(value: Any, where: str, keys: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CommandRejected(f"{where} must be a JSON object")
    unknown = set(value) - keys
    if unknown:
        raise CommandRejected(f"{where} has unknown field(s) {sorted(unknown)}")
    missing = required - set(value)
    if missing:
        raise CommandRejected(f"{where} lacks field(s) {sorted(missing)}")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRejected(f"{where} must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise CommandRejected(f"{where} = {value} is outside [{low:g}, {high:g}]")
    return number


def _decode(payload: bytes) -> Any:
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected(f"message is larger than {MAX_COMMAND_BYTES} bytes")
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise CommandRejected("message is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise CommandRejected(f"message is not valid JSON ({error})") from None


def _reject_constant(name: str) -> Any:
    raise CommandRejected(f"{name} is not a valid JSON number")


def _curve_values(command: CurveCommand, document: Any) -> dict[str, object]:
    body = _object(document, "message", {"curve", "baseline_w"}, {"curve"})
    points = body["curve"]
    if not isinstance(points, list) or not 1 <= len(points) <= command.array_length:
        raise CommandRejected(f"curve must be an array of 1 to {command.array_length} points")
    limit = command.power_limit_w
    frequencies: list[float] = []
    powers: list[float] = []
    for index, point in enumerate(points):
        where = f"curve[{index}]"
        fields = _object(point, where, {"frequency_hz", "power_w"}, {"frequency_hz", "power_w"})
        frequency = _number(
            fields["frequency_hz"],
            f"{where}.frequency_hz",
            command.frequency_min_hz,
            command.frequency_max_hz,
        )
        if frequencies and frequency <= frequencies[-1]:
            raise CommandRejected(
                f"{where}.frequency_hz = {frequency:g} must be above the previous point's {frequencies[-1]:g}"
            )
        frequencies.append(frequency)
        powers.append(_number(fields["power_w"], f"{where}.power_w", -limit, limit))
    baseline = _number(body.get("baseline_w", 0.0), "baseline_w", -limit, limit)
    count = len(frequencies)
    values: dict[str, object] = {}
    for index, (f_path, p_path) in enumerate(
        zip(command.frequency_paths(), command.power_paths(), strict=True)
    ):
        source = min(index, count - 1)
        values[f_path] = frequencies[source]
        values[p_path] = powers[source]
    values[command.count_path] = count
    values[command.baseline_path] = baseline
    return values


def _single_value(command: ValueCommand, document: Any) -> dict[str, object]:
    body = _object(document, "message", {"value"}, {"value"})
    value = body["value"]
    if command.kind == "bool":
        if not isinstance(value, bool):
            raise CommandRejected("value must be true or false")
        return {command.path: value}
    return {command.path: _number(value, "value", command.minimum, command.maximum)}


def validate_command(command: CommandBinding, payload: bytes) -> dict[str, object]:
    """The process-image values the message sets, or ``CommandRejected``."""
    document = _decode(payload)
    if isinstance(command, CurveCommand):
        return _curve_values(command, document)
    return _single_value(command, document)
