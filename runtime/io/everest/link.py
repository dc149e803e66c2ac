"""The driver's broker connection: the MQTT backhaul's ``Session`` (``io/mqtt/session.py``) with the
EVSE topics as its subscriptions and no status topic.

The session thread connects, waits for the CONNACK and for the SUBACK of the EVSE topics (the link
counts as up once the broker confirmed them: from then on no message is missed), hands the client
to paho's network thread and watches it; a refused or lost connection is retried with plcrun's own
backoff (``reconnect_min_s`` doubling to ``reconnect_max_s``) on the injected ``WorkerTime``, so
reconnects are tested in virtual time. paho's automatic reconnect (and its wall-clock delay) is off.
Every paho callback is guarded (``CallbackGuard``); a network thread that ended anyway is noticed by
the session at its next liveness check and replaced by a new connection. Connection changes reach the
driver through ``on_state`` (on the session thread), messages through ``on_message`` (on paho's
network thread); both must not block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.threads import CallbackGuard
from ..mqtt.session import Connected, ConnectFailed, Disconnected, NetworkThreadDied, Session
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
        worker_time: WorkerTime = REAL_TIME,
        on_thread_died: Callable[[str], None] | None = None,
    ) -> None:
        self._config = config
        self._topics = tuple(topics)
        self._on_message = on_message
        self._on_state = on_state
        self._on_thread_died = on_thread_died
        self._time = worker_time
        self._client: mqtt.Client | None = None
        self._session: Session | None = None
        self.guard = CallbackGuard("EVerest link")
        self.nodelay = False  # TCP_NODELAY is set on the current socket

    def start(self) -> None:
        config = self._config
        session = Session(
            config,
            config.client_id,
            None,
            online_payload=bytes,
            offline_payload=lambda reason: b"",
            command_topics=self._topics,
            on_message=lambda topic, payload, _retained: self._on_message(topic, payload),
            post=self._event,
            worker_time=self._time,
            name="EVerest link",
            thread_name="plcrun-everest-link",
            require_subscriptions=True,
        )
        self.guard = session.guard
        self._session = session
        session.start()

    def stop(self) -> None:
        session = self._session
        if session is None:
            return
        self._session = None
        session.stop(self._config.stop_timeout_s)
        self._client = None

    def publish(self, topic: str, payload: bytes, qos: int) -> mqtt.MQTTMessageInfo | None:
        """Queue a message for paho's thread; None when there is no connection (it is dropped)."""
        client = self._client
        if client is None:
            return None
        info = client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info

    # ------------------------------------------------------------ session events (session thread)
    def _event(self, event: object) -> None:
        where = f"{self._config.host}:{self._config.port}"
        if isinstance(event, Connected):
            self.nodelay = event.tcp_nodelay
            self._client = event.client
            self._on_state(True, f"connected to {where}")
        elif isinstance(event, ConnectFailed):
            self._on_state(False, event.reason)
        elif isinstance(event, NetworkThreadDied):
            self._client = None
            if self._on_thread_died is not None:
                self._on_thread_died(event.reason)
        elif isinstance(event, Disconnected):
            self._client = None
            if event.reason != "stopped":
                self._on_state(False, f"lost the broker at {where}: {event.reason}")
