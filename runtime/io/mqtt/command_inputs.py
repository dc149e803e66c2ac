"""Freshness of the MQTT command inputs: the rule of a Modbus point and an EVerest session.

Every accepted command message is a sample of each value it sets: GOOD, stamped with the executor's
clock when it arrived, whether the values changed or not. A command with ``stale_s`` must be refreshed
by the cloud at least that often (the same values again with a new id, or the broker re-delivering
the retained message on subscribing): when none arrived for longer, its inputs turn STALE, keeping the last value and its
arrival time so ``AGE_OF`` tells how old it is. While the broker connection is down every command input
is COMM_LOST; once it is back the rule above decides again (GOOD while the last message is fresh, or
always without ``stale_s``: the last command stays in force). An input no message has set yet stays
UNBOUND, and, with ``stale_s``, turns COMM_LOST when nothing came within ``stale_s`` of a connection
(never heard), as an EVerest module does.

The session's thread reports the link (``link``), paho's thread the accepted messages (``accepted``),
the scan thread takes the samples (``take``): one lock, held for microseconds; ``take`` does nothing
unless something happened or a freshness deadline passed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...executor.driver_api import Quality, Sample
from .config import CommandBinding

NEVER = 2**63


@dataclass
class _Command:
    paths: tuple[str, ...]
    stale_ns: int | None
    last_id: str | None = None
    values: dict[str, object] = field(default_factory=dict)
    arrived_ns: int | None = None
    new: bool = False  # a message arrived since the scan last took the samples
    reported: Quality = Quality.UNBOUND  # the quality the scan has (inputs start UNBOUND)


class CommandInputs:
    def __init__(self, commands: Iterable[CommandBinding]) -> None:
        self._lock = threading.Lock()
        self._commands = {
            c.name: _Command(c.input_paths(), None if c.stale_s is None else round(c.stale_s * 1e9))
            for c in commands
        }
        self._up = False
        self._up_since_ns = 0
        self._changed = True  # the scan has to look (start: every input COMM_LOST until connected)
        self._next_deadline_ns = NEVER

    def link(self, up: bool, now_ns: int) -> None:
        """The broker connection came up (subscribed, before any message) or went down."""
        with self._lock:
            if up != self._up:
                self._up, self._up_since_ns, self._changed = up, now_ns, True

    def is_repeat(self, name: str, ident: str, values: Mapping[str, object]) -> bool:
        """True for the message last accepted for this command (same id, same values)."""
        with self._lock:
            command = self._commands[name]
            return command.last_id == ident and command.values == dict(values)

    def accepted(self, name: str, ident: str, values: Mapping[str, object], now_ns: int) -> None:
        with self._lock:
            command = self._commands[name]
            command.last_id, command.values, command.arrived_ns = ident, dict(values), now_ns
            command.new = self._changed = True

    def take(self, now_ns: int) -> dict[str, Sample]:
        """The samples the scan does not have yet: new messages and changes of quality."""
        with self._lock:
            if not self._changed and now_ns < self._next_deadline_ns:
                return {}
            self._changed = False
            self._next_deadline_ns = NEVER
            out: dict[str, Sample] = {}
            for command in self._commands.values():
                quality = self._quality(command, now_ns)
                if quality is Quality.GOOD and command.new:
                    stamp = command.arrived_ns or 0
                    out.update((path, Sample(v, quality, stamp)) for path, v in command.values.items())
                elif quality is not command.reported:
                    # None: the program keeps the value it has (the last command's, or its own initial one)
                    out.update(
                        (path, Sample(None, quality, command.arrived_ns or 0)) for path in command.paths
                    )
                command.new = False
                command.reported = quality
            return out

    def _quality(self, command: _Command, now_ns: int) -> Quality:
        """With the lock held; also books the next freshness deadline."""
        if not self._up:
            return Quality.COMM_LOST
        limit = command.stale_ns
        if command.arrived_ns is None:
            if limit is None:
                return Quality.UNBOUND
            deadline = self._up_since_ns + limit
        elif limit is None:
            return Quality.GOOD
        else:
            deadline = command.arrived_ns + limit
        if now_ns > deadline:
            return Quality.COMM_LOST if command.arrived_ns is None else Quality.STALE
        self._next_deadline_ns = min(self._next_deadline_ns, deadline + 1)
        return Quality.UNBOUND if command.arrived_ns is None else Quality.GOOD
