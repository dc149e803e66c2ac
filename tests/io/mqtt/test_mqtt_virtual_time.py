"""The MQTT session's reconnect backoff in virtual time (``ManualTime``): with no broker listening on
127.0.0.1, attempts come at reconnect_min_s, doubling up to reconnect_max_s, exactly, and nothing
waits for the wall clock."""

from __future__ import annotations

from typing import Any

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime
from plcrun.io.mqtt import Backhaul
from plcrun.io.mqtt.session import Session

from tests.io.mqtt.conftest import ConfigFactory
from tests.io.mqtt.rig import GATEWAY, FakeClock
from tests.support.modbus_devices import free_port

MS = 1_000_000


def test_reconnect_attempts_back_off_doubling_to_the_cap(
    make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    time = ManualTime()
    attempts: list[int] = []
    connect = Session._connect

    def counted(self: Session, client: Any, connection: Any) -> str | None:
        attempts.append(time.now_ns() // MS)
        return connect(self, client, connection)

    monkeypatch.setattr(Session, "_connect", counted)
    config = make_config(free_port())  # reconnect_min_s 0.05, reconnect_max_s 0.2; nobody listens
    backhaul = Backhaul(config, AlarmBus(), dict, GATEWAY, worker_time=time)
    backhaul.start(FakeClock())
    try:
        time.run_for(1000 * MS, 10 * MS)
    finally:
        backhaul.stop()
    assert attempts == [0, 50, 150, 350, 550, 750, 950]  # waits of 50, 100, then 200 ms
    assert backhaul.status().connected is False
