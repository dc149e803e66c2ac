"""The Modbus worker against a meter that behaves like one in the field, in virtual time (``ManualTime``
drives the worker's schedule and is the executor's clock): minutes of steady, quantised answers stay
GOOD with every sample stamped at its answer; a late answer turns the point STALE and GOOD again when it
arrives; a meter that stops answering goes STALE, then COMM_LOST, and the worker gets it back on its
reconnect schedule. The peer is a real Modbus TCP server on 127.0.0.1 in another process. The request
timeout (``timeout_ms``) runs in virtual time too: a held answer times out when the test steps past it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime
from plcrun.executor.driver_api import Quality, Sample
from plcrun.io.modbus.driver import ModbusDeviceDriver

from tests.io.modbus.rig import device_spec
from tests.io.modbus.test_modbus_chargers import CATALOG as CHARGER_CATALOG
from tests.io.modbus.test_modbus_chargers import SETPOINT, quasar_table, setpoint_register
from tests.support.modbus_devices import QUASAR, ModbusPeer, from_s16, wait_for

MS = 1_000_000
POLL_MS = 100
STALE_MS = 500  # the default freshness limit at 100 ms polls: max(5 polls, 500 ms)
CATALOG = {"main.grid_hz": "REAL", "main.hz_int": "REAL", "main.grid_v": "REAL"}


@pytest.fixture
def meter() -> Iterator[ModbusPeer]:
    with ModbusPeer("meter") as peer:
        peer.set_meter(hz=50.0, watts=-1200.0, volts=230.1)
        yield peer


def start(peer: ModbusPeer, time: ManualTime) -> ModbusDeviceDriver:
    table = {
        "host": "127.0.0.1",
        "port": peer.port,
        "profile": "sunspec",
        "poll_ms": POLL_MS,
        "timeout_ms": 200,
        "points": {
            "grid_hz": {"sunspec": "213.Hz", "bind": "main.grid_hz"},
            "hz_int": {"sunspec": "203.Hz", "bind": "main.hz_int"},  # int16, 10 mHz steps
            "grid_v": {"sunspec": "213.PhV", "bind": "main.grid_v", "plausible": [100, 300]},
        },
    }
    driver = ModbusDeviceDriver(device_spec("meter", table, CATALOG), AlarmBus(), time)
    driver.start(time)
    return driver


class Scan:
    """What the scan sees: the driver's changed samples taken at the virtual time, kept by path."""

    def __init__(self, driver: ModbusDeviceDriver, time: ManualTime) -> None:
        self.driver, self.time = driver, time
        self.latest: dict[str, Sample] = {}

    def take(self) -> dict[str, Sample]:
        new = dict(self.driver.read_inputs(self.time.now_ns()))
        self.latest.update(new)
        return new

    def quality(self, path: str = "main.grid_hz") -> Quality:
        self.take()
        return self.latest[path].quality


def test_minutes_of_steady_quantised_answers_stay_good(meter: ModbusPeer) -> None:
    time = ManualTime()
    driver = start(meter, time)
    scan = Scan(driver, time)
    try:
        time.settle()
        before = meter.request_count()
        polls = driver.status().counters["polls"]
        values: set[float] = set()
        for second in range(180):  # three minutes, one scan look a second
            if second == 90:
                meter.set_meter(hz=49.99)  # one quantum of the int16 register
            time.run_for(1000 * MS, POLL_MS * MS)
            new = scan.take()
            now = time.now_ns()
            for path in ("main.grid_hz", "main.hz_int", "main.grid_v"):
                sample = new[path]  # a repeated value is a new sample: the meter answered it again
                assert sample.quality is Quality.GOOD, (second, path, sample)
                assert now - sample.timestamp_ns < POLL_MS * MS, (second, path)  # stamped at its answer
            values.add(round(float(new["main.hz_int"].value), 3))
        assert values == {50.0, 49.99}  # the quantised values, each repeated for 90 s
        # one poll every 100 ms, on time; each reads the three points' blocks (models 203 and 213 apart)
        assert driver.status().counters["polls"] - polls == 180 * 1000 // POLL_MS
        assert meter.request_count() - before == 3 * 180 * 1000 // POLL_MS
        assert driver.status().connected
    finally:
        driver.stop()


