"""The Modbus worker's timing in virtual time (``ManualTime``): the poll schedule, the reconnect
backoff and the output heartbeat, against a real Modbus server on 127.0.0.1. Time moves only when
the test steps it, so the counts are exact and nothing waits for the wall clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime
from plcrun.io.modbus.driver import ModbusDeviceDriver

from tests.io.modbus.rig import device_spec
from tests.support.modbus_devices import ModbusPeer, free_port

MS = 1_000_000
CATALOG = {"main.level": "UINT", "main.set": "UINT"}


@pytest.fixture(scope="module")
def device() -> Iterator[ModbusPeer]:
    with ModbusPeer("generic") as peer:
        yield peer


def start(table: dict[str, object], time: ManualTime) -> ModbusDeviceDriver:
    driver = ModbusDeviceDriver(device_spec("dev", table, CATALOG), AlarmBus(), time)
    driver.start(time)  # the executor's clock is the same virtual time here
    return driver


def test_polls_follow_the_period_exactly(device: ModbusPeer) -> None:
    time = ManualTime()
    table = {
        "host": "127.0.0.1",
        "port": device.port,
        "poll_ms": 100,
        "points": {"level": {"address": 3, "bind": "main.level"}},
    }
    driver = start(table, time)
    try:
        time.settle()
        before = device.request_count()
        time.run_for(1000 * MS, 10 * MS)
        assert device.request_count() - before == 10  # one read per 100 ms, none in between
        time.run_for(250 * MS, 50 * MS)
        assert device.request_count() - before == 12
    finally:
        driver.stop()


def test_reconnect_attempts_back_off_doubling_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    time = ManualTime()
    table = {
        "host": "127.0.0.1",
        "port": free_port(),  # nobody listens: every connect is refused at once
        "poll_ms": 100,
        "reconnect_max_ms": 800,
        "points": {"level": {"address": 3, "bind": "main.level"}},
    }
    driver = ModbusDeviceDriver(device_spec("dev", table, CATALOG), AlarmBus(), time)
    transport = driver._worker._transport
    attempts: list[int] = []
    connect = transport.connect

    def counted() -> None:
        attempts.append(time.now_ns() // MS)
        connect()

    monkeypatch.setattr(transport, "connect", counted)
    driver.start(time)
    try:
        time.run_for(4000 * MS, 50 * MS)
    finally:
        driver.stop()
    # waits of 100, 200, 400, then 800 ms (reconnect_min defaults to the poll period)
    assert attempts == [0, 100, 300, 700, 1500, 2300, 3100, 3900]


def test_unchanged_outputs_are_rewritten_at_the_heartbeat(device: ModbusPeer) -> None:
    time = ManualTime()
    table = {
        "host": "127.0.0.1",
        "port": device.port,
        "poll_ms": 100,
        "heartbeat_ms": 500,
        "points": {"set": {"address": 40, "direction": "out", "bind": "main.set"}},
    }
    driver = start(table, time)
    try:
        time.settle()
        before = device.write_counts().get(40, 0)
        driver.write_outputs(time.now_ns(), {"main.set": 7})
        time.run_for(2000 * MS, 10 * MS)
        assert device.registers(40) == [7]
        assert device.write_counts().get(40, 0) - before == 1 + 4  # the change, then every 500 ms
        driver.write_outputs(time.now_ns(), {"main.set": 7})  # the same value again: no extra write
        time.run_for(100 * MS, 10 * MS)
        assert device.write_counts().get(40, 0) - before == 5
    finally:
        driver.stop()
