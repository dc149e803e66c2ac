"""The broker connection: one paho-mqtt client per connection, made and watched by its own thread.

The session thread connects (TCP, TLS handshake, CONNECT, waiting for CONNACK) so that connection
errors are caught with their real cause, sets TCP_NODELAY, subscribes to the command topics, publishes
the retained "online" status (the "offline" status is the last will), then hands the client to paho's
network thread and tells the backhaul's worker through ``post``. When the connection drops it posts
``Disconnected`` and retries with exponential backoff.

Liveness: every callback paho runs is guarded (``CallbackGuard``: an exception is logged and counted,
the network thread goes on), and the session thread checks every 0.1 s that paho's network thread
is still alive; if it is not (``NetworkThreadDied``), the connection counts as lost, the worker
raises the connection alarm and a new client connects. paho's automatic reconnect is off: a new
connection starts from a new client, and the worker re-sends whatever was not acknowledged.

The backoff, the liveness checks and so every wait of this thread run on the injected
``WorkerTime`` (tests step it with ``ManualTime``). Two users: the MQTT backhaul (a status topic
with its last will, command subscriptions) and the EVerest link (``everest/link.py``: no status
topic; up only once the broker confirmed its subscriptions, ``require_subscriptions``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.threads import CallbackGuard
from .config import TlsConfig
from .tls import describe_connect_error, describe_lost_before_connack, make_ssl_context

log = logging.getLogger("plcrun.mqtt")
_LIVENESS_CHECK_S = 0.1  # how often the session thread looks at paho's network thread


class BrokerSettings(Protocol):
    """What a session reads of its configuration (``BackhaulConfig``, ``EverestConfig``)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def keepalive_s(self) -> int: ...
    @property
    def tls(self) -> TlsConfig | None: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def reconnect_min_s(self) -> float: ...
    @property
    def reconnect_max_s(self) -> float: ...
    @property
    def stop_timeout_s(self) -> float: ...


@dataclass(frozen=True)
class Connected:
    conn_id: int
    client: mqtt.Client
    tls_version: str | None
    tcp_nodelay: bool


@dataclass(frozen=True)
class Disconnected:
    conn_id: int
    reason: str


@dataclass(frozen=True)
class ConnectFailed:
    reason: str


@dataclass(frozen=True)
class NetworkThreadDied:
    conn_id: int
    reason: str


@dataclass(frozen=True)
class PubAck:
    conn_id: int
    mid: int


class _Connection:
    """Per-connection callback state (paho calls these on its own thread)."""

    def __init__(self, conn_id: int, post: Callable[[object], None], wake: threading.Event) -> None:
        self.conn_id = conn_id
        self.post = post
        self.wake = wake
        self.connack: ReasonCode | None = None
        self.subscription = -1  # message id of the SUBSCRIBE, until its SUBACK came
        self.suback: list[Any] | None = None
        self.lost = threading.Event()
        self.lost_reason = ""
        self.last_error = ""
        self.nodelay = False

    def on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError as error:
            log.warning("cannot set TCP_NODELAY: %s", error)

    def on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self.connack = reason

    def on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if self.last_error:
            self.lost_reason = self.last_error
        elif reason.is_failure:
            self.lost_reason = "the connection was closed or timed out"
        else:
            self.lost_reason = str(reason)
        self.lost.set()
        self.wake.set()

    def on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self.post(PubAck(self.conn_id, mid))

    def on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid == self.subscription:
            self.suback = list(reasons)

    def on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and "not connected" not in text:
            self.last_error = text


