"""Faults on a real peer: the server killed and restarted, slow answers, exception 02, NaN,
implausible values, a scale factor off by ten and the SunSpec "not implemented" values.

The driver runs in virtual time (``ManualTime`` for its worker and as the executor's clock): polls,
request timeouts, reconnect backoff and retries happen when the test steps the time, against a real
pymodbus server on 127.0.0.1 that answers at once, holds its answers (``hold``) or is killed. Nothing
waits for the wall clock, and the times asserted are exact."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from plcrun.executor.alarms import AlarmBus, Severity
from plcrun.executor.clock import ManualTime
from plcrun.executor.driver_api import Quality
from plcrun.io.modbus.driver import ModbusDeviceDriver

from tests.io.modbus.rig import VirtualInputs, device_spec, good, quality
from tests.support.modbus_devices import M203, M213, METER_BASE, ModbusPeer, float_registers, s16

CATALOG = {"main.grid_hz": "LREAL", "main.hz_int": "REAL", "main.w_int": "REAL", "main.site_w": "REAL"}
HZ_203 = METER_BASE + M203 + 16  # 40086, as in the register-map notes
HZ_SF_203 = HZ_203 + 1
W_203 = METER_BASE + M203 + 18
HZ_213 = METER_BASE + M213 + 26

StartMeter = Callable[..., VirtualInputs]


def meter_table(port: int, **extra: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "profile": "sunspec",
        "timeout_ms": 150,
        "poll_ms": 10,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 200,
        "retry_bad_ms": 100,
        "points": {
            "grid_hz": {"sunspec": "213.Hz", "bind": "main.grid_hz"},
            "hz_int": {"sunspec": "203.Hz", "bind": "main.hz_int"},
            "w_int": {"sunspec": "203.W", "bind": "main.w_int"},
            "site_w": {"sunspec": "213.W", "bind": "main.site_w", "plausible": [-1e6, 1e6]},
        },
        **extra,
    }


@pytest.fixture
def start_meter(alarms: AlarmBus) -> Iterator[StartMeter]:
    """Starts a meter driver in virtual time, waits for its first values; stops it at teardown."""
    started: list[ModbusDeviceDriver] = []

    def start(peer: ModbusPeer, **extra: object) -> VirtualInputs:
        time = ManualTime()
        driver = ModbusDeviceDriver(
            device_spec("site-meter", meter_table(peer.port, **extra), CATALOG), alarms, time
        )
        driver.start(time)
        started.append(driver)
        inputs = VirtualInputs(driver, time)
        assert (
            inputs.until("main.grid_hz", good(50.0)) == 0
        )  # connect, discovery and the first poll take no time
        assert inputs.until("main.hz_int", good(50.0)) == 0
        return inputs

    yield start
    for driver in started:
        driver.stop()


MS = 1_000_000


def comm_alarms(alarms: AlarmBus) -> list[str]:
    return [a.message for a in alarms.active() if a.key == "modbus:site-meter:comm"]


def test_server_killed_and_restarted(start_meter: StartMeter, alarms: AlarmBus) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer)
        peer.kill()
        killed = inputs.now_ms
        # the next poll (10 ms) finds the connection closed; the reconnect is refused: lost at once
        assert inputs.until("main.grid_hz", quality(Quality.COMM_LOST)) == killed + 10
        assert inputs.latest["main.grid_hz"].value == 50.0  # the last value stays, with its acquisition time
        for path in ("main.hz_int", "main.w_int", "main.site_w"):
            assert inputs.latest[path].quality is Quality.COMM_LOST
        (comm,) = comm_alarms(alarms)
        assert "is not answering" in comm and f"127.0.0.1:{peer.port}" in comm
        assert not inputs.driver.status().connected
        inputs.time.run_for(1000 * MS, 10 * MS)  # refused attempts at 0, 50, 150, 350, 550, 750, 950 ms
        peer.start()  # the device comes back (fresh process, same port); the next attempt connects
        peer.set_meter(hz=49.9)
        back = inputs.until("main.grid_hz", good(49.9))
        assert back == killed + 10 + 1150  # the attempt due 200 ms after the one at 950 ms
        assert inputs.until("main.hz_int", good(49.9)) == back
        assert comm_alarms(alarms) == []
        status = inputs.driver.status()
        assert status.connected and status.counters["connects"] == 2


def test_slow_answers_time_out_then_recover(start_meter: StartMeter, alarms: AlarmBus) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer)
        peer.hold(True)  # answers only when released: each request times out after timeout_ms = 150
        start = inputs.now_ms
        lost = inputs.until("main.grid_hz", quality(Quality.COMM_LOST), answers_held=True)
        # the poll at 10 ms times out at 160 (one failure: reconnect at once), the discovery read of
        # the new connection at 310: the second failure in a row, lost
        assert lost == start + 10 + 150 + 150
        assert inputs.driver.status().counters["timeouts"] == 2
        assert "no answer within 150 ms" in comm_alarms(alarms)[0]
        peer.set_meter(hz=50.1)
        peer.hold(False)
        back = inputs.until("main.grid_hz", good(50.1))
        assert back == lost + 50  # the reconnect after reconnect_min_ms
        assert comm_alarms(alarms) == []


def test_timeouts_while_reconnecting_count_towards_comm_lost_after(
    start_meter: StartMeter, alarms: AlarmBus
) -> None:
    """A meter that answers late makes the worker reconnect after every timeout (a late answer can
    never be taken for the next request), and the new connection's SunSpec discovery times out
    too. Those are failed requests like the poll's: the device is lost at the comm_lost_after-th
    timeout in a row, not at the first one of a reconnect (it was, whatever comm_lost_after said)."""
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer, comm_lost_after=4)
        peer.hold(True)
        start = inputs.now_ms
        lost = inputs.until("main.grid_hz", quality(Quality.COMM_LOST), answers_held=True)
        # the poll at 10 ms times out at 160, each discovery read after a reconnect 150 ms later
        assert lost == start + 10 + 4 * 150
        status = inputs.driver.status()
        assert status.counters["timeouts"] == 4 and status.counters["connects"] == 4
        assert "no answer within 150 ms" in comm_alarms(alarms)[0]
        # lost: the next connection waits for the backoff (reconnect_min_ms 50)
        inputs.time.run_for(40 * MS, 10 * MS, answers_held=True)
        assert inputs.driver.status().counters["connects"] == 4
        inputs.time.run_for(10 * MS, 10 * MS, answers_held=True)
        assert inputs.driver.status().counters["connects"] == 5
        peer.hold(False)
        assert inputs.until("main.grid_hz", good(50.0)) == lost + 50
        assert comm_alarms(alarms) == []


def test_answers_slower_than_the_freshness_limit_make_values_stale(start_meter: StartMeter) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer, timeout_ms=2000, stale_ms=50)
        start = inputs.now_ms
        peer.hold(True)  # the answer to the poll at 10 ms is late, but within the timeout
        stale = inputs.until("main.grid_hz", quality(Quality.STALE), answers_held=True)
        assert stale == start + 60  # the value read at 0 is older than 50 ms
        assert inputs.latest["main.grid_hz"].value == 50.0
        inputs.time.run_for(1000 * MS, 10 * MS, answers_held=True)  # still waiting, no timeout yet
        peer.set_meter(hz=50.05)
        peer.hold(False)  # the answer arrives at last: fresh again, on the same connection
        assert inputs.until("main.grid_hz", good(50.05)) == start + 1060
        status = inputs.driver.status()
        assert status.counters["timeouts"] == 0 and status.counters["connects"] == 1


def test_exception_02_makes_only_that_point_bad(start_meter: StartMeter, alarms: AlarmBus) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer)
        peer.set_meter(watts=1200.0)
        inputs.until("main.w_int", good(1200.0))
        peer.raise_exception(HZ_203, 2)
        inputs.until("main.hz_int", quality(Quality.BAD))
        problem = inputs.driver.point_problems()["hz_int"]
        assert problem.startswith("register 40086 is not supported by device 'site-meter' (unit 1)")
        assert "exception 02 ILLEGAL DATA ADDRESS" in problem and "read holding registers" in problem
        alarm = next(a for a in alarms.active() if a.key == "modbus:site-meter:point:hz_int")
        assert alarm.severity is Severity.WARNING and "40086" in alarm.message
        # W sits in the same request as Hz; it keeps working
        peer.set_meter(watts=1300.0, hz=49.95)
        inputs.until("main.w_int", good(1300.0))
        inputs.until("main.grid_hz", good(49.95))
        assert inputs.latest["main.hz_int"].quality is Quality.BAD
        # the device supports the register again: re-tried after retry_bad_ms, GOOD, alarm cleared
        peer.raise_exception(HZ_203, None)
        fixed = inputs.now_ms
        assert inputs.until("main.hz_int", good(49.95)) - fixed <= 100
        assert not [a for a in alarms.active() if a.key == "modbus:site-meter:point:hz_int"]


def test_nan_and_implausible_values_are_bad(start_meter: StartMeter) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer)
        peer.set_registers(HZ_213, [0x7FC0, 0x0000])  # float32 NaN: SunSpec "not implemented"
        inputs.until("main.grid_hz", quality(Quality.BAD))
        assert inputs.latest["main.grid_hz"].value == 50.0  # never NaN into the program
        assert "NaN" in inputs.driver.point_problems()["grid_hz"]
        peer.set_registers(HZ_213, float_registers(500.0))  # a frequency off by ten
        inputs.until(
            "main.grid_hz", lambda s: "plausible range 45..65" in inputs.driver.point_problems()["grid_hz"]
        )
        peer.set_registers(HZ_213, float_registers(50.0))
        inputs.until("main.grid_hz", good(50.0))
        # a point with its own plausibility window accepts what the default window would not
        peer.set_registers(METER_BASE + M213 + 28, float_registers(250000.0))
        inputs.until("main.site_w", good(250000.0))


def test_a_scale_factor_off_by_ten_is_caught_by_the_plausibility_window(start_meter: StartMeter) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer)
        peer.set_registers(HZ_SF_203, [s16(-1)])  # 5000 * 10^-1 = 500 Hz
        inputs.until("main.hz_int", quality(Quality.BAD))
        assert "plausible range 45..65" in inputs.driver.point_problems()["hz_int"]
        peer.set_registers(HZ_SF_203, [s16(-2)])
        inputs.until("main.hz_int", good(50.0))


def test_sunspec_not_implemented_values_are_bad(start_meter: StartMeter) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter(peer)
        peer.set_registers(W_203, [0x8000])  # int16 "not implemented"
        inputs.until("main.w_int", quality(Quality.BAD))
        assert "'not implemented' value 0x8000" in inputs.driver.point_problems()["w_int"]
        peer.set_registers(HZ_SF_203, [0x8000])  # scale factor "not implemented"
        inputs.until("main.hz_int", quality(Quality.BAD))
        assert "scale factor" in inputs.driver.point_problems()["hz_int"]
        peer.set_registers(W_203, [s16(-500)])
        peer.set_registers(HZ_SF_203, [s16(-2)])
        inputs.until("main.w_int", good(-500.0))
        inputs.until("main.hz_int", good(50.0))
