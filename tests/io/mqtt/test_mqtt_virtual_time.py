"""The MQTT session's reconnect backoff in virtual time (``ManualTime``): with no broker listening on
127.0.0.1, attempts come at reconnect_min_s, doubling up to reconnect_max_s, exactly, and nothing
waits for the wall clock."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime
from plcrun.io.mqtt import Backhaul
from plcrun.io.mqtt.session import Session

from tests.io.mqtt.conftest import ConfigFactory
from tests.io.mqtt.rig import GATEWAY, FakeClock, record_connect_attempts
from tests.support.modbus_devices import free_port, wait_for

MS = 1_000_000


def test_reconnect_attempts_back_off_doubling_to_the_cap(
    make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    time = ManualTime()
    attempts = record_connect_attempts(monkeypatch, time)
    config = make_config(free_port())  # reconnect_min_s 0.05, reconnect_max_s 0.2; nobody listens
    backhaul = Backhaul(config, AlarmBus(), dict, GATEWAY, worker_time=time)
    backhaul.start(FakeClock())
    try:
        time.run_for(1000 * MS, 10 * MS)
    finally:
        backhaul.stop()
    assert attempts == [0, 50, 150, 350, 550, 750, 950]  # waits of 50, 100, then 200 ms
    assert backhaul.status().connected is False


def test_a_client_that_cannot_be_made_is_a_failed_attempt_not_a_dead_thread(
    make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making paho's client fails once (say a TLS file vanished at run time): the session thread
    logs it, counts it as a failed attempt and goes on with the same backoff."""
    time = ManualTime()
    attempts: list[int] = []
    new_client = Session._new_client

    def failing_once(self: Session, connection: Any) -> Any:
        attempts.append(time.now_ns() // MS)
        if len(attempts) == 1:
            raise FileNotFoundError("ca.pem")
        return new_client(self, connection)

    monkeypatch.setattr(Session, "_new_client", failing_once)
    backhaul = Backhaul(make_config(free_port()), AlarmBus(), dict, GATEWAY, worker_time=time)
    backhaul.start(FakeClock())
    try:
        time.run_for(1000 * MS, 10 * MS)
    finally:
        backhaul.stop()
    assert attempts == [0, 50, 150, 350, 550, 750, 950]  # the thread lived on, on the same schedule


def test_a_broker_that_never_answers_times_out_at_connect_timeout_s(
    make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer on 127.0.0.1 that accepts the connection and the CONNECT but never sends a CONNACK
    (a hung broker, a wrong service on the port): each attempt ends after connect_timeout_s (3 s) of
    virtual time, then the backoff. The test's peer holds its answer forever (``answers_held``)."""
    time = ManualTime()
    attempts = record_connect_attempts(monkeypatch, time)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        accepted: list[socket.socket] = []
        silent.settimeout(0.05)

        def accept_forever() -> None:
            while True:
                try:
                    accepted.append(silent.accept()[0])  # and never answer
                except TimeoutError:
                    continue
                except OSError:
                    return  # closed at the end of the test

        threading.Thread(target=accept_forever, daemon=True).start()
        backhaul = Backhaul(make_config(silent.getsockname()[1]), AlarmBus(), dict, GATEWAY, worker_time=time)
        backhaul.start(FakeClock())
        try:
            time.run_for(2990 * MS, 10 * MS, answers_held=True)
            assert attempts == [0]  # still waiting for the CONNACK
            time.run_for(10 * MS, 10 * MS, answers_held=True)
            assert attempts == [0]  # timed out at 3 s; the next attempt comes 50 ms later
            # the backhaul's worker takes the session's event from its queue (no time passes)
            assert wait_for(lambda: "no CONNACK from 127.0.0.1" in backhaul.status().detail, 5.0)
            assert "within 3 s" in backhaul.status().detail
            time.run_for(3200 * MS, 10 * MS, answers_held=True)
        finally:
            backhaul.stop()
            for peer in accepted:
                peer.close()
    assert attempts == [0, 3050, 6150]  # 3 s each, then waits of 50 and 100 ms
