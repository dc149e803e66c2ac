"""SunSpec discovery and polling against a simulated meter in another process (127.0.0.1)."""

from __future__ import annotations

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.driver_api import Quality

from tests.io.modbus.rig import DriverFactory, Inputs, device_spec, good, quality
from tests.support.modbus_devices import M203, M213, METER_BASE, ModbusPeer, float_registers

CATALOG = {
    "main.grid_hz": "LREAL",
    "main.hz_int": "REAL",
    "main.site_w": "REAL",
    "main.grid_v": "REAL",
    "main.v_int": "REAL",
    "main.der_w": "REAL",
}


def meter_table(port: int, **extra: object) -> dict[str, object]:
    table: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "profile": "sunspec",
        "timeout_ms": 300,
        "poll_ms": 20,
        "poll_groups": {"fast": 10},
        "points": {
            "grid_hz": {"sunspec": "213.Hz", "bind": "main.grid_hz", "poll": "fast"},
            "hz_int": {"sunspec": "203.Hz", "bind": "main.hz_int", "poll": "fast"},
            "site_w": {"sunspec": "213.W", "bind": "main.site_w", "poll": "fast"},
            "grid_v": {"sunspec": "213.PhV", "bind": "main.grid_v", "plausible": [100, 300]},
            "v_int": {"sunspec": "203.PhV", "bind": "main.v_int"},
        },
    }
    table.update(extra)
    return table


def test_discovery_walks_the_model_chain_and_binds_points_by_name(
    meter: ModbusPeer, start_driver: DriverFactory
) -> None:
    meter.set_meter(hz=50.0, watts=1500.0, volts=230.0)
    driver = start_driver(device_spec("site-meter", meter_table(meter.port), CATALOG))
    inputs = Inputs(driver)
    inputs.wait("main.grid_hz", good(50.0))
    inputs.wait("main.hz_int", good(50.0))  # int16 5000 with Hz_SF = -2
    inputs.wait("main.site_w", good(1500.0))
    inputs.wait("main.grid_v", good(230.0))
    inputs.wait("main.v_int", good(230.0))  # int16 2300 with V_SF = -1
    sunspec = driver.sunspec_map
    assert sunspec is not None
    assert [(m.model_id, m.address) for m in sunspec.models] == [
        (1, METER_BASE + 2),
        (203, METER_BASE + M203),
        (213, METER_BASE + M213),
    ]
    assert sunspec.common["Mn"] == "plcrun-test"
    assert driver.status().connected


def test_a_steady_meter_stays_fresh_and_a_step_reaches_the_samples(
    meter: ModbusPeer, start_driver: DriverFactory
) -> None:
    meter.set_meter(hz=50.0, watts=0.0, volts=230.0)
    driver = start_driver(device_spec("site-meter", meter_table(meter.port), CATALOG))
    inputs = Inputs(driver)
    before = inputs.wait("main.grid_hz", good(50.0))
    inputs.wait("main.site_w", good(0.0))
    # nothing changes on the device, but it answers: every answer is a fresh sample of the same value
    later = inputs.wait("main.grid_hz", lambda s: s.timestamp_ns > before.timestamp_ns)
    assert later.value == 50.0 and later.quality is Quality.GOOD
    meter.set_meter(hz=49.75)
    after = inputs.wait("main.grid_hz", good(49.75))
    assert after.timestamp_ns > later.timestamp_ns
    inputs.wait("main.hz_int", good(49.75))


@pytest.mark.parametrize("base", [0, 50000])
def test_discovery_finds_the_marker_at_the_other_bases(base: int, start_driver: DriverFactory) -> None:
    with ModbusPeer("meter", base=base) as peer:
        peer.set_meter(hz=50.02)
        driver = start_driver(device_spec("m", meter_table(peer.port), CATALOG))
        Inputs(driver).wait("main.grid_hz", good(50.02))
        assert driver.sunspec_map is not None and driver.sunspec_map.base == base


def test_a_model_the_device_lacks_makes_only_its_points_bad(
    meter: ModbusPeer, start_driver: DriverFactory, alarms: AlarmBus
) -> None:
    table = meter_table(meter.port)
    table["points"]["der_w"] = {"sunspec": "701.W", "bind": "main.der_w"}  # type: ignore[index]
    meter.set_meter(hz=50.0)
    driver = start_driver(device_spec("site-meter", table, CATALOG))
    inputs = Inputs(driver)
    inputs.wait("main.der_w", quality(Quality.BAD))
    inputs.wait("main.grid_hz", good(50.0))
    problem = driver.point_problems()["der_w"]
    assert "model 701 not found" in problem and "1, 203, 213" in problem
    assert any("701" in alarm.message for alarm in alarms.active())


def test_a_device_without_sunspec_marker_is_reported(start_driver: DriverFactory, alarms: AlarmBus) -> None:
    with ModbusPeer("generic") as peer:
        driver = start_driver(device_spec("plc", meter_table(peer.port, sunspec_base=0), CATALOG))
        inputs = Inputs(driver)
        inputs.wait("main.grid_hz", quality(Quality.BAD))
        assert "no SunSpec marker 'SunS' at 0" in driver.point_problems()["grid_hz"]
        assert any(a.key == "modbus:plc:sunspec" for a in alarms.active())


def test_float_meter_values_keep_their_float32_resolution(
    meter: ModbusPeer, start_driver: DriverFactory
) -> None:
    # 10 mHz steps are exactly what the int16 model cannot resolve below; the float model can
    meter.set_registers(METER_BASE + M213 + 26, float_registers(49.987))
    driver = start_driver(device_spec("site-meter", meter_table(meter.port), CATALOG))
    Inputs(driver).wait("main.grid_hz", good(49.987))
