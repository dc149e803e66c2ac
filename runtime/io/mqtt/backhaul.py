"""The MQTT backhaul as an executor ``Driver``: window reports, immediate alarms and validated commands.

Threads and what they touch:

- scan thread: ``write_outputs`` appends one row to a preallocated numpy window (``WindowRecorder``);
  ``read_inputs`` swaps out the commands accepted since the last scan. Nothing else: no I/O, no waiting.
- worker thread (``plcrun-mqtt-worker``): summarises windows, builds report and alarm documents, gives
  each the next sequence number, writes it to the encrypted buffer, publishes in sequence order with
  at most ``max_inflight`` unacknowledged messages, and removes a record only on its PUBACK.
- session thread and paho's network thread (``session.py``): connecting, receiving, acknowledging.

Alarms reach the worker through the ``AlarmBus`` subscription and are published as soon as the
broker is reachable; reports when their window (measured in the executor clock's ``now_ns``) ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ...executor.alarms import Alarm, AlarmBus, Severity
from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.driver_api import Clock, Driver, DriverStatus, Sample
from .command_inputs import CommandInputs
from .commands import CommandRejected, ReplayGuard, validate_command
from .config import BackhaulConfig
from .messages import alarm_document, encode, report_document, status_document
from .session import Connected, ConnectFailed, Disconnected, NetworkThreadDied, PubAck, Session
from .store import ForwardBuffer
from .store_format import KIND_ALARM, KIND_REPORT, CorruptRecord
from .window import WindowBuffer, WindowRecorder, WindowSummariser

log = logging.getLogger("plcrun.mqtt")

ALARM_INTEGRITY = "mqtt:buffer_integrity"
ALARM_BUFFER_FULL = "mqtt:buffer_full"
ALARM_BUFFER_WRITE = "mqtt:buffer_write"
ALARM_CONNECTION = "mqtt:connection"

_STOP = object()
_EMPTY: Mapping[str, Sample] = MappingProxyType({})
_ACK_PERSIST_INTERVAL_S = 1.0
_MAX_QUEUED_ALARMS = 10_000
_BATCH = 512


class Backhaul(Driver):
    """Publishes reports and alarms to the broker and feeds validated cloud commands to the program."""

    masks_undelivered = True  # inputs no device has delivered come as NaN: never in a summary

    name = "mqtt"
    kind = "mqtt"

    def __init__(
        self,
        config: BackhaulConfig,
        alarms: AlarmBus,
        stats_provider: Callable[[], Mapping[str, Any]],
        gateway_id: str,
        *,
        wall_clock: Callable[[], float] = time.time,
        worker_time: WorkerTime = REAL_TIME,
    ) -> None:
        self.config = config
        self._worker_time = worker_time  # the session's reconnect backoff
        self.gateway_id = gateway_id
        self.topics = config.topics.resolve(gateway_id)
        self._alarms = alarms
        self._stats_provider = stats_provider
        self._wall_clock = wall_clock
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        report = config.report
        paths = tuple(path for variable in report.variables for path in variable.paths)
        self._recorder = WindowRecorder(
            paths, report.period_ns, report.max_scans_per_window, self._events.put
        )
        self._summariser = WindowSummariser(report.variables)
        self._command_by_topic = {self.topics.command_topic(c.name): c for c in config.commands}
        self._replays = ReplayGuard(wall_clock)
        self._command_inputs = CommandInputs(config.commands)
        self._status_lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "reports",
                "alarms",
                "published",
                "acknowledged",
                "pending",
                "dropped_records",
                "dropped_windows",
                "dropped_alarms",
                "commands_accepted",
                "commands_rejected",
                "commands_refreshed",
                "connections",
                "network_thread_restarts",
                "tcp_nodelay",
                "last_seq",
            ),
            0,
        )
        self._detail = "not started"
        self._queued_alarms = 0
        self._clock: Clock | None = None
        self._wall_offset_s = 0.0
        self._buffer: ForwardBuffer | None = None
        self._session: Session | None = None
        self._worker: threading.Thread | None = None
        self._stopped = False
        # worker-thread state
        self._connection: Connected | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> seq
        self._unsent: deque[int] = deque()
        self._last_ack_persist = 0.0
        alarms.subscribe(self._on_alarm)

    # ---- Driver interface (scan thread) -----------------------------------------------------------

    def input_paths(self) -> frozenset[str]:
        return self.config.input_paths()

    def output_paths(self) -> frozenset[str]:
        return self.config.output_paths()

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        self._recorder.record(now_ns, values)

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        return self._command_inputs.take(now_ns) or _EMPTY

    def status(self) -> DriverStatus:
        with self._status_lock:
            counters = dict(self._counters)
            detail = self._detail
            connected = self._connection is not None
        counters["dropped_windows"] = self._recorder.dropped_windows
        session = self._session
        counters["callback_errors"] = session.guard.failures if session is not None else 0
        return DriverStatus(self.name, self.kind, connected, detail, counters)

    # ---- life cycle ---------------------------------------------------------------------------------

    def start(self, clock: Clock) -> None:
        self._clock = clock
        self._wall_offset_s = self._wall_clock() - clock.now_ns() / 1e9
        buffer_config = self.config.buffer
        self._buffer = ForwardBuffer(
            buffer_config.directory, buffer_config.key, buffer_config.max_bytes, buffer_config.fsync
        )
        if self._buffer.problems:
            self._alarms.raise_alarm(
                ALARM_INTEGRITY,
                "mqtt",
                f"store-and-forward buffer {buffer_config.directory} failed its integrity check and was not "
                f"loaded in full: {'; '.join(self._buffer.problems)}",
            )
        self._set_counter("pending", self._buffer.pending_count)
        self._set_counter("last_seq", self._buffer.last_seq)
        client_id = self.config.client_id.replace("{gateway_id}", self.gateway_id)
        self._session = Session(
            self.config,
            client_id,
            self.topics.status,
            online_payload=lambda: encode(
                status_document(gateway_id=self.gateway_id, state="online", time=self._wall_clock())
            ),
            offline_payload=lambda reason: encode(
                status_document(
                    gateway_id=self.gateway_id, state="offline", time=self._wall_clock(), reason=reason
                )
            ),
            command_topics=list(self._command_by_topic),
            on_message=self._on_command,
            post=self._events.put,
            worker_time=self._worker_time,
            on_link=lambda up: self._command_inputs.link(up, self._now_ns()),
            # the worker never hands over more than max_inflight messages; these bound paho's queue too
            max_inflight=self.config.max_inflight,
            max_queued=self.config.max_inflight + 16,
        )
        self._detail = f"connecting to {self.config.host}:{self.config.port}"
        self._worker = threading.Thread(target=self._run, name="plcrun-mqtt-worker", daemon=True)
        self._worker.start()
        self._session.start()

    def stop(self) -> None:
        """Report the last partial window, try to deliver for ``stop_timeout_s``, then disconnect.
        Whatever is not acknowledged stays in the buffer for the next start."""
        if self._stopped or self._worker is None:
            self._stopped = True
            return
        self._stopped = True
        partial = self._recorder.close_partial()
        if partial is not None:
            self._events.put(partial)
        self._events.put(_STOP)
        self._worker.join(self.config.stop_timeout_s + self.config.connect_timeout_s + 5.0)

    # ---- callbacks from other threads ----------------------------------------------------------------

    def _on_alarm(self, alarm: Alarm) -> None:
        if self._stopped:
            return
        with self._status_lock:
            if self._queued_alarms >= _MAX_QUEUED_ALARMS:
                self._counters["dropped_alarms"] += 1
                return
            self._queued_alarms += 1
        self._events.put(alarm)

    def _on_command(self, topic: str, payload: bytes, retained: bool = False) -> None:
        command = self._command_by_topic.get(topic)
        if command is None:
            return
        inputs = self._command_inputs
        try:
            accepted = validate_command(command, payload)
            # the broker re-delivering the retained command on subscribing refreshes the inputs; the
            # same message live again is a replay
            repeat = retained and inputs.is_repeat(command.name, accepted.id, accepted.values)
            if repeat:
                self._replays.check_expiry(accepted)
            else:
                self._replays.admit(accepted)
        except CommandRejected as error:
            log.warning("rejected command %r on %s: %s", command.name, topic, error)
            self._bump("commands_rejected")
            return
        inputs.accepted(command.name, accepted.id, accepted.values, self._now_ns())
        if repeat:
            self._bump("commands_refreshed")
            return
        log.info("accepted command %r id %r on %s", command.name, accepted.id, topic)
        self._bump("commands_accepted")

    def _now_ns(self) -> int:
        return self._clock.now_ns() if self._clock is not None else 0

    def _bump(self, name: str, by: int = 1) -> None:
        with self._status_lock:
            self._counters[name] += by

    def _set_counter(self, name: str, value: int) -> None:
        with self._status_lock:
            self._counters[name] = value

    # ---- worker thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                batch = [self._events.get(timeout=0.25)]
            except queue.Empty:
                batch = []
            while len(batch) < _BATCH:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            for event in batch:
                if event is _STOP:
                    stopping = True
                else:
                    self._handle(event)
            self._commit()
            self._pump()
        self._drain_before_stop()
        if self._session is not None:
            self._session.stop(self.config.stop_timeout_s)
        while True:  # the session's last events (acks of the final messages, Disconnected)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(event, PubAck | Disconnected):
                self._handle(event)
        assert self._buffer is not None
        self._buffer.close()

    def _drain_before_stop(self) -> None:
        deadline = time.monotonic() + self.config.stop_timeout_s
        buffer = self._buffer
        assert buffer is not None
        while self._connection is not None and buffer.pending_count and time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event is not _STOP:
                self._handle(event)
            self._commit()
            self._pump()

    def _handle(self, event: object) -> None:
        if isinstance(event, WindowBuffer):
            self._store_report(event)
        elif isinstance(event, Alarm):
            with self._status_lock:
                self._queued_alarms -= 1
            self._store(
                KIND_ALARM,
                lambda seq: alarm_document(
                    gateway_id=self.gateway_id, stream=self._stream(), seq=seq, alarm=event
                ),
            )
            self._bump("alarms")
        elif isinstance(event, PubAck):
            self._on_puback(event)
        elif isinstance(event, Connected):
            self._on_connected(event)
        elif isinstance(event, Disconnected):
            self._on_disconnected(event)
        elif isinstance(event, ConnectFailed):
            self._on_connect_failed(event)
        elif isinstance(event, NetworkThreadDied):
            self._on_network_thread_died(event)

    def _stream(self) -> str:
        assert self._buffer is not None
        return self._buffer.stream

    def _wall(self, mono_ns: int) -> float:
        return mono_ns / 1e9 + self._wall_offset_s

    def _store_report(self, window: WindowBuffer) -> None:
        try:
            if window.count == 0:
                return
            values = self._summariser.summarise(window)
            window_info = {
                "start_ns": window.start_ns,
                "end_ns": window.end_ns,
                "start": self._wall(window.start_ns),
                "end": self._wall(window.end_ns),
                "scans": window.count,
                "invalid_scans": window.bad_rows,
                "partial": window.end_ns - window.start_ns < self.config.report.period_ns,
            }
        finally:
            self._recorder.give_back(window)
        scan_stats: Mapping[str, Any] | None = None
        if self.config.report.include_scan_stats:
            try:
                scan_stats = self._stats_provider()
            except Exception as error:  # an opaque provider must not stop the reports
                scan_stats = {"error": f"stats provider failed: {error!r}"}
        active = self._alarms.active() if self.config.report.include_alarms else None
        buffer = self._buffer
        assert buffer is not None
        backhaul = {
            "connected": self._connection is not None,
            "pending_records": buffer.pending_count,
            "dropped_records": buffer.dropped_records,
            "dropped_windows": self._recorder.dropped_windows,
        }
        self._store(
            KIND_REPORT,
            lambda seq: report_document(
                gateway_id=self.gateway_id,
                stream=buffer.stream,
                seq=seq,
                time=self._wall_clock(),
                window=window_info,
                values=values,
                scan_stats=scan_stats,
                alarms=active,
                backhaul=backhaul,
            ),
        )
        self._bump("reports")

    def _store(self, kind: int, build: Callable[[int], dict[str, Any]]) -> None:
        buffer = self._buffer
        assert buffer is not None
        seq = buffer.next_seq()
        try:
            buffer.append(seq, kind, encode(build(seq)))
        except OSError as error:
            log.error("cannot write to the store-and-forward buffer: %s", error)
            self._alarms.raise_alarm(ALARM_BUFFER_WRITE, "mqtt", f"cannot write the buffer: {error}")
            return
        self._unsent.append(seq)
        self._set_counter("last_seq", seq)

    def _commit(self) -> None:
        buffer = self._buffer
        assert buffer is not None
        now = time.monotonic()
        persist_acks = now - self._last_ack_persist >= _ACK_PERSIST_INTERVAL_S
        try:
            dropped = buffer.commit(persist_acks=persist_acks)
        except OSError as error:
            log.error("cannot commit the store-and-forward buffer: %s", error)
            self._alarms.raise_alarm(ALARM_BUFFER_WRITE, "mqtt", f"cannot write the buffer: {error}")
            return
        if persist_acks:
            self._last_ack_persist = now
        if dropped:
            self._alarms.raise_alarm(
                ALARM_BUFFER_FULL,
                "mqtt",
                f"store-and-forward buffer full ({buffer.max_bytes} bytes): dropping the oldest reports",
                Severity.WARNING,
            )
        elif buffer.pending_count == 0:
            self._alarms.clear(ALARM_BUFFER_FULL)
        with self._status_lock:
            self._counters["pending"] = buffer.pending_count
            self._counters["dropped_records"] = buffer.dropped_records

    def _pump(self) -> None:
        """Publish unsent records in sequence order while the in-flight window has room."""
        connection, buffer = self._connection, self._buffer
        if connection is None or buffer is None:
            return
        qos = self.config.qos
        published = 0
        while self._unsent and len(self._inflight) < self.config.max_inflight:
            seq = self._unsent[0]
            record = buffer.get(seq)
            if record is None:  # acknowledged or dropped meanwhile
                self._unsent.popleft()
                continue
            try:
                payload = buffer.read(record)
            except (CorruptRecord, OSError) as error:
                self._unsent.popleft()
                buffer.discard(record)
                log.error("buffered record seq %d cannot be read back and is lost: %s", seq, error)
                self._alarms.raise_alarm(
                    ALARM_INTEGRITY, "mqtt", f"buffered record seq {seq} unreadable: {error}"
                )
                continue
            topic = self.topics.alarm if record.kind == KIND_ALARM else self.topics.report
            info = connection.client.publish(topic, payload, qos=qos)
            if info.rc != 0:
                break  # the connection is going down; Disconnected follows and everything is re-sent
            self._unsent.popleft()
            self._inflight[info.mid] = seq
            published += 1
        if published:
            self._bump("published", published)

    def _on_puback(self, event: PubAck) -> None:
        connection, buffer = self._connection, self._buffer
        if connection is None or buffer is None or event.conn_id != connection.conn_id:
            return
        seq = self._inflight.pop(event.mid, None)
        if seq is not None and buffer.ack(seq):
            self._bump("acknowledged")

    def _on_connected(self, event: Connected) -> None:
        assert self._buffer is not None
        self._inflight.clear()
        self._unsent = deque(self._buffer.pending_seqs())
        with self._status_lock:
            self._connection = event
            self._counters["connections"] += 1
            self._counters["tcp_nodelay"] = int(event.tcp_nodelay)
            security = event.tls_version or "plain TCP"
            self._detail = f"connected to {self.config.host}:{self.config.port} ({security})"
        log.info("%s; %d buffered record(s) to send", self._detail, len(self._unsent))
        self._alarms.clear(ALARM_CONNECTION, "connected")

    def _on_disconnected(self, event: Disconnected) -> None:
        if self._connection is None or event.conn_id != self._connection.conn_id:
            return
        self._inflight.clear()
        with self._status_lock:
            self._connection = None
            self._detail = f"disconnected: {event.reason}"
        if not self._stopped:
            log.warning("MQTT connection lost: %s", event.reason)

    def _on_connect_failed(self, event: ConnectFailed) -> None:
        with self._status_lock:
            changed = self._detail != event.reason
            self._detail = event.reason
        if changed:
            log.error("MQTT backhaul cannot connect: %s", event.reason)
        self._alarms.raise_alarm(ALARM_CONNECTION, "mqtt", event.reason, Severity.WARNING)

    def _on_network_thread_died(self, event: NetworkThreadDied) -> None:
        if self._connection is None or event.conn_id != self._connection.conn_id:
            return
        self._inflight.clear()
        with self._status_lock:
            self._connection = None
            self._detail = f"reconnecting: {event.reason}"
            self._counters["network_thread_restarts"] += 1
        self._alarms.raise_alarm(ALARM_CONNECTION, "mqtt", event.reason, Severity.WARNING)
