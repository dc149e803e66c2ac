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
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.threads import CallbackGuard
from .config import BackhaulConfig
from .tls import describe_connect_error, describe_lost_before_connack, make_ssl_context

log = logging.getLogger("plcrun.mqtt")


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

    def __init__(self, conn_id: int, post: Callable[[object], None]) -> None:
        self.conn_id = conn_id
        self.post = post
        self.connack: ReasonCode | None = None
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

    def on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self.post(PubAck(self.conn_id, mid))

    def on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and "not connected" not in text:
            self.last_error = text


class Session:
    """Keeps one connection to the broker alive until ``stop``."""

    def __init__(
        self,
        config: BackhaulConfig,
        client_id: str,
        status_topic: str,
        online_payload: Callable[[], bytes],
        offline_payload: Callable[[str], bytes],
        command_topics: Sequence[str],
        on_message: Callable[[str, bytes, bool], None],
        post: Callable[[object], None],
        worker_time: WorkerTime = REAL_TIME,
        on_link: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self._config = config
        self._time = worker_time  # the reconnect backoff; tests step it with ManualTime
        self._client_id = client_id
        self._status_topic = status_topic
        self._online_payload = online_payload
        self._offline_payload = offline_payload
        self._command_topics = tuple(command_topics)
        self._on_message = on_message
        self._post = post
        self._on_link = on_link  # on this thread: up before any message can arrive, down after the last
        self._ssl_context: ssl.SSLContext | None = make_ssl_context(config.tls) if config.tls else None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plcrun-mqtt-session", daemon=True)
        self._conn_ids = 0
        self.guard = CallbackGuard("MQTT backhaul")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Publish the retained "offline" status, disconnect and end the thread."""
        self._stopping.set()
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
        # The worker never hands over more than max_inflight messages; these bound paho's queue too.
        client.max_inflight_messages_set(self._config.max_inflight)
        client.max_queued_messages_set(self._config.max_inflight + 16)
        if self._ssl_context is not None:
            client.tls_set_context(self._ssl_context)
        client.will_set(self._status_topic, self._offline_payload("connection lost"), qos=1, retain=True)
        guard = self.guard
        client.suppress_exceptions = True  # and guarded below: paho's thread must never end
        client.on_socket_open = guard(connection.on_socket_open)
        client.on_connect = guard(connection.on_connect)
        client.on_disconnect = guard(connection.on_disconnect)
        client.on_publish = guard(connection.on_publish)
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
        deadline = time.monotonic() + config.connect_timeout_s
        while connection.connack is None and time.monotonic() < deadline and not self._stopping.is_set():
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if connection.connack is None:
            _close_socket(client)
            if time.monotonic() >= deadline:
                return f"no CONNACK from {config.host}:{config.port} within {config.connect_timeout_s:g} s"
            if self._stopping.is_set():
                return "stopped"
            return describe_lost_before_connack(config.host, config.port, config.tls, connection.last_error)
        if connection.connack.is_failure:
            _close_socket(client)
            return f"the broker at {config.host}:{config.port} refused the session: {connection.connack}"
        for topic in self._command_topics:
            client.subscribe(topic, qos=1)
        client.publish(self._status_topic, self._online_payload(), qos=1, retain=True)
        return None

    def _run(self) -> None:
        delay = self._config.reconnect_min_s
        while not self._stopping.is_set():
            self._conn_ids += 1
            connection = _Connection(self._conn_ids, self._post)
            client = self._new_client(connection)
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
            while not connection.lost.wait(0.1):
                if self._stopping.is_set():
                    self._disconnect(client)
                    break
                if not network_thread_alive(client) and not connection.lost.is_set():
                    reason = "paho's network thread ended"
                    if self.guard.last_error:
                        reason += f" (last callback error: {self.guard.last_error})"
                    log.error("MQTT backhaul: %s; reconnecting", reason)
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
            log.exception("MQTT backhaul: link callback failed")

    def _disconnect(self, client: mqtt.Client) -> None:
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
