"""EVerest session data into EV_SESSION records: values, signs and qualities, against a real Mosquitto
with a test client playing EVerest. Time (freshness) is the driver's virtual clock, advanced by the test."""

from __future__ import annotations

import datetime as dt

from plcrun.executor.driver_api import Quality

from tests.io.everest.conftest import DriverFactory
from tests.io.everest.everest_rig import FakeEverest, session_info
from tests.support.mosquitto import Mosquitto

EV1 = "main.evs[1]"
EV2 = "main.evs[2]"
S = 1_000_000_000

EV_INFO = {
    "soc": 55.5,
    "maximum_power_limit": 11000.0,
    "maximum_current_limit": 32.0,
    "remaining_energy_needed": 18000.0,
    "battery_capacity": 60000.0,
    "departure_time": "2025-04-28T18:30:00Z",
}


def test_session_and_ev_info_fill_the_record_with_plcrun_signs(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, _ = start_driver()
    everest.plug_in("evse_1", power_w=-3500.0)  # EVerest: negative latest_total_w is discharging
    everest.send("evse_1", "ev_info", {**EV_INFO, "maximum_discharge_power_limit": -7000.0})
    inputs.wait_value(f"{EV1}.soc_pct", 55.5)
    inputs.wait_value(f"{EV1}.p_present_w", -3500.0)
    got = {
        path.rpartition(".")[2]: sample.value
        for path, sample in inputs.samples.items()
        if path.startswith(EV1) and not path.endswith("setpoint_age")  # the runtime's, not EVerest's
    }
    departure = int(dt.datetime(2025, 4, 28, 18, 30, tzinfo=dt.UTC).timestamp())
    assert got == {
        "connected": True,
        "bidirectional_allowed": True,  # a BPT mode is offered and the EVSE allows discharge
        "soc_pct": 55.5,
        "min_soc_pct": 20.0,
        "departure_time": departure,
        "p_charge_max_w": 11000.0,
        "p_discharge_max_w": 7000.0,  # the car's limit, as a magnitude
        "e_target_wh": 18000.0,
        "e_min_wh": 0.0,  # above the 20 % floor
        "e_max_wh": 60000.0 * (100 - 55.5) / 100,
        "p_present_w": -3500.0,
    }
    assert all(s.quality is Quality.GOOD for p, s in inputs.samples.items() if p.startswith(EV1))
    # charging: positive power; below the floor the minimum energy request appears
    everest.send("evse_1", "session_info", session_info("Charging", 7200.0))
    everest.send("evse_1", "ev_info", {**EV_INFO, "soc": 12.0, "maximum_discharge_power_limit": 7000.0})
    inputs.wait_value(f"{EV1}.p_present_w", 7200.0)
    inputs.wait_value(f"{EV1}.e_min_wh", 60000.0 * 8.0 / 100)
    # ev_info is a snapshot: without the car's discharge limit, the EVSE's max_discharge_w applies
    assert inputs.value(f"{EV1}.p_discharge_max_w") == 7000.0
    everest.send("evse_1", "ev_info", EV_INFO)
    inputs.wait_value(f"{EV1}.p_discharge_max_w", 5000.0)
    # the powermeter feeds the present power too
    everest.send("evse_1", "powermeter", {"timestamp": "2025-04-28T16:00:01Z", "energy_Wh_import": {"total": 5},
                                          "power_W": {"total": -1500.0}})  # fmt: skip
    inputs.wait_value(f"{EV1}.p_present_w", -1500.0)
    assert driver.status().counters["bad_messages"] == 0


def test_no_discharge_without_bpt_or_permission(start_driver: DriverFactory, everest: FakeEverest) -> None:
    _, inputs, _ = start_driver()
    everest.plug_in("evse_1", modes=["AC_three_phase_core", "DC"])  # no *_BPT mode
    everest.send("evse_1", "ev_info", {**EV_INFO, "maximum_discharge_power_limit": 7000.0})
    inputs.wait_value(f"{EV1}.soc_pct", 55.5)
    assert inputs.value(f"{EV1}.connected") is True
    assert inputs.value(f"{EV1}.bidirectional_allowed") is False
    assert inputs.value(f"{EV1}.p_discharge_max_w") == 0.0
    # evse_2 offers BPT but its configuration does not allow discharging
    everest.plug_in("evse_2")
    everest.send("evse_2", "ev_info", {**EV_INFO, "maximum_discharge_power_limit": 7000.0})
    inputs.wait_value(f"{EV2}.soc_pct", 55.5)
    assert inputs.value(f"{EV2}.bidirectional_allowed") is False
    assert inputs.value(f"{EV2}.p_discharge_max_w") == 0.0


def test_unplugging_clears_what_the_car_said(start_driver: DriverFactory, everest: FakeEverest) -> None:
    _, inputs, _ = start_driver()
    everest.plug_in("evse_1", power_w=3000.0)
    everest.send("evse_1", "ev_info", EV_INFO)
    inputs.wait_value(f"{EV1}.p_charge_max_w", 11000.0)
    everest.send("evse_1", "session_info", session_info("Unplugged", 0.0))
    inputs.wait_value(f"{EV1}.connected", False)
    for field in ("soc_pct", "p_charge_max_w", "p_discharge_max_w", "e_target_wh", "e_max_wh"):
        assert inputs.value(f"{EV1}.{field}") == 0.0, field
    assert inputs.value(f"{EV1}.departure_time") == 0
    assert inputs.value(f"{EV1}.bidirectional_allowed") is False
    # a finished transaction with the car still plugged in is not a session power can flow in
    everest.plug_in("evse_1")
    inputs.wait_value(f"{EV1}.connected", True)
    everest.send("evse_1", "session_info", session_info("FinishedEV", 0.0))
    inputs.wait_value(f"{EV1}.connected", False)


def test_bad_json_marks_the_points_bad_and_changes_nothing_else(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, alarms = start_driver()
    everest.plug_in("evse_1", power_w=2000.0)
    everest.send("evse_1", "ev_info", EV_INFO)
    inputs.wait_value(f"{EV1}.soc_pct", 55.5)
    everest.send("evse_1", "ev_info", b'{"soc": 60, "maximum_power_limit": ')
    inputs.wait(lambda: inputs.samples[f"{EV1}.soc_pct"].quality is Quality.BAD, "soc_pct turns BAD")
    for field in ("soc_pct", "p_charge_max_w", "e_target_wh", "departure_time"):
        sample = inputs.samples[f"{EV1}.{field}"]
        assert sample.quality is Quality.BAD, field
    assert inputs.value(f"{EV1}.soc_pct") == 55.5  # the last good value stays
    assert inputs.value(f"{EV1}.p_charge_max_w") == 11000.0
    # the session_info points are untouched
    assert inputs.samples[f"{EV1}.p_present_w"].quality is Quality.GOOD
    assert inputs.samples[f"{EV1}.connected"].quality is Quality.GOOD
    active = {a.key: a for a in alarms.active()}
    assert "not valid JSON" in active["everest:evse_1:ev_info"].message
    assert driver.status().counters["bad_messages"] == 1
    # a usable message brings the points back and clears the alarm
    everest.send("evse_1", "ev_info", {**EV_INFO, "soc": 61.0})
    inputs.wait_value(f"{EV1}.soc_pct", 61.0)
    assert inputs.samples[f"{EV1}.soc_pct"].quality is Quality.GOOD
    assert "everest:evse_1:ev_info" not in {a.key for a in alarms.active()}


def test_an_implausible_field_is_bad_alone(start_driver: DriverFactory, everest: FakeEverest) -> None:
    _, inputs, alarms = start_driver()
    everest.plug_in("evse_1")
    everest.send("evse_1", "ev_info", EV_INFO)
    inputs.wait_value(f"{EV1}.soc_pct", 55.5)
    everest.send("evse_1", "ev_info", {**EV_INFO, "soc": 150, "maximum_power_limit": 9000.0})
    inputs.wait_value(f"{EV1}.p_charge_max_w", 9000.0)
    assert inputs.samples[f"{EV1}.soc_pct"].quality is Quality.BAD
    assert inputs.value(f"{EV1}.soc_pct") == 55.5
    assert inputs.samples[f"{EV1}.p_charge_max_w"].quality is Quality.GOOD
    assert (
        "soc 150 is outside 0..100 %" in {a.key: a for a in alarms.active()}["everest:evse_1:ev_info"].message
    )
    # a state EVerest does not have makes `connected` BAD
    everest.send("evse_1", "session_info", {"state": "Flying", "latest_total_w": 5.0})
    inputs.wait(lambda: inputs.samples[f"{EV1}.connected"].quality is Quality.BAD, "connected turns BAD")
    assert inputs.value(f"{EV1}.connected") is True
    assert inputs.value(f"{EV1}.p_present_w") == 5.0


def test_silence_makes_the_points_stale_and_a_heartbeat_fresh_again(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, alarms = start_driver()  # stale_after_s = 3
    everest.plug_in("evse_1", power_w=1000.0)
    inputs.wait_value(f"{EV1}.p_present_w", 1000.0)
    inputs.clock.advance(3 * S)  # exactly the limit: still fresh
    inputs.poll()
    assert inputs.samples[f"{EV1}.p_present_w"].quality is Quality.GOOD
    inputs.clock.advance(1)
    changed = inputs.poll()
    silent = [p for p in changed if p.startswith(EV1) and not p.endswith("setpoint_age")]
    assert {changed[p].quality for p in silent} == {Quality.STALE}
    assert len(silent) == len(driver.config.evses[0].inputs)
    assert inputs.value(f"{EV1}.p_present_w") == 1000.0  # the last value stays
    assert "sent nothing for 3 s" in {a.key: a for a in alarms.active()}["everest:evse_1:silent"].message
    # evse_2 never said anything since the connection: after the limit it is lost, without values
    assert inputs.samples[f"{EV2}.soc_pct"].quality is Quality.COMM_LOST
    assert inputs.samples[f"{EV2}.soc_pct"].value is None
    everest.send("evse_1", "heartbeat", 42)
    inputs.wait(lambda: inputs.samples[f"{EV1}.p_present_w"].quality is Quality.GOOD, "fresh again")
    assert "everest:evse_1:silent" not in {a.key for a in alarms.active()}
    # the steady value is as fresh as the heartbeat that vouched for it (AGE_OF restarts from it)
    assert inputs.samples[f"{EV1}.p_present_w"].timestamp_ns == inputs.clock.now_ns()
    inputs.clock.advance(2 * S)
    everest.send("evse_1", "heartbeat", 43)
    inputs.wait(lambda: inputs.samples[f"{EV1}.soc_pct"].timestamp_ns == inputs.clock.now_ns(), "stamped")
    assert inputs.samples[f"{EV1}.p_present_w"].value == 1000.0


def test_a_lost_broker_is_comm_lost_and_recovers(
    start_driver: DriverFactory, everest: FakeEverest, broker: Mosquitto
) -> None:
    driver, inputs, alarms = start_driver()
    everest.plug_in("evse_1", power_w=1000.0)
    inputs.wait_value(f"{EV1}.p_present_w", 1000.0)
    everest.close()
    broker.stop()
    inputs.wait(lambda: inputs.samples[f"{EV1}.connected"].quality is Quality.COMM_LOST, "COMM_LOST")
    assert all(
        s.quality is Quality.COMM_LOST for p, s in inputs.samples.items() if not p.endswith("setpoint_age")
    )  # setpoint_age is the runtime's: it keeps growing while nothing reaches EVerest
    assert inputs.value(f"{EV1}.p_present_w") == 1000.0
    assert not driver.status().connected
    assert "everest:broker" in {a.key for a in alarms.active()}
    broker.start()
    inputs.wait(lambda: driver.status().connected, "the driver reconnects")
    assert "everest:broker" not in {a.key for a in alarms.active()}
    fresh = FakeEverest(broker.port)
    try:
        fresh.send("evse_1", "session_info", session_info("Charging", 2500.0))
        inputs.wait_value(f"{EV1}.p_present_w", 2500.0)
        assert inputs.samples[f"{EV1}.p_present_w"].quality is Quality.GOOD
    finally:
        fresh.close()