def test_a_late_answer_is_stale_and_a_silent_meter_comm_lost_until_it_is_back(meter: ModbusPeer) -> None:
    time = ManualTime()
    driver = start(meter, time)
    scan = Scan(driver, time)
    try:
        time.run_for(1000 * MS, POLL_MS * MS)
        assert scan.quality() is Quality.GOOD
        answered = scan.latest["main.grid_hz"].timestamp_ns

        # a slow meter: the next poll's answer is held back while the virtual time runs on. The
        # worker waits for it from the poll's virtual time on (settle), not from whenever its thread
        # got there: the peer holding the request says nothing about that, and a worker descheduled
        # in between would time out later than the test steps for
        meter.hold()
        time.advance(POLL_MS * MS)
        time.settle(answers_held=True)
        wait_for(lambda: meter.held_requests() == 1)
        time.advance((STALE_MS - POLL_MS) * MS)
        # past timeout_ms: the poll timed out (one failure of comm_lost_after = 2: not lost), the
        # worker reconnected, and its first read waits for a held answer too
        time.settle(answers_held=True)
        assert driver.status().counters["timeouts"] == 1
        assert scan.quality() is Quality.GOOD  # the freshness limit is not over yet
        time.advance(100 * MS)
        assert scan.quality() is Quality.STALE  # the scan notices: no answer since the last poll
        assert scan.latest["main.grid_hz"].timestamp_ns == answered  # AGE_OF tells how old the value is
        meter.hold(False)  # the late answers arrive: fresh again, stamped when it arrived
        time.settle()
        assert scan.quality() is Quality.GOOD
        assert scan.latest["main.grid_hz"].timestamp_ns == time.now_ns()

        # the meter stops answering: STALE after the freshness limit, COMM_LOST once requests fail
        time.run_for(500 * MS, POLL_MS * MS)
        meter.hold()
        time.advance(POLL_MS * MS)
        time.settle(answers_held=True)  # the poll's request waits from now on (see above)
        time.advance(STALE_MS * MS)
        assert scan.quality() is Quality.STALE
        # two requests time out (timeout_ms = 200, comm_lost_after = 2): the poll's, already past its
        # timeout, then the reconnect's first read, 200 ms later; then the worker backs off
        time.run_for(190 * MS, 10 * MS, answers_held=True)
        assert scan.quality() is Quality.STALE
        time.run_for(10 * MS, 10 * MS, answers_held=True)
        assert scan.quality() is Quality.COMM_LOST
        assert {s.quality for s in scan.take().values()} <= {Quality.COMM_LOST}
        assert all(s.quality is Quality.COMM_LOST for s in scan.latest.values())
        assert not driver.status().connected

        # back: the worker reconnects on its backoff schedule (at most reconnect_max_ms = 1 s)
        meter.hold(False)
        lost_at = time.now_ns()
        while scan.quality() is not Quality.GOOD:
            assert time.now_ns() - lost_at <= 1000 * MS
            time.run_for(POLL_MS * MS, 10 * MS)
        assert all(s.quality is Quality.GOOD for s in scan.latest.values())
        assert driver.status().connected
    finally:
        meter.hold(False)
        driver.stop()


def start_charger_with_setpoint_connection(port: int, time: ManualTime) -> ModbusDeviceDriver:
    """A Quasar charger's driver with write_connection = true (polls every 500 ms, a heartbeat
    re-write every 2 s, 5 s request timeout), started on ``time``."""
    table = quasar_table(
        port, poll_ms=500, heartbeat_ms=2000, timeout_ms=5000, idle_timeout_s=30, write_connection=True
    )
    driver = ModbusDeviceDriver(device_spec("charger-1", table, CHARGER_CATALOG), AlarmBus(), time)
    driver.start(time)
    return driver


