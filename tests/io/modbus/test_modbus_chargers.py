"""Charger profiles against simulated chargers: EV session fields, setpoints written back, heartbeat,
clamping, safe state, write exceptions, and a SunSpec DER whose sign convention is flipped."""

from __future__ import annotations

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.driver_api import Quality
from plcrun.io.modbus.codec import decode

from tests.io.modbus.rig import DriverFactory, Inputs, device_spec, good, quality
from tests.support.modbus_devices import DER_701, DER_704, METER_BASE, QUASAR, ModbusPeer, from_s16, wait_for

FIELDS = {
    "connected": "BOOL",
    "soc_pct": "REAL",
    "p_present_w": "REAL",
    "p_charge_max_w": "REAL",
    "p_discharge_max_w": "REAL",
    "p_setpoint_w": "REAL",
}
CATALOG = {f"main.evs[{i}].{name}": st for i in (1, 2) for name, st in FIELDS.items()} | {
    "main.c1_state": "UINT"
}
SETPOINT = "main.evs[1].p_setpoint_w"


def quasar_table(port: int, **extra: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "profile": "quasar",
        "ev": "main.evs[1]",
        "idle_timeout_s": 5,
        "timeout_ms": 200,
        "poll_ms": 20,
        **extra,
    }


def setpoint_register(peer: ModbusPeer) -> int:
    return from_s16(peer.registers(QUASAR["setpoint"])[0])


def test_quasar_fills_the_ev_session_and_takes_the_setpoint(start_driver: DriverFactory) -> None:
    with ModbusPeer("charger") as charger:
        driver = start_driver(device_spec("charger-1", quasar_table(charger.port), CATALOG))
        inputs = Inputs(driver)
        inputs.wait("main.evs[1].connected", good(True))
        inputs.wait("main.evs[1].soc_pct", good(55.0))
        inputs.wait("main.evs[1].p_charge_max_w", good(7400.0))
        # remote control, power setpoints and the idle timeout were set up on connect
        wait_for(lambda: charger.registers(81)[0] == 1 and charger.registers(83)[0] == 1)
        assert charger.registers(88) == [5]

        driver.write_outputs(0, {SETPOINT: -3000.0})  # discharge 3 kW
        wait_for(lambda: setpoint_register(charger) == -3000)
        inputs.wait("main.evs[1].p_present_w", good(-3000.0))  # the charger follows its setpoint
        driver.write_outputs(0, {SETPOINT: 4200.0})
        wait_for(lambda: setpoint_register(charger) == 4200)
        inputs.wait("main.evs[1].p_present_w", good(4200.0))

        charger.plug_car(False)
        inputs.wait("main.evs[1].connected", good(False))


def test_setpoint_is_refreshed_as_a_heartbeat(start_driver: DriverFactory) -> None:
    with ModbusPeer("charger") as charger:
        driver = start_driver(device_spec("charger-1", quasar_table(charger.port, heartbeat_ms=30), CATALOG))
        driver.write_outputs(0, {SETPOINT: 1000.0})
        wait_for(lambda: setpoint_register(charger) == 1000)
        first = charger.write_counts()[QUASAR["setpoint"]]
        for _ in range(20):  # the same value every scan: no new writes from the program's side
            driver.write_outputs(0, {SETPOINT: 1000.0})
        wait_for(lambda: charger.write_counts()[QUASAR["setpoint"]] >= first + 3)
        assert setpoint_register(charger) == 1000


def test_setpoints_are_clamped_to_the_charger_limits(start_driver: DriverFactory) -> None:
    with ModbusPeer("charger") as charger:
        driver = start_driver(device_spec("charger-1", quasar_table(charger.port, max_power_w=7400), CATALOG))
        driver.write_outputs(0, {SETPOINT: -20000.0})
        wait_for(lambda: setpoint_register(charger) == -7400)
        # the worker counts a write after the device acknowledged it, so the peer sees the register first
        wait_for(lambda: driver.status().counters["clamped"] >= 1)


def test_safe_state_is_written_before_stop_returns(start_driver: DriverFactory) -> None:
    with ModbusPeer("charger") as charger:
        driver = start_driver(device_spec("charger-1", quasar_table(charger.port), CATALOG))
        driver.write_outputs(0, {SETPOINT: 5000.0})
        wait_for(lambda: setpoint_register(charger) == 5000)
        written = driver.last_written(SETPOINT)
        assert written is not None and written[0] == 5000.0 and written[1] > 0
        driver.apply_safe_state({SETPOINT: 0.0})
        driver.stop()
        assert setpoint_register(charger) == 0
        assert charger.registers(QUASAR["actual_power"]) == [0]


