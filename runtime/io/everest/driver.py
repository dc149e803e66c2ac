"""EV charging sessions from EVerest over MQTT, as an executor ``Driver``.

Inputs: per EVSE, ``e2m/session_info``, ``e2m/ev_info``, ``e2m/powermeter``,
``e2m/supported_energy_transfer_modes`` and ``e2m/heartbeat`` of its evse_manager_consumer module fill
the EV_SESSION record ``<prefix>[<slot>]``. Outputs: ``<prefix>[<slot>].p_setpoint_w`` goes out as
``m2e/set_external_limits`` of the EVSE's external_energy_limits_consumer module, on change (at most
every ``min_interval_s``) and at least every ``refresh_s`` (< 10 s: EVerest stops the power flow when
limits are not refreshed). ``m2e/communication_check`` is sent to every module each ``refresh_s``.

Threads: paho's network thread parses messages into the per-EVSE state (under a lock); the scan thread
only swaps out changed samples (``read_inputs``) and hands over setpoints (``write_outputs``); the
publisher thread builds and publishes the documents. Refreshes follow the scans on purpose: a program
that stops scanning stops refreshing, and EVerest then stops the power flow by itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from ...executor.alarms import AlarmBus, Severity
from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from .config import EverestConfig, EvseConfig
from .link import BrokerLink
from .messages import (
    Facts,
    Problems,
    decode_json,
    ev_facts,
    limits_document,
    modes_facts,
    powermeter_facts,
    session_facts,
)
from .session import EvseSession

log = logging.getLogger("plcrun.everest")

ALARM_BROKER = "everest:broker"
_IDLE_S = 1.0  # the publisher waits this long for work before looking again
_CHECKS: dict[str, Callable[[object], tuple[Facts, Problems]]] = {
    "session_info": session_facts,
    "ev_info": ev_facts,
    "powermeter": powermeter_facts,
    "supported_energy_transfer_modes": modes_facts,
}


class EverestSessionDriver(Driver):
    """``EverestSessionDriver(config, alarms)``: see the module docstring and docs/everest.md."""

    name = "everest"
    kind = "everest"

    def __init__(
        self,
        config: EverestConfig,
        alarms: AlarmBus,
        wall_clock: Callable[[], float] = time.time,
        worker_time: WorkerTime = REAL_TIME,
    ) -> None:
        self.config = config
        self._time = (
            worker_time  # the publisher's and the link's waits (backoff); tests step it with ManualTime
        )
        self._alarms = alarms
        self._wall_clock = wall_clock
        self._clock: Clock | None = None
        self._lock = threading.Lock()  # guards the sessions and the connection state
        self._sessions = [EvseSession(evse, config.connected_states) for evse in config.evses]
        self._by_topic = {config.topic(s.config.module, "e2m", "").rstrip("/"): s for s in self._sessions}
        self._broker_up = False
        self._up_since_ns: int | None = None
        self._detail = "not started"
        self._counters = dict.fromkeys(
            ("messages", "bad_messages", "setpoints", "published", "dropped", "network_thread_restarts"), 0
        )
        self._stale_ns = int(config.stale_after_s * 1e9)
        self._refresh_ns = int(config.refresh_s * 1e9)
        self._min_interval_ns = int(config.min_interval_s * 1e9)
        self._publishing = [evse for evse in config.evses if evse.output is not None]
        # scan thread only
        self._last_sent: dict[str, tuple[float, int]] = {}  # module -> (power, when sent or refreshed)
        self._last_change: dict[str, int] = {}  # module -> when a changed setpoint was last sent
        self._published_ns: dict[str, int] = {}  # limits module -> when its last setpoint was published
        self._started_ns: int | None = None
        self._last_check_ns: int | None = None
        self._bad_setpoints: set[str] = set()  # modules whose setpoint alarm is raised
        # hand-over to the publisher thread
        self._out_lock = threading.Lock()
        self._pending: dict[str, float] = {}  # limits module -> setpoint W
        self._pending_checks: list[str] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._resend = threading.Event()  # (re)connected: setpoints go out again at the next scan
        self._recheck = threading.Event()  # (re)connected: communication checks too
        self._publisher: threading.Thread | None = None
        self._last_info: object = None
        topics = [config.topic(evse.module, "e2m", "+") for evse in config.evses]
        self._link = BrokerLink(
            config, topics, self._on_message, self._on_state, worker_time, self._network_thread_died
        )

    # ------------------------------------------------------------ Driver interface
    def input_paths(self) -> frozenset[str]:
        paths = {path for evse in self.config.evses for path in evse.inputs.values()}
        paths.update(evse.age_path for evse in self._publishing if evse.age_path is not None)
        return frozenset(paths)

    def output_paths(self) -> frozenset[str]:
        return frozenset(evse.output for evse in self._publishing if evse.output is not None)

    def start(self, clock: Clock) -> None:
        self._clock = clock
        self._started_ns = clock.now_ns()
        self._publisher = threading.Thread(
            target=self._publish_loop, name="plcrun-everest-publisher", daemon=True
        )
        self._publisher.start()
        self._detail = f"connecting to {self.config.host}:{self.config.port}"
        self._link.start()

    def stop(self) -> None:
        """Publish what is still pending (e.g. the safe state), then disconnect."""
        if self._publisher is None:
            return
        self._stopping.set()
        self._wake.set()
        self._publisher.join(5)
        self._publisher = None
        wait = getattr(self._last_info, "wait_for_publish", None)
        if wait is not None:
            with contextlib.suppress(RuntimeError, ValueError):  # not connected any more
                wait(1.0)
        self._link.stop()

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        self._queue_checks_if_due(now_ns)
        out: dict[str, Sample] = {}
        changes: list[tuple[EvseSession, Quality]] = []
        with self._lock:
            up, since = self._broker_up, self._up_since_ns
            for session in self._sessions:
                liveness = session.liveness(now_ns, self._stale_ns, up, since)
                if liveness is None:
                    continue
                if liveness is not session.reported_liveness:
                    changes.append((session, liveness))
                elif not session.dirty:
                    continue
                session.samples(liveness, out)
        for session, liveness in changes:
            self._liveness_alarm(session, liveness, up)
        for evse in self._publishing:  # setpoint_age: since the last setpoint went out (since start if none)
            if evse.age_path is not None and evse.limits_module is not None:
                since = self._published_ns.get(evse.limits_module, self._started_ns)
                if since is not None:
                    out[evse.age_path] = Sample(max(0, now_ns - since), Quality.GOOD, now_ns)
        return out

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        if self._resend.is_set():  # (re)connected: send every setpoint again now
            self._resend.clear()
            self._last_sent.clear()
            self._last_change.clear()
        queued = False
        for evse in self._publishing:
            value = values.get(evse.output) if evse.output is not None else None
            if value is None:
                continue
            power = self._setpoint(evse, value)
            last = self._last_sent.get(evse.module)
            if last is not None:
                if power != last[0]:
                    # the rate limit counts real changes only: a refresh never holds a change back
                    if now_ns - self._last_change.get(evse.module, -(2**62)) < self._min_interval_ns:
                        continue
                    self._last_change[evse.module] = now_ns
                elif now_ns - last[1] < self._refresh_ns:
                    continue
            else:
                self._last_change[evse.module] = now_ns
            self._last_sent[evse.module] = (power, now_ns)
            queued = self._queue_setpoint(evse, power) or queued
        if queued:
            self._wake.set()

    def apply_safe_state(self, values: Mapping[str, object]) -> None:
        now_ns = self._clock.now_ns() if self._clock is not None else 0
        for evse in self._publishing:
            value = values.get(evse.output) if evse.output is not None else None
            if value is not None:
                power = self._setpoint(evse, value)
                self._last_sent[evse.module] = (power, now_ns)
                self._queue_setpoint(evse, power)
        self._wake.set()

    def status(self) -> DriverStatus:
        with self._lock:
            points = {path: quality for s in self._sessions for path, (_v, quality, _t) in s.sent.items()}
            counters = dict(self._counters)
            counters["callback_errors"] = self._link.guard.failures
            return DriverStatus(self.name, self.kind, self._broker_up, self._detail, counters, points)

    # ------------------------------------------------------------ network thread
    def _on_message(self, topic: str, payload: bytes) -> None:
        prefix, _, message = topic.rpartition("/")
        session = self._by_topic.get(prefix)
        if session is None or self._clock is None:
            return
        now_ns = self._clock.now_ns()
        check = _CHECKS.get(message)
        if check is None:  # heartbeat and the topics not used: the module is alive
            with self._lock:
                self._counters["messages"] += 1
                session.heard(now_ns)
            return
        doc, error = decode_json(payload)
        facts, problems = check(doc) if error is None else ({}, {})
        problem = error if error is not None else "; ".join(problems.values())
        # the alarm changes before the new qualities become visible, so whoever sees a point turn
        # BAD (or GOOD again) also sees its alarm raised (or cleared)
        key = f"everest:{session.config.module}:{message}"
        if problem:
            log.warning("EVerest %s: %s", topic, problem)
            self._alarms.raise_alarm(key, "everest", f"{topic}: {problem}", Severity.WARNING)
        else:
            self._alarms.clear(key, f"{topic}: usable again")
        with self._lock:
            self._counters["messages"] += 1
            if error is not None:
                session.unusable(message, error, now_ns)
            else:
                session.update(message, facts, problems, now_ns)
            if problem:
                self._counters["bad_messages"] += 1

    def _on_state(self, up: bool, detail: str) -> None:
        if self._stopping.is_set():
            return  # our own disconnect
        now_ns = self._clock.now_ns() if self._clock is not None else 0
        with self._lock:
            was_up = self._broker_up
        # as for messages: the alarm changes before the connection state others can see
        if up:
            log.info("EVerest: %s", detail)
            self._alarms.clear(ALARM_BROKER, detail)
        else:
            if was_up:
                log.warning("EVerest: %s", detail)
            self._alarms.raise_alarm(ALARM_BROKER, "everest", detail, Severity.CRITICAL)
        with self._lock:
            self._broker_up = up
            self._detail = detail
            if up:
                self._up_since_ns = now_ns
        if up:
            self._resend.set()
            self._recheck.set()

    # ------------------------------------------------------------ outputs
    def _setpoint(self, evse: EvseConfig, value: object) -> float:
        try:
            power = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            power = math.nan
        if math.isfinite(power):
            if evse.module in self._bad_setpoints:
                self._bad_setpoints.discard(evse.module)
                self._alarms.clear(f"everest:{evse.module}:setpoint")
            return power
        self._bad_setpoints.add(evse.module)
        self._alarms.raise_alarm(
            f"everest:{evse.module}:setpoint",
            "everest",
            f"{evse.output} = {value!r} is not a finite power: 0 W sent",
            Severity.WARNING,
        )
        return 0.0

    def _queue_setpoint(self, evse: EvseConfig, power: float) -> bool:
        if evse.limits_module is None:
            return False
        with self._out_lock:
            self._pending[evse.limits_module] = power
        with self._lock:
            self._counters["setpoints"] += 1
        return True

    def _queue_checks_if_due(self, now_ns: int) -> None:
        if self._recheck.is_set():
            self._recheck.clear()
            self._last_check_ns = None
        if self._last_check_ns is not None and now_ns - self._last_check_ns < self._refresh_ns:
            return
        self._last_check_ns = now_ns
        config = self.config
        topics = [config.topic(evse.module, "m2e", "communication_check") for evse in config.evses]
        topics += [
            config.topic(evse.limits_module, "m2e", "communication_check", config.limits_api_type)
            for evse in config.evses
            if evse.limits_module is not None
        ]
        with self._out_lock:
            self._pending_checks = topics
        self._wake.set()

    def _network_thread_died(self, reason: str) -> None:
        """paho's network thread ended anyway (the link's session noticed and connects anew): the
        link is down until then (alarm, COMM_LOST)."""
        if self._link.guard.last_error:
            reason += f" (last callback error: {self._link.guard.last_error})"
        self._on_state(False, f"{reason}; reconnecting")
        with self._lock:
            self._counters["network_thread_restarts"] += 1

    def _publish_loop(self) -> None:
        config = self.config
        while True:
            if not self._time.wait(self._wake, _IDLE_S):
                continue
            self._wake.clear()
            with self._out_lock:
                setpoints, self._pending = self._pending, {}
                checks, self._pending_checks = self._pending_checks, []
            for module, power in setpoints.items():
                document = limits_document(power, config.priority, self._wall_clock())
                topic = config.topic(module, "m2e", "set_external_limits", config.limits_api_type)
                self._send(topic, json.dumps(document).encode())
                if self._clock is not None:
                    self._published_ns[module] = self._clock.now_ns()
            for topic in checks:
                self._send(topic, b"true")
            if self._stopping.is_set():
                with self._out_lock:
                    if not self._pending:
                        return

    def _send(self, topic: str, payload: bytes) -> None:
        info = self._link.publish(topic, payload, self.config.qos)
        with self._lock:
            self._counters["published" if info is not None else "dropped"] += 1
        if info is not None:
            self._last_info = info

    def _liveness_alarm(self, session: EvseSession, liveness: Quality, broker_up: bool) -> None:
        module = session.config.module
        key = f"everest:{module}:silent"
        if liveness is Quality.GOOD or not broker_up:  # a lost broker has its own alarm
            self._alarms.clear(key, f"EVSE {module} is heard again")
        elif liveness is Quality.STALE:
            self._alarms.raise_alarm(
                key,
                "everest",
                f"EVSE {module} sent nothing for {self.config.stale_after_s:g} s",
                Severity.WARNING,
            )
        else:
            self._alarms.raise_alarm(
                key,
                "everest",
                f"EVSE {module} has not been heard since the broker connection",
                Severity.WARNING,
            )
