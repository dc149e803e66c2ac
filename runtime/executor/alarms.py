"""Alarms: raised by the executor (watchdog, faults), drivers (I/O faults) and programs; shown by the
dashboard, written to the log and published at once by the MQTT backhaul.

Subscribers are called on the thread that raises the alarm and must not block (hand over to a queue).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

log = logging.getLogger("plcrun.alarm")


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm state change. ``key`` identifies the condition, e.g. ``"watchdog:main_task"``."""

    key: str
    source: str
    severity: Severity
    message: str
    active: bool
    wall_time: float  # seconds since the epoch, when the state changed
    seq: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "source": self.source,
            "severity": self.severity.name.lower(),
            "message": self.message,
            "active": self.active,
            "time": self.wall_time,
            "seq": self.seq,
        }


Subscriber = Callable[[Alarm], None]


class AlarmBus:
    """Keeps the active alarms and a short history; notifies subscribers of every change."""

    def __init__(self, history: int = 200, wall_clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, Alarm] = {}
        self._history: list[Alarm] = []
        self._history_len = history
        self._subscribers: list[Subscriber] = []
        self._seq = 0
        self._wall_clock = wall_clock

    def subscribe(self, callback: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def raise_alarm(
        self, key: str, source: str, message: str, severity: Severity = Severity.CRITICAL
    ) -> None:
        """Raise (or re-raise with a new message) the alarm ``key``."""
        with self._lock:
            current = self._active.get(key)
            if current is not None and current.message == message:
                return
        self._publish(Alarm(key, source, severity, message, True, self._wall_clock()))

    def clear(self, key: str, message: str = "") -> None:
        """Clear the alarm ``key`` if it is active."""
        with self._lock:
            current = self._active.get(key)
        if current is None:
            return
        cleared = replace(current, active=False, message=message or current.message)
        self._publish(replace(cleared, wall_time=self._wall_clock()))

    def _publish(self, alarm: Alarm) -> None:
        with self._lock:
            self._seq += 1
            alarm = replace(alarm, seq=self._seq)
            if alarm.active:
                self._active[alarm.key] = alarm
            else:
                self._active.pop(alarm.key, None)
            self._history.append(alarm)
            del self._history[: -self._history_len]
            subscribers = list(self._subscribers)
        level = logging.ERROR if alarm.active and alarm.severity is Severity.CRITICAL else logging.WARNING
        state = "ALARM" if alarm.active else "cleared"
        log.log(level if alarm.active else logging.INFO, "%s %s: %s", state, alarm.key, alarm.message)
        for callback in subscribers:
            callback(alarm)

    def active(self) -> list[Alarm]:
        with self._lock:
            return sorted(self._active.values(), key=lambda a: a.seq)

    def history(self) -> list[Alarm]:
        with self._lock:
            return list(self._history)