def test_safe_state_is_written_even_if_the_program_already_asked_for_it(start_driver: DriverFactory) -> None:
    with ModbusPeer("charger") as charger:
        driver = start_driver(device_spec("charger-1", quasar_table(charger.port), CATALOG))
        driver.write_outputs(0, {SETPOINT: 0.0})
        wait_for(lambda: charger.write_counts().get(QUASAR["setpoint"], 0) >= 1)
        charger.set_registers(QUASAR["setpoint"], [3000])  # someone else changed it at the charger
        driver.apply_safe_state({SETPOINT: 0.0})  # same value as before: written anyway
        driver.stop()
        assert setpoint_register(charger) == 0


@pytest.mark.parametrize("write_connection", [False, True])
def test_a_rejected_write_raises_an_alarm_and_reads_go_on(
    start_driver: DriverFactory, alarms: AlarmBus, write_connection: bool
) -> None:
    with ModbusPeer("charger") as charger:
        table = quasar_table(charger.port, write_connection=write_connection)
        driver = start_driver(device_spec("charger-1", table, CATALOG))
        inputs = Inputs(driver)
        inputs.wait("main.evs[1].soc_pct", good(55.0))
        charger.raise_exception(QUASAR["setpoint"], 2)
        driver.write_outputs(0, {SETPOINT: 2500.0})
        wait_for(lambda: any(a.key == "modbus:charger-1:point:p_setpoint_w" for a in alarms.active()))
        alarm = next(a for a in alarms.active() if a.key == "modbus:charger-1:point:p_setpoint_w")
        assert "register 260 is not supported by device 'charger-1' (unit 1)" in alarm.message
        assert "write single register" in alarm.message
        charger.set_registers(QUASAR["soc"], [56])
        inputs.wait("main.evs[1].soc_pct", good(56.0))
        charger.raise_exception(QUASAR["setpoint"], None)
        driver.write_outputs(0, {SETPOINT: 2600.0})
        wait_for(lambda: setpoint_register(charger) == 2600)
        wait_for(lambda: not any(a.key == "modbus:charger-1:point:p_setpoint_w" for a in alarms.active()))


def test_profile_points_can_be_bound_by_name(start_driver: DriverFactory) -> None:
    from plcrun.io.site_config import parse_site_config

    with ModbusPeer("charger") as charger:
        data = {
            "devices": {"charger-1": quasar_table(charger.port)},
            "bindings": {"main.c1_state": "charger-1.state"},
        }
        site = parse_site_config(data, "site.toml", CATALOG)
        inputs = Inputs(start_driver(site.devices["charger-1"]))
        inputs.wait("main.c1_state", good(4))  # paused: under remote control with a zero setpoint
        assert site.bindings["main.c1_state"].device == "charger-1"


def test_sunspec_der_profile_flips_the_sign_and_scales_the_setpoint(start_driver: DriverFactory) -> None:
    table = {
        "host": "127.0.0.1",
        "port": 0,
        "profile": "sunspec-der",
        "ev": "main.evs[2]",
        "revert_s": 30,
        "heartbeat_ms": 1000,
        "timeout_ms": 200,
        "poll_ms": 20,
    }
    with ModbusPeer("der") as der:
        table["port"] = der.port
        driver = start_driver(device_spec("der-1", table, CATALOG))
        inputs = Inputs(driver)
        inputs.wait("main.evs[2].p_charge_max_w", good(7000.0))  # 700 with W_SF = 1
        inputs.wait("main.evs[2].p_discharge_max_w", good(6000.0))
        base = METER_BASE + DER_704
        wait_for(lambda: der.registers(base + 22)[0] == 1)  # WSetEna
        assert der.registers(base + 23) == [1]  # WSetMod: watts
        assert decode(der.registers(base + 31, 2), "uint32") == 30  # WSetRvrtTms

        driver.write_outputs(0, {"main.evs[2].p_setpoint_w": 3000.0})  # charge 3 kW
        wait_for(lambda: decode(der.registers(base + 24, 2), "int32") == -300)  # -3000 W, WSet_SF = 1
        assert from_s16(der.registers(METER_BASE + DER_701 + 10)[0]) == -3000  # the DER absorbs 3 kW
        inputs.wait("main.evs[2].p_present_w", good(3000.0))  # and we read it back as +3 kW charging
        driver.write_outputs(0, {"main.evs[2].p_setpoint_w": -1500.0})
        inputs.wait("main.evs[2].p_present_w", good(-1500.0))
        assert inputs.latest["main.evs[2].p_present_w"].quality is Quality.GOOD