def test_a_refresh_waiting_for_its_answer_does_not_hold_back_a_change() -> None:
    """write_connection = true: the heartbeat re-write goes out on the polling connection, so a change
    goes out on the setpoint connection at once although the refresh's answer is late; the change is
    written once more after that answer (the device may apply the two in either order)."""
    time = ManualTime()
    with ModbusPeer("charger") as charger:
        driver = start_charger_with_setpoint_connection(charger.port, time)
        try:
            time.settle(workers=2)  # the polling thread and the setpoint writer
            driver.write_outputs(time.now_ns(), {SETPOINT: -1000.0})
            wait_for(lambda: setpoint_register(charger) == -1000)
            time.run_for(1900 * MS, 100 * MS, workers=2)  # no change: the next refresh is due at 2000 ms
            charger.take_write_log()
            charger.hold()  # from now on every answer is late (a write is applied when it arrives)
            time.advance(100 * MS)
            wait_for(lambda: charger.held_requests() >= 1)  # the refresh of -1000 W waits for its answer
            driver.write_outputs(time.now_ns(), {SETPOINT: -2000.0})
            wait_for(lambda: setpoint_register(charger) == -2000, 3.0)  # not behind the refresh
            charger.hold(False)
            arrived: list[int] = []

            def rewritten() -> bool:
                log = charger.take_write_log()
                arrived.extend(from_s16(v) for _t, register, v in log if register == QUASAR["setpoint"])
                return len(arrived) >= 3

            wait_for(rewritten)
            time.settle(workers=2)
            # the refresh, the change, and the change again once the refresh was answered
            assert arrived == [-1000, -2000, -2000]
            assert setpoint_register(charger) == -2000
        finally:
            charger.hold(False)
            driver.stop()


def test_a_change_leaves_from_the_scan_thread_when_the_setpoint_connection_is_idle() -> None:
    """write_connection = true: the scan thread itself sends a changed setpoint on the idle setpoint
    connection (no thread wake-up in between); changes while that request waits for its answer go out
    after it, from the setpoint thread, one request carrying the newest value."""
    time = ManualTime()
    with ModbusPeer("charger") as charger:
        driver = start_charger_with_setpoint_connection(charger.port, time)
        try:
            time.settle(workers=2)
            writer = driver._worker._writer
            assert writer is not None
            wait_for(lambda: writer.link.connected)  # connected before the first change
            senders: list[tuple[str, int]] = []
            send = writer.link.send

            def recorded(table: Any, address: int, values: Any, function: Any) -> Any:
                senders.append((threading.current_thread().name, from_s16(int(values[0]))))
                return send(table, address, values, function)

            writer.link.send = recorded  # type: ignore[method-assign]
            charger.hold()  # answers are late from now on (a write is applied when it arrives)
            driver.write_outputs(time.now_ns(), {SETPOINT: -1500.0})
            assert senders == [(threading.current_thread().name, -1500)]  # sent before the call returned
            wait_for(lambda: setpoint_register(charger) == -1500)
            driver.write_outputs(time.now_ns(), {SETPOINT: -1600.0})  # the connection waits for an answer
            driver.write_outputs(time.now_ns(), {SETPOINT: -1700.0})
            assert len(senders) == 1 and setpoint_register(charger) == -1500
            charger.hold(False)
            wait_for(lambda: setpoint_register(charger) == -1700)
            assert senders[1:] == [("modbus-charger-1-setpoints", -1700)]  # -1600 coalesced away
            time.settle(workers=2)
            written = driver.last_written(SETPOINT)
            assert written is not None and written[0] == -1700.0  # the device accepted it
        finally:
            charger.hold(False)
            driver.stop()
