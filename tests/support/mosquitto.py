"""Start a real Mosquitto broker for a test: free 127.0.0.1 ports, plain and/or TLS listeners.

    with Mosquitto(tmp_path / "broker", tls=TlsListener(ca, cert, key)) as broker:
        ...  # broker.port (plain), broker.tls_port (TLS)

The configuration and log go into the given directory. ``stop()`` ends the broker with SIGTERM
(Mosquitto then saves its persistence database), ``kill()`` with SIGKILL, ``start()`` again reuses the
same ports. A test whose machine has no ``mosquitto`` binary is skipped (``require_mosquitto``).
``MqttProbe`` is a subscriber that records what arrives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 10.0


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_mosquitto() -> str:
    """The mosquitto executable; skips the calling test when it is missing."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def port_accepts(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener: the CA that signs client certificates, the broker's certificate and key."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = True
    tls_version: str = "tlsv1.2"  # Mosquitto 2 treats this as the minimum version


class Mosquitto:
    """One Mosquitto process owned by a test."""

    def __init__(
        self,
        workdir: Path,
        *,
        plain: bool = True,
        tls: TlsListener | None = None,
        persistence: bool = False,
    ) -> None:
        self.binary = require_mosquitto()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = free_port() if plain else 0
        self.tls_port = free_port() if tls is not None else 0
        self.tls = tls
        self.persistence = persistence
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            "per_listener_settings false",
            "allow_anonymous true",
            "user root" if os.geteuid() == 0 else "",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
        ]
        if self.port:
            lines += [f"listener {self.port} {LOOPBACK}"]
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {LOOPBACK}",
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
                f"tls_version {self.tls.tls_version}",
            ]
        self.config_path.write_text("\n".join(line for line in lines if line) + "\n")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Mosquitto:
        if self.running:
            return self
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        ports = [p for p in (self.port, self.tls_port) if p]
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}\n{self.log_text()}")
            if all(port_accepts(p) for p in ports):
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {ports} within {_START_TIMEOUT_S} s")

    def _end(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()
        self._process = None

    def stop(self) -> None:
        """End the broker cleanly (SIGTERM): it saves persistent sessions if persistence is on."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MqttProbe:
    """A test-side paho client: subscribes to topic filters and records every message it receives.

    ``persistent=True`` uses a fixed client id and a persistent session, so that (with broker
    persistence on) messages published while the probe is disconnected are kept for it.
    """

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = "",
        persistent: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._topics = topics
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{os.getpid()}-{id(self)}",
            clean_session=not persistent,
        )
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.connect(LOOPBACK, port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("probe could not subscribe")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        for topic in self._topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def snapshot(self, topic: str | None = None) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if topic is None or m[0] == topic]

    def json(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(payload) for _, payload, _ in self.snapshot(topic)]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Poll ``condition`` until it holds or ``timeout_s`` passes; returns whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return condition()

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