def test_unreachable_charger_reports_comm_lost(start_driver: DriverFactory, alarms: AlarmBus) -> None:
    from tests.support.modbus_devices import free_port

    port = free_port()  # nothing listens here
    driver = start_driver(device_spec("charger-1", quasar_table(port), CATALOG))
    inputs = Inputs(driver)
    inputs.wait("main.evs[1].soc_pct", quality(Quality.COMM_LOST))
    assert inputs.latest["main.evs[1].connected"].value is False  # a typed default, never None
    assert any("cannot connect to 127.0.0.1" in a.message for a in alarms.active())
    driver.write_outputs(0, {SETPOINT: 1000.0})  # does not block, does not raise


def test_the_quasar_keeps_setpoint_age_and_the_site_file_says_whether_cars_may_discharge(
    start_driver: DriverFactory,
) -> None:
    from plcrun.io.site_config import parse_site_config

    catalog = CATALOG | {
        "main.evs[1].setpoint_age": "TIME",
        "main.evs[1].bidirectional_allowed": "BOOL",
        "main.evs[2].setpoint_age": "TIME",
        "main.evs[2].bidirectional_allowed": "BOOL",
    }
    with ModbusPeer("charger") as charger:
        tables = {
            "charger-1": quasar_table(charger.port),
            "charger-2": quasar_table(charger.port, ev="main.evs[2]", bidirectional_allowed=False),
        }
        site = parse_site_config({"devices": tables}, "site.toml", catalog)
        # the Quasar cannot tell whether the car and its contract allow discharging: the site file does
        assert site.checked["modbus"].session_values == {
            "main.evs[1].bidirectional_allowed": True,
            "main.evs[2].bidirectional_allowed": False,
        }
        driver = start_driver(site.devices["charger-1"])
        assert site.devices["charger-1"].setpoint_age_path == "main.evs[1].setpoint_age"
        assert "main.evs[1].setpoint_age" in driver.input_paths()
        inputs = Inputs(driver)
        inputs.wait("main.evs[1].connected", good(True))
        driver.write_outputs(0, {SETPOINT: -2000.0})
        wait_for(lambda: driver.last_written(SETPOINT) is not None)
        written = driver.last_written(SETPOINT)
        assert written is not None and written[0] == -2000.0
        age = driver.read_inputs(written[1] + 7_000_000)["main.evs[1].setpoint_age"]
        assert age.value == 7_000_000 and age.quality is Quality.GOOD  # 7 ms since the charger took it


def test_a_setpoint_connection_writes_while_the_polls_wait_for_slow_answers(
    start_driver: DriverFactory,
) -> None:
    """write_connection = true: setpoints and the safe value on stop go over a connection of their own,
    so a poll waiting for a slow answer does not hold them back; heartbeats keep coming (on the polling
    connection, between polls)."""
    with ModbusPeer("charger") as charger:
        charger.delay(0.05)  # every answer takes 50 ms: the polling connection is always busy
        spec = device_spec(
            "charger-1",
            quasar_table(charger.port, poll_ms=20, heartbeat_ms=300, write_connection=True),
            CATALOG,
        )
        assert spec.write_connection
        driver = start_driver(spec)
        inputs = Inputs(driver)
        inputs.wait("main.evs[1].connected", good(True))
        driver.write_outputs(0, {SETPOINT: -2500.0})
        wait_for(lambda: setpoint_register(charger) == -2500)
        first = charger.write_counts()[QUASAR["setpoint"]]
        wait_for(lambda: charger.write_counts()[QUASAR["setpoint"]] >= first + 2)  # heartbeats
        driver.apply_safe_state({SETPOINT: 0.0})
        driver.stop()
        assert setpoint_register(charger) == 0


def test_a_changed_setpoint_goes_out_between_the_blocks_of_a_slow_poll(start_driver: DriverFactory) -> None:
    """One connection, a poll of three blocks with 60 ms answers (the worker is always polling): the new
    setpoint is written before the next block instead of after the whole poll."""
    with ModbusPeer("charger") as charger:
        charger.delay(0.06)
        driver = start_driver(device_spec("charger-1", quasar_table(charger.port, poll_ms=20), CATALOG))
        inputs = Inputs(driver)
        inputs.wait("main.evs[1].connected", good(True))
        before = charger.request_count()
        driver.write_outputs(0, {SETPOINT: -3100.0})
        wait_for(lambda: setpoint_register(charger) == -3100)
        # at most the read in flight, then the write: not the rest of a three-block poll
        assert charger.request_count() - before <= 3
