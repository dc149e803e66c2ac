"""Faults on a real peer: the server killed and restarted, slow answers, exception 02, NaN,
implausible values, a scale factor off by ten and the SunSpec "not implemented" values."""

from __future__ import annotations

from plcrun.executor.alarms import AlarmBus, Severity
from plcrun.executor.driver_api import Quality

from tests.io.modbus.rig import DriverFactory, Inputs, device_spec, good, quality
from tests.support.modbus_devices import M203, M213, METER_BASE, ModbusPeer, float_registers, s16, wait_for

CATALOG = {"main.grid_hz": "LREAL", "main.hz_int": "REAL", "main.w_int": "REAL", "main.site_w": "REAL"}
HZ_203 = METER_BASE + M203 + 16  # 40086, as in the register-map notes
HZ_SF_203 = HZ_203 + 1
W_203 = METER_BASE + M203 + 18
HZ_213 = METER_BASE + M213 + 26


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


def start_meter_driver(peer: ModbusPeer, start_driver: DriverFactory, **extra: object) -> Inputs:
    driver = start_driver(device_spec("site-meter", meter_table(peer.port, **extra), CATALOG))
    inputs = Inputs(driver)
    inputs.wait("main.grid_hz", good(50.0))
    inputs.wait("main.hz_int", good(50.0))
    return inputs


def test_server_killed_and_restarted(start_driver: DriverFactory, alarms: AlarmBus) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver)
        peer.kill()
        lost = inputs.wait("main.grid_hz", quality(Quality.COMM_LOST))
        assert lost.value == 50.0  # the last value stays, with its acquisition time
        for path in ("main.hz_int", "main.w_int", "main.site_w"):
            inputs.wait(path, quality(Quality.COMM_LOST))
        comm = [a for a in alarms.active() if a.key == "modbus:site-meter:comm"]
        assert comm and "is not answering" in comm[0].message and f"127.0.0.1:{peer.port}" in comm[0].message
        assert not inputs.driver.status().connected

        peer.start()  # the device comes back (fresh process, same port)
        peer.set_meter(hz=49.9)
        inputs.wait("main.grid_hz", good(49.9))
        inputs.wait("main.hz_int", good(49.9))
        wait_for(lambda: not [a for a in alarms.active() if a.key == "modbus:site-meter:comm"])
        status = inputs.driver.status()
        assert status.connected and status.counters["connects"] >= 2


def test_slow_answers_time_out_then_recover(start_driver: DriverFactory, alarms: AlarmBus) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver)
        peer.delay(0.4)  # longer than timeout_ms = 150
        inputs.wait("main.grid_hz", quality(Quality.COMM_LOST))
        assert "no answer within 150 ms" in alarms.active()[0].message
        assert inputs.driver.status().counters["timeouts"] >= 2
        peer.delay(0)
        peer.set_meter(hz=50.1)
        inputs.wait("main.grid_hz", good(50.1))


def test_answers_slower_than_the_freshness_limit_make_values_stale(start_driver: DriverFactory) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver, timeout_ms=2000, stale_ms=50)
        peer.delay(0.3)  # answers still arrive (no timeout), but far less often than every 50 ms
        stale = inputs.wait("main.grid_hz", quality(Quality.STALE))
        assert stale.value == 50.0
        peer.delay(0)
        peer.set_meter(hz=50.05)
        inputs.wait("main.grid_hz", good(50.05))


def test_exception_02_makes_only_that_point_bad(start_driver: DriverFactory, alarms: AlarmBus) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver)
        peer.set_meter(watts=1200.0)
        inputs.wait("main.w_int", good(1200.0))
        peer.raise_exception(HZ_203, 2)
        inputs.wait("main.hz_int", quality(Quality.BAD))
        problem = inputs.driver.point_problems()["hz_int"]
        assert problem.startswith("register 40086 is not supported by device 'site-meter' (unit 1)")
        assert "exception 02 ILLEGAL DATA ADDRESS" in problem and "read holding registers" in problem
        alarm = next(a for a in alarms.active() if a.key == "modbus:site-meter:point:hz_int")
        assert alarm.severity is Severity.WARNING and "40086" in alarm.message
        # W sits in the same request as Hz; it keeps working
        peer.set_meter(watts=1300.0, hz=49.95)
        inputs.wait("main.w_int", good(1300.0))
        inputs.wait("main.grid_hz", good(49.95))
        assert inputs.latest["main.hz_int"].quality is Quality.BAD
        # the device supports the register again: re-tried, GOOD, alarm cleared
        peer.raise_exception(HZ_203, None)
        inputs.wait("main.hz_int", good(49.95))
        wait_for(lambda: not [a for a in alarms.active() if a.key == "modbus:site-meter:point:hz_int"])


def test_nan_and_implausible_values_are_bad(start_driver: DriverFactory) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver)
        peer.set_registers(HZ_213, [0x7FC0, 0x0000])  # float32 NaN: SunSpec "not implemented"
        bad = inputs.wait("main.grid_hz", quality(Quality.BAD))
        assert bad.value == 50.0  # never NaN into the program
        assert "NaN" in inputs.driver.point_problems()["grid_hz"]
        peer.set_registers(HZ_213, float_registers(500.0))  # a frequency off by ten
        inputs.wait(
            "main.grid_hz", lambda s: "plausible range 45..65" in inputs.driver.point_problems()["grid_hz"]
        )
        peer.set_registers(HZ_213, float_registers(50.0))
        inputs.wait("main.grid_hz", good(50.0))
        # a point with its own plausibility window accepts what the default window would not
        peer.set_registers(METER_BASE + M213 + 28, float_registers(250000.0))
        inputs.wait("main.site_w", good(250000.0))


def test_a_scale_factor_off_by_ten_is_caught_by_the_plausibility_window(start_driver: DriverFactory) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver)
        peer.set_registers(HZ_SF_203, [s16(-1)])  # 5000 * 10^-1 = 500 Hz
        inputs.wait("main.hz_int", quality(Quality.BAD))
        assert "plausible range 45..65" in inputs.driver.point_problems()["hz_int"]
        peer.set_registers(HZ_SF_203, [s16(-2)])
        inputs.wait("main.hz_int", good(50.0))


def test_sunspec_not_implemented_values_are_bad(start_driver: DriverFactory) -> None:
    with ModbusPeer("meter") as peer:
        inputs = start_meter_driver(peer, start_driver)
        peer.set_registers(W_203, [0x8000])  # int16 "not implemented"
        inputs.wait("main.w_int", quality(Quality.BAD))
        assert "'not implemented' value 0x8000" in inputs.driver.point_problems()["w_int"]
        peer.set_registers(HZ_SF_203, [0x8000])  # scale factor "not implemented"
        inputs.wait("main.hz_int", quality(Quality.BAD))
        assert "scale factor" in inputs.driver.point_problems()["hz_int"]
        peer.set_registers(W_203, [s16(-500)])
        peer.set_registers(HZ_SF_203, [s16(-2)])
        inputs.wait("main.w_int", good(-500.0))
        inputs.wait("main.hz_int", good(50.0))
