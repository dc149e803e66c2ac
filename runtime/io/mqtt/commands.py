"""Cloud-to-gateway commands: JSON messages checked against a fixed schema before the program sees them.

A command arrives on its own topic (``topics.command`` with ``{name}``). ``validate_command`` either
returns the process-image values it sets or raises ``CommandRejected`` with a reason naming the
offending field; a rejected message changes nothing. Schemas (docs/mqtt.md, "Commands"):

- ``frequency_watt_curve``: ``{"curve": [{"frequency_hz": f, "power_w": p}, ...], "baseline_w": b}``,
  1 to ``array_length`` points with strictly increasing frequency (OCPP 2.1 ``v2xFreqWattCurve`` and
  ``v2xBaseline``; ``baseline_w`` is optional and defaults to 0). Array elements past the last point
  repeat the last point, so the program should loop to the count it is given.
- ``bool``: ``{"value": true}``; ``number``: ``{"value": 1234.5}`` within the configured ``min``/``max``.

Every command also carries ``"id"`` (1 to 64 printable characters, unique per command) and
``"expires"`` (UNIX time in seconds, at most ``MAX_TTL_S`` ahead). ``ReplayGuard`` refuses an expired
command and one whose id it has already accepted, so a captured message cannot be played again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import PlcrunError
from ..json_input import JsonRejected, loads_bounded
from .config import CommandBinding, CurveCommand, ValueCommand

MAX_COMMAND_BYTES = 16 * 1024
MAX_ID_CHARS = 64
MAX_TTL_S = 3600.0
REPLAY_MEMORY = 10_000  # unexpired command ids remembered at most
ENVELOPE = {"id", "expires"}


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
    try:
        return loads_bounded(payload, max_bytes=MAX_COMMAND_BYTES)
    except JsonRejected as error:
        raise CommandRejected(str(error)) from None


def _curve_values(command: CurveCommand, document: Any) -> dict[str, object]:
    body = _object(document, "message", {"curve", "baseline_w"} | ENVELOPE, {"curve"})
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
    body = _object(document, "message", {"value"} | ENVELOPE, {"value"})
    value = body["value"]
    if command.kind == "bool":
        if not isinstance(value, bool):
            raise CommandRejected("value must be true or false")
        return {command.path: value}
    return {command.path: _number(value, "value", command.minimum, command.maximum)}


@dataclass(frozen=True)
class AcceptedCommand:
    """A command that matches its schema: its id, expiry (UNIX s) and the values it sets."""

    id: str
    expires: float
    values: dict[str, object]


def _envelope(document: dict[str, Any]) -> tuple[str, float]:
    missing = ENVELOPE - set(document)
    if missing:
        raise CommandRejected(f"message lacks field(s) {sorted(missing)}")
    ident = document["id"]
    if not isinstance(ident, str) or not 1 <= len(ident) <= MAX_ID_CHARS or not ident.isprintable():
        raise CommandRejected(f"id must be a string of 1 to {MAX_ID_CHARS} printable characters")
    expires = _number(document["expires"], "expires", 0.0, 1e11)
    return ident, expires


def validate_command(command: CommandBinding, payload: bytes) -> AcceptedCommand:
    """The command's id, expiry and process-image values, or ``CommandRejected``."""
    document = _decode(payload)
    if isinstance(command, CurveCommand):
        values = _curve_values(command, document)
    else:
        values = _single_value(command, document)
    ident, expires = _envelope(document)
    return AcceptedCommand(ident, expires, values)


class ReplayGuard:
    """Admits each command id once, and only before its expiry; ``wall_clock`` gives UNIX seconds.

    Ids are remembered until their command expires (at most ``MAX_TTL_S``), ``capacity`` at most:
    when that many unexpired commands were accepted, further ones are refused until some expire."""

    def __init__(
        self, wall_clock: Callable[[], float], max_ttl_s: float = MAX_TTL_S, capacity: int = REPLAY_MEMORY
    ) -> None:
        self._wall_clock = wall_clock
        self._max_ttl_s = max_ttl_s
        self._capacity = capacity
        self._seen: dict[str, float] = {}

    def admit(self, command: AcceptedCommand) -> None:
        now = self.check_expiry(command)
        if command.id in self._seen:
            raise CommandRejected(f"command {command.id!r} was already accepted (a replay)")
        if len(self._seen) >= self._capacity:
            self._seen = {key: until for key, until in self._seen.items() if until > now}
            if len(self._seen) >= self._capacity:
                raise CommandRejected(f"{self._capacity} unexpired commands are pending: try later")
        self._seen[command.id] = command.expires

    def check_expiry(self, command: AcceptedCommand) -> float:
        """Refuses an expired command or one that expires too far ahead; returns the wall-clock now."""
        now = self._wall_clock()
        if command.expires <= now:
            raise CommandRejected(f"command {command.id!r} expired {now - command.expires:.1f} s ago")
        if command.expires > now + self._max_ttl_s:
            raise CommandRejected(
                f"command {command.id!r} expires {command.expires - now:.0f} s from now "
                f"(at most {self._max_ttl_s:g} s ahead)"
            )
        return now

    def __len__(self) -> int:
        return len(self._seen)