class Session:
    """Keeps one connection to the broker alive until ``stop``."""

    def __init__(
        self,
        config: BrokerSettings,
        client_id: str,
        status_topic: str | None,
        online_payload: Callable[[], bytes],
        offline_payload: Callable[[str], bytes],
        command_topics: Sequence[str],
        on_message: Callable[[str, bytes, bool], None],
        post: Callable[[object], None],
        worker_time: WorkerTime = REAL_TIME,
        on_link: Callable[[bool], None] = lambda up: None,
        *,
        name: str = "MQTT backhaul",
        thread_name: str = "plcrun-mqtt-session",
        max_inflight: int | None = None,
        max_queued: int | None = None,
        require_subscriptions: bool = False,
    ) -> None:
        """``status_topic``: the retained online/offline status (and last will), None for none.
        ``max_inflight``/``max_queued``: paho's limits (None: paho's defaults).
        ``require_subscriptions``: connected only once the broker confirmed every subscription
        (a refused one is a failed connection attempt)."""
        self._config = config
        self._time = worker_time  # backoff and liveness checks; tests step it with ManualTime
        self._client_id = client_id
        self._status_topic = status_topic
        self._online_payload = online_payload
        self._offline_payload = offline_payload
        self._command_topics = tuple(command_topics)
        self._on_message = on_message
        self._post = post
        self._on_link = on_link  # on this thread: up before any message can arrive, down after the last
        self._name = name
        self._max_inflight = max_inflight
        self._max_queued = max_queued
        self._require_subscriptions = require_subscriptions
        self._ssl_context: ssl.SSLContext | None = make_ssl_context(config.tls) if config.tls else None
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a connection lost, or stop
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._conn_ids = 0
        self.guard = CallbackGuard(name)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Publish the retained "offline" status, disconnect and end the thread."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s + self._config.connect_timeout_s + 1.0)

    def _new_client(self, connection: _Connection) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        client.connect_timeout = self._config.connect_timeout_s
        if self._max_inflight is not None:
            client.max_inflight_messages_set(self._max_inflight)
        if self._max_queued is not None:
            client.max_queued_messages_set(self._max_queued)
        if self._ssl_context is not None:
            client.tls_set_context(self._ssl_context)
        if self._status_topic is not None:
            client.will_set(self._status_topic, self._offline_payload("connection lost"), qos=1, retain=True)
        guard = self.guard
        client.suppress_exceptions = True  # and guarded below: paho's thread must never end
        client.on_socket_open = guard(connection.on_socket_open)
        client.on_connect = guard(connection.on_connect)
        client.on_disconnect = guard(connection.on_disconnect)
        client.on_publish = guard(connection.on_publish)
        client.on_subscribe = guard(connection.on_subscribe)
        client.on_log = guard(connection.on_log)
        client.on_message = guard(self._message, "on_message")
        return client

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._on_message(message.topic, bytes(message.payload), bool(message.retain))

    def _connect(self, client: mqtt.Client, connection: _Connection) -> str | None:
        """Connect and wait for CONNACK on this thread; None on success, else why it failed."""
        config = self._config
        try:
            client.connect(config.host, config.port, keepalive=config.keepalive_s)
        except (OSError, ValueError) as error:
            return describe_connect_error(error, config.host, config.port, config.tls)
        deadline_ns = self._time.now_ns() + round(config.connect_timeout_s * 1e9)
        outcome = self._exchange(client, lambda: connection.connack is not None, deadline_ns)
        if connection.connack is None:
            _close_socket(client)
            if outcome == "timeout":
                return f"no CONNACK from {config.host}:{config.port} within {config.connect_timeout_s:g} s"
            if outcome == "stopped":
                return "stopped"
            return describe_lost_before_connack(config.host, config.port, config.tls, connection.last_error)
        if connection.connack.is_failure:
            _close_socket(client)
            return f"the broker at {config.host}:{config.port} refused the session: {connection.connack}"
        if self._command_topics:
            mid = client.subscribe([(topic, 1) for topic in self._command_topics])[1]
            connection.subscription = -1 if mid is None else mid
        if self._require_subscriptions and self._command_topics:
            refused = self._wait_for_suback(client, connection, deadline_ns)
            if refused is not None:
                _close_socket(client)
                return refused
        if self._status_topic is not None:
            client.publish(self._status_topic, self._online_payload(), qos=1, retain=True)
        return None

    def _wait_for_suback(self, client: mqtt.Client, connection: _Connection, deadline_ns: int) -> str | None:
        """None once the broker confirmed every subscription, else why not."""
        config = self._config
        where = f"{config.host}:{config.port}"
        outcome = self._exchange(client, lambda: connection.suback is not None, deadline_ns)
        if connection.suback is None:
            if outcome == "timeout":
                return f"no SUBACK from {where} within {config.connect_timeout_s:g} s"
            return f"lost the broker at {where} before it confirmed the subscriptions"
        failed = [code for code in connection.suback if getattr(code, "is_failure", False)]
        if failed:
            return f"the broker at {where} refused the subscriptions: {failed[0]}"
        return None

    def _exchange(self, client: mqtt.Client, done: Callable[[], bool], deadline_ns: int) -> str:
        """paho reads and writes on this thread until ``done()`` (""), the deadline on the worker's
        time passed ("timeout"), the connection failed ("lost") or ``stop`` ("stopped"). The wait
        for the broker's answer goes through ``WorkerTime.wait_readable``, so a broker that never
        answers times out in virtual time in tests; it looks at ``stop`` at least every 50 ms."""
        while not done():
            if self._stopping.is_set():
                return "stopped"
            left_s = (deadline_ns - self._time.now_ns()) / 1e9
            if left_s <= 0:
                return "timeout"
            sock = client.socket()
            if not isinstance(sock, socket.socket):  # closed (plain TCP or TLS: no websockets here)
                return "lost"
            buffered = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0  # decrypted, not yet read
            if buffered or self._time.wait_readable(sock, min(left_s, 0.05), self._stopping):
                if client.loop(timeout=0) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return "lost"
        return ""

    def _run(self) -> None:
        delay = self._config.reconnect_min_s
        while not self._stopping.is_set():
            self._conn_ids += 1
            connection = _Connection(self._conn_ids, self._post, self._wake)
            try:
                client = self._new_client(connection)
            except Exception as exc:  # the session thread must not end: this is a failed attempt
                log.exception("%s: making the MQTT client failed", self._name)
                error: str | None = f"cannot make the MQTT client: {type(exc).__name__}: {exc}"
            else:
                error = self._connect(client, connection)
            if error is not None:
                if not self._stopping.is_set():
                    self._post(ConnectFailed(error))
                    self._time.wait(self._stopping, delay)
                    delay = min(delay * 2, self._config.reconnect_max_s)
                continue
            delay = self._config.reconnect_min_s
            sock = client.socket()
            tls_version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
            self._link(True)
            client.loop_start()
            self._post(Connected(connection.conn_id, client, tls_version, connection.nodelay))
            while True:
                if self._time.wait(self._wake, _LIVENESS_CHECK_S):
                    self._wake.clear()
                if connection.lost.is_set():
                    break
                if self._stopping.is_set():
                    self._disconnect(client)
                    break
                if not network_thread_alive(client) and not connection.lost.is_set():
                    reason = "paho's network thread ended"
                    if self.guard.last_error:
                        reason += f" (last callback error: {self.guard.last_error})"
                    log.error("%s: %s; reconnecting", self._name, reason)
                    self._post(NetworkThreadDied(connection.conn_id, reason))
                    connection.lost_reason = reason
                    break
            client.loop_stop()
            _close_socket(client)
            self._link(False)
            self._post(Disconnected(connection.conn_id, connection.lost_reason or "stopped"))

    def _link(self, up: bool) -> None:
        try:
            self._on_link(up)
        except Exception:  # the session thread must not end
            log.exception("%s: link callback failed", self._name)

    def _disconnect(self, client: mqtt.Client) -> None:
        if self._status_topic is not None:
            info = client.publish(self._status_topic, self._offline_payload("stopped"), qos=1, retain=True)
            # RuntimeError: not connected any more, the broker publishes the will instead
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=min(self._config.stop_timeout_s, 2.0))
        client.disconnect()


def network_thread_alive(client: mqtt.Client) -> bool:
    """Whether the thread ``loop_start`` started still runs (paho keeps it in ``_thread`` and sets
    that to None when the thread ends)."""
    thread = getattr(client, "_thread", None)
    return isinstance(thread, threading.Thread) and thread.is_alive()


def _close_socket(client: mqtt.Client) -> None:
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
