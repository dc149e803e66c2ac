"""ISO 15118 sessions with the cars, as an executor ``Driver``: plcrun is the SECC.

The SECCs run in a separate process with its own Python environment (the iso15118 package pins
pydantic 1 and its own cryptography, and its EXI codec runs in a JVM: kept out of the scan's process,
it cannot take the scan's GIL). This driver starts that process (``process.SeccProcess``), turns
what it reports into EV_SESSION samples and sends each EVSE's setpoint and command back.

Threads: the SECC process's reader thread updates the per-EVSE state under a lock; the scan thread
only swaps out changed samples (``read_inputs``) and queues setpoints (``write_outputs``).
Qualities: GOOD while the SECC process runs and the EVSE's SECC listens (and, during a session, the
car was heard within ``stale_after_s``); STALE when a session went quiet; COMM_LOST when the process or
that EVSE's SECC is down. See docs/iso15118.md.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...executor.alarms import AlarmBus, Severity
from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from .config import EvseConfig, Iso15118Config
from .process import WORKER, SeccProcess
from .wire import EV_FIELDS

log = logging.getLogger("plcrun.iso15118")
ALARM_PROCESS = "iso15118:process"
REFRESH_NS = 1_000_000_000  # setpoints go out again at least this often
_ZERO: dict[str, object] = {
    field: False if kind == "bool" else 0 if kind == "int" else 0.0
    for field, (kind, _low, _high) in EV_FIELDS.items()
}


class _Evse:
    """What one EVSE's SECC reported, and what the program last got."""

    def __init__(self, config: EvseConfig) -> None:
        self.config = config
        self.up = False
        self.detail = "not started"
        self.fields: dict[str, object] = dict(_ZERO)
        self.heard_ns = 0
        self.stamp_ns = 0
        self.dirty = True
        self.sent: dict[str, tuple[object, Quality]] = {}
        self.sessions = 0
        self.last_end = ""

    def quality(self, now_ns: int, process_up: bool, stale_ns: int) -> Quality:
        if not process_up or not self.up:
            return Quality.COMM_LOST
        if self.fields.get("connected") and now_ns - self.heard_ns > stale_ns:
            return Quality.STALE
        return Quality.GOOD


