"""The driver's broker connection: one paho-mqtt 2.x client on paho's own network thread (``loop_start``).

paho connects in the background and reconnects with backoff; after every (re)connect the EVSE topics are
subscribed again, and the link counts as up once the broker confirmed the subscriptions. Connection changes and messages are handed to the driver's callbacks, which run on the
network thread and must not block. Every callback is guarded (``CallbackGuard``): whatever one raises
is logged and counted and the network thread goes on. ``alive`` says whether that thread still runs;
the driver replaces a link whose thread ended anyway (``restart``).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from ...executor.threads import CallbackGuard
from ..mqtt.session import network_thread_alive
from ..mqtt.tls import make_ssl_context
from .config import EverestConfig

log = logging.getLogger("plcrun.everest")


class BrokerLink:
    """Subscribes to ``topics`` and publishes for the driver."""

    def __init__(
        self,
        config: EverestConfig,
        topics: Sequence[str],
        on_message: Callable[[str, bytes], None],
        on_state: Callable[[bool, str], None],
    ) -> None:
        self._config = config
        self._topics = tuple(topics)
        self._on_message = on_message
        self._on_state = on_state
        self._client: mqtt.Client | None = None
        self._subscription: int | None = -1  # message id of the SUBSCRIBE of the current connection
        self.guard = CallbackGuard("EVerest link")
        self.nodelay = False  # TCP_NODELAY is set on the current socket

    def start(self) -> None:
        config = self._config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        # paho annotates whole seconds, but waits with floats
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)  # type: ignore[arg-type]
        if config.tls is not None:
            client.tls_set_context(make_ssl_context(config.tls))
        guard = self.guard
        client.suppress_exceptions = True
        client.on_connect = guard(self._connected)
        client.on_connect_fail = guard(self._connect_failed)
        client.on_disconnect = guard(self._disconnected)
        client.on_subscribe = guard(self._subscribed)
        client.on_message = guard(self._message, "on_message")
        client.on_socket_open = guard(self._socket_open)
        client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        client = self._client
        if client is None:
            return
        self._client = None
        client.disconnect()
        client.loop_stop()

    def alive(self) -> bool:
        """Whether paho's network thread of the current client still runs (True when stopped)."""
        client = self._client
        return client is None or network_thread_alive(client)

    def restart(self) -> None:
        """Replace a client whose network thread ended by a new one (which connects again)."""
        client = self._client
        self._client = None
        if client is not None:
            sock = client.socket()
            if sock is not None:
                sock.close()
        self.start()

    def publish(self, topic: str, payload: bytes, qos: int) -> mqtt.MQTTMessageInfo | None:
        """Queue a message for paho's thread; None when there is no connection (it is dropped)."""
        client = self._client
        if client is None:
            return None
        info = client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info

    # ------------------------------------------------------------ paho callbacks (network thread)
    def _socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # setpoints are small messages that must leave at once: without TCP_NODELAY the second EVSE's
        # message waits for the ACK of the first one (Nagle), tens of ms
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except (OSError, AttributeError) as error:
            log.warning("EVerest: cannot set TCP_NODELAY: %s", error)

    def _connected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        where = f"{self._config.host}:{self._config.port}"
        if reason.is_failure:
            self._on_state(False, f"the broker at {where} refused the session: {reason}")
            return
        self._subscription = client.subscribe([(topic, 1) for topic in self._topics])[1]

    def _subscribed(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # ready once the broker confirmed the subscriptions: from now on no message is missed
        if mid != self._subscription:
            return
        where = f"{self._config.host}:{self._config.port}"
        failed = [code for code in reasons if getattr(code, "is_failure", False)]
        if failed:
            self._on_state(False, f"the broker at {where} refused the subscriptions: {failed[0]}")
            return
        self._on_state(True, f"connected to {where}")

    def _connect_failed(self, client: mqtt.Client, userdata: Any) -> None:
        self._on_state(
            False, f"cannot connect to {self._config.host}:{self._config.port} (is the broker running?)"
        )

    def _disconnected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        detail = "" if not reason.is_failure else f": {reason}"
        self._on_state(False, f"lost the broker at {self._config.host}:{self._config.port}{detail}")

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._on_message(message.topic, bytes(message.payload))
