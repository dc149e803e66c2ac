"""Hostile command messages over mutual TLS to a real Mosquitto: JSON nested 7,000 deep or numbers of
400 digits are rejected and paho's network thread lives on; a callback that raises is counted and the
thread goes on; a network thread that ends anyway is noticed, alarmed and replaced by a new connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from plcrun.io.mqtt import Backhaul
from plcrun.io.mqtt.backhaul import ALARM_CONNECTION

from tests.io.mqtt.rig import GATEWAY, load_config, wait_until, write_site_config
from tests.io.mqtt.test_mqtt_tls import client_context, tls_section
from tests.support.certs import TlsMaterial, make_tls_material
from tests.support.mosquitto import Mosquitto, MqttProbe, TlsListener

ENABLE = f"plcrun/{GATEWAY}/command/enable"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_rig(tmp_path: Path, pki: TlsMaterial, rig) -> Iterator[tuple[Backhaul, object, MqttProbe]]:  # type: ignore[no-untyped-def]
    listener = TlsListener(pki.ca.cert_path, pki.server.cert, pki.server.key)
    with Mosquitto(tmp_path / "broker", plain=False, tls=listener) as broker:
        probe = MqttProbe(broker.tls_port, [f"plcrun/{GATEWAY}/#"], tls=client_context(pki))
        site = write_site_config(
            tmp_path / "site", broker.tls_port, mqtt_extra=tls_section(pki.ca.cert_path, pki.client)
        )
        backhaul, bus, _clock = rig.start(load_config(site))
        assert wait_until(lambda: backhaul.status().connected, 15.0)
        try:
            yield backhaul, bus, probe
        finally:
            probe.close()


def enable(ident: str, value: bool = True) -> bytes:
    return json.dumps({"value": value, "id": ident, "expires": time.time() + 60}).encode()


def counter(backhaul: Backhaul, name: str) -> int:
    return int(backhaul.status().counters[name])


def test_deep_json_and_huge_numbers_are_rejected_and_the_connection_lives_on(tls_rig) -> None:  # type: ignore[no-untyped-def]
    backhaul, _bus, probe = tls_rig
    probe.publish(ENABLE, b"[" * 7000 + b"]" * 7000)
    probe.publish(ENABLE, b'{"value": [' * 3500 + b"]}" * 3500)
    probe.publish(ENABLE, b'{"value": ' + b"7" * 400 + b', "id": "x", "expires": 1}')
    probe.publish(ENABLE, json.dumps({"value": True, "id": "y", "expires": 10**400}).encode())
    assert wait_until(lambda: counter(backhaul, "commands_rejected") == 4)
    probe.publish(ENABLE, enable("after-the-attack"))
    assert wait_until(lambda: counter(backhaul, "commands_accepted") == 1)
    status = backhaul.status()
    assert status.connected and status.counters["callback_errors"] == 0
    assert status.counters["connections"] == 1


def test_a_callback_that_raises_is_counted_and_the_network_thread_goes_on(tls_rig) -> None:  # type: ignore[no-untyped-def]
    backhaul, _bus, probe = tls_rig
    session = backhaul._session
    original = session._on_message

    def buggy(topic: str, payload: bytes, retained: bool) -> None:
        session._on_message = original  # one failure, then back to normal
        raise RuntimeError("a bug in a callback")

    session._on_message = buggy
    probe.publish(ENABLE, enable("first"))
    assert wait_until(lambda: counter(backhaul, "callback_errors") == 1)
    probe.publish(ENABLE, enable("second"))
    assert wait_until(lambda: counter(backhaul, "commands_accepted") == 1)
    assert counter(backhaul, "connections") == 1 and backhaul.status().connected


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of it
def test_a_dead_network_thread_raises_the_alarm_and_a_new_connection_replaces_it(tls_rig) -> None:  # type: ignore[no-untyped-def]
    backhaul, bus, probe = tls_rig
    session = backhaul._session
    original = session._on_message
    alarms: list[tuple[str, bool]] = []
    bus.subscribe(lambda alarm: alarms.append((alarm.key, alarm.active)))

    def fatal(topic: str, payload: bytes, retained: bool) -> None:
        session._on_message = original
        raise SystemExit("ends the thread: not an Exception, so no guard catches it")

    session._on_message = fatal
    probe.publish(ENABLE, enable("kills"))
    assert wait_until(lambda: counter(backhaul, "network_thread_restarts") == 1)
    assert wait_until(lambda: counter(backhaul, "connections") == 2, 15.0)
    assert (ALARM_CONNECTION, True) in alarms
    assert wait_until(lambda: (ALARM_CONNECTION, False) in alarms)
    assert backhaul.status().connected
    probe.publish(ENABLE, enable("works-again"))
    assert wait_until(lambda: counter(backhaul, "commands_accepted") == 1)