class Iso15118Driver(Driver):
    """``Iso15118Driver(config, alarms)``: see the module docstring and docs/iso15118.md."""

    name = "iso15118"
    kind = "iso15118"

    def __init__(self, config: Iso15118Config, alarms: AlarmBus, worker: Path = WORKER) -> None:
        self.config = config
        self._alarms = alarms
        self._clock: Clock | None = None
        self._lock = threading.Lock()
        self._evses = {evse.id: _Evse(evse) for evse in config.evses}
        self._process_up = False
        self._detail = "not started"
        self._counters = {"messages": 0, "bad_messages": 0, "sessions": 0, "setpoints": 0, "restarts": 0}
        self._stale_ns = int(config.stale_after_s * 1e9)
        self._quality_seen: dict[str, Quality] = {}
        # scan thread only
        self._last_sent: dict[str, tuple[float, str, int]] = {}
        self._bad_setpoint: set[str] = set()
        self._resend = threading.Event()
        self.process = SeccProcess(config, self._on_message, self._on_down, self._on_garbage, worker)

    # ------------------------------------------------------------ Driver interface
    def input_paths(self) -> frozenset[str]:
        return frozenset(path for evse in self.config.evses for path in evse.inputs.values())

    def output_paths(self) -> frozenset[str]:
        paths: set[str] = set()
        for evse in self.config.evses:
            paths.update(p for p in (evse.output, evse.stop, evse.renegotiate, evse.pause) if p is not None)
        return frozenset(paths)

    def start(self, clock: Clock) -> None:
        self._clock = clock
        self._detail = "starting the SECC process"
        self.process.start()

    def stop(self) -> None:
        self.process.stop()
        with self._lock:
            self._process_up = False
            self._detail = "stopped"

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        out: dict[str, Sample] = {}
        with self._lock:
            process_up = self._process_up
            for evse in self._evses.values():
                quality = evse.quality(now_ns, process_up, self._stale_ns)
                if not evse.dirty and self._quality_seen.get(evse.config.id) is quality:
                    continue
                self._quality_seen[evse.config.id] = quality
                evse.dirty = False
                for field, path in evse.config.inputs.items():
                    value = evse.fields[field]
                    if quality is not Quality.GOOD and path in evse.sent:
                        value = evse.sent[path][0]  # not GOOD: keep the value the program had
                    key = (value, quality)
                    if evse.sent.get(path) != key:
                        evse.sent[path] = key
                        out[path] = Sample(value, quality, evse.stamp_ns)
        return out

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        if self._resend.is_set():
            self._resend.clear()
            self._last_sent.clear()
        for evse in self.config.evses:
            power = self._setpoint(evse, values.get(evse.output) if evse.output else 0.0)
            command = "run"
            if evse.stop is not None and values.get(evse.stop):
                command = "stop"
            elif evse.renegotiate is not None and values.get(evse.renegotiate):
                command = "renegotiate"
            elif evse.pause is not None and values.get(evse.pause):
                command = "pause"
            last = self._last_sent.get(evse.id)
            if last is not None and last[:2] == (power, command) and now_ns - last[2] < REFRESH_NS:
                continue
            self._last_sent[evse.id] = (power, command, now_ns)
            if self.process.send({"t": "setpoint", "evse": evse.id, "w": power, "command": command}):
                with self._lock:
                    self._counters["setpoints"] += 1

    def apply_safe_state(self, values: Mapping[str, object]) -> None:
        for evse in self.config.evses:
            power = self._setpoint(evse, values.get(evse.output, 0.0) if evse.output else 0.0)
            self.process.send({"t": "setpoint", "evse": evse.id, "w": power, "command": "run"})
        self._last_sent.clear()

    def status(self) -> DriverStatus:
        with self._lock:
            points = {path: quality for e in self._evses.values() for path, (_v, quality) in e.sent.items()}
            detail = (
                self._detail
                + "; "
                + ", ".join(f"{e.config.id}@{e.config.interface}: {e.detail}" for e in self._evses.values())
            )
            return DriverStatus(self.name, self.kind, self._process_up, detail, dict(self._counters), points)

    def session_log(self) -> dict[str, tuple[int, str]]:
        """Per EVSE: sessions ended so far and the reason of the last end."""
        with self._lock:
            return {e.config.id: (e.sessions, e.last_end) for e in self._evses.values()}

    # ------------------------------------------------------------ SECC process thread
    def _now(self) -> int:
        return self._clock.now_ns() if self._clock is not None else 0

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        now_ns = self._now()
        if kind == "hello":
            self._alarms.clear(ALARM_PROCESS, "the SECC process is running")
            with self._lock:
                self._process_up = True
                self._detail = f"SECC process {self.process.pid} running"
                self._counters["messages"] += 1
            self._resend.set()
            return
        evse = self._evses[message["evse"]]
        key = f"iso15118:{evse.config.id}"
        if kind == "alarm":
            alarm_key = f"{key}:{message['key']}"
            if message["raise"]:
                severity = (
                    Severity.CRITICAL if message["key"].startswith("certificate:") else Severity.WARNING
                )
                self._alarms.raise_alarm(alarm_key, "iso15118", message["text"], severity)
            else:
                self._alarms.clear(alarm_key, message["text"])
        elif kind == "state":
            # alarms change before the qualities they explain
            if message["up"]:
                self._alarms.clear(f"{key}:secc", message["detail"])
            else:
                self._alarms.raise_alarm(
                    f"{key}:secc",
                    "iso15118",
                    f"{evse.config.interface}: {message['detail']}",
                    Severity.WARNING,
                )
        with self._lock:
            self._counters["messages"] += 1
            if kind == "state":
                evse.up = bool(message["up"])
                evse.detail = str(message["detail"])
                evse.dirty = True
            elif kind == "ev":
                fields = message["fields"]
                if fields.get("connected") and not evse.fields.get("connected"):
                    self._counters["sessions"] += 1
                for field, value in fields.items():
                    evse.fields[field] = _ZERO[field] if value is None else value
                evse.heard_ns = evse.stamp_ns = now_ns
                evse.dirty = True
            elif kind == "ended":
                evse.sessions += 1
                evse.last_end = str(message["reason"])
                evse.fields = dict(_ZERO)
                evse.heard_ns = evse.stamp_ns = now_ns
                evse.dirty = True
        if kind == "ended":
            log.info("ISO 15118 session on %s ended: %s", evse.config.id, message["reason"])

    def _on_down(self, reason: str) -> None:
        self._alarms.raise_alarm(ALARM_PROCESS, "iso15118", reason, Severity.CRITICAL)
        with self._lock:
            self._process_up = False
            self._detail = reason
            self._counters["restarts"] += 1
            for evse in self._evses.values():
                evse.up = False
                evse.fields = dict(_ZERO)
                evse.dirty = True
        log.warning("ISO 15118: %s", reason)

    def _on_garbage(self, why: str) -> None:
        self._alarms.raise_alarm(
            "iso15118:bad-message",
            "iso15118",
            f"unusable message from the SECC process: {why}",
            Severity.WARNING,
        )
        with self._lock:
            self._counters["bad_messages"] += 1

    # ------------------------------------------------------------ outputs
    def _setpoint(self, evse: EvseConfig, value: object) -> float:
        try:
            power = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            power = math.nan
        if math.isfinite(power) and abs(power) <= 1e6:
            if evse.id in self._bad_setpoint:
                self._bad_setpoint.discard(evse.id)
                self._alarms.clear(f"iso15118:{evse.id}:setpoint")
            return power
        if evse.id not in self._bad_setpoint:
            self._bad_setpoint.add(evse.id)
            self._alarms.raise_alarm(
                f"iso15118:{evse.id}:setpoint",
                "iso15118",
                f"{evse.output} = {value!r} is not a usable power: 0 W sent",
                Severity.WARNING,
            )
        return 0.0
