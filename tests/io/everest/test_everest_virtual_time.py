"""The EVerest link's timing in virtual time (``ManualTime``), against a real Mosquitto on 127.0.0.1:
reconnect attempts back off on plcrun's own schedule (not paho's wall-clock delay), a broker that
comes back is reconnected at the next attempt, and a network thread that died is noticed at the
link's next liveness check, not before."""

from __future__ import annotations

from typing import Any

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime, VirtualClock
from plcrun.io.everest import EverestSessionDriver
from plcrun.io.everest.driver import ALARM_BROKER
from plcrun.io.mqtt.session import _LIVENESS_CHECK_S, network_thread_alive

from tests.io.everest.everest_rig import FakeEverest, Inputs, make_config
from tests.io.mqtt.rig import record_connect_attempts
from tests.support.modbus_devices import wait_for
from tests.support.mosquitto import Mosquitto

MS = 1_000_000
WORKERS = 2  # the driver's publisher and the link's session thread


def start(
    port: int, time: ManualTime, alarms: AlarmBus | None = None, **options: Any
) -> EverestSessionDriver:
    driver = EverestSessionDriver(
        make_config(port, **options), alarms or AlarmBus(), wall_clock=lambda: 1745856000.25, worker_time=time
    )
    driver.start(VirtualClock())
    return driver


def test_reconnect_attempts_back_off_on_plcruns_schedule(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    time = ManualTime()
    attempts = record_connect_attempts(monkeypatch, time)
    broker = Mosquitto(tmp_path / "broker")  # its port, but not started: every attempt is refused at once
    port = broker.port
    alarms = AlarmBus()
    driver = start(port, time, alarms, reconnect_min_s=0.05, reconnect_max_s=0.2)
    try:
        time.run_for(1000 * MS, 10 * MS, workers=WORKERS)
        assert attempts == [0, 50, 150, 350, 550, 750, 950]  # waits of 50, 100, then 200 ms
        assert not driver.status().connected
        (alarm,) = [a for a in alarms.active() if a.key == ALARM_BROKER]
        assert f"connection refused by 127.0.0.1:{port}" in alarm.message
        with broker:  # the broker comes up
            time.run_for(140 * MS, 10 * MS, workers=WORKERS)
            assert attempts[-1] == 950 and not driver.status().connected  # the next attempt is at 1150
            time.run_for(10 * MS, 10 * MS, workers=WORKERS)
            assert attempts[-1] == 1150 and driver.status().connected
            assert not [a for a in alarms.active() if a.key == ALARM_BROKER]
    finally:
        driver.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of it
def test_a_dead_network_thread_is_noticed_at_the_next_liveness_check(
    broker: Mosquitto, everest: FakeEverest
) -> None:
    time = ManualTime()
    driver = start(broker.port, time)
    try:
        Inputs(driver, VirtualClock()).wait(lambda: driver.status().connected, "the driver connects")
        time.settle(WORKERS)  # the publisher sent the communication checks; the link watches
        link = driver._link
        client = link._client
        assert client is not None

        def dies(topic: str, payload: bytes) -> None:
            raise SystemExit("ends the network thread")

        link._on_message = dies
        everest.plug_in("evse_1")
        wait_for(lambda: not network_thread_alive(client), 10.0)  # the network thread ends
        time.settle(WORKERS)
        assert driver.status().counters["network_thread_restarts"] == 0  # no check came due yet
        assert driver.status().connected
        time.advance(round(_LIVENESS_CHECK_S * 1e9))
        time.settle(WORKERS)  # noticed, and a new connection made (connecting takes no virtual time)
        assert driver.status().counters["network_thread_restarts"] == 1
        assert driver.status().connected and link._client is not client
    finally:
        driver.stop()
