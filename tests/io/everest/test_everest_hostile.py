"""Hostile ``e2m`` messages against a real Mosquitto: JSON nested 7,000 deep or a 400-digit number costs
the facts of that message (BAD, with an alarm), never the link; a callback that raises is counted; a
network thread that ends anyway is noticed (COMM_LOST, alarm) and replaced by a new connection."""

from __future__ import annotations

import pytest
from plcrun.executor.driver_api import Quality
from plcrun.io.everest.driver import ALARM_BROKER

from tests.io.everest.conftest import DriverFactory
from tests.io.everest.everest_rig import FakeEverest, session_info

EV1 = "main.evs[1]"
EV2 = "main.evs[2]"
EV_INFO = {"soc": 55.5, "maximum_power_limit": 11000.0, "battery_capacity": 60000.0}


def test_deep_json_and_huge_numbers_cost_that_message_not_the_link(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, alarms = start_driver()
    everest.plug_in("evse_1")
    everest.plug_in("evse_2")
    everest.send("evse_1", "ev_info", EV_INFO)
    everest.send("evse_2", "ev_info", EV_INFO)
    inputs.wait_value(f"{EV2}.soc_pct", 55.5)
    inputs.wait_value(f"{EV1}.soc_pct", 55.5)

    everest.send("evse_1", "ev_info", b"[" * 7000 + b"]" * 7000)
    inputs.wait(lambda: inputs.samples[f"{EV1}.soc_pct"].quality is Quality.BAD, "deep JSON marks soc BAD")
    active = {alarm.key: alarm.message for alarm in alarms.active()}
    assert "nested more than 32 levels" in active["everest:evse_1:ev_info"]
    assert inputs.samples[f"{EV1}.p_present_w"].quality is Quality.GOOD  # session_info is not affected
    assert inputs.samples[f"{EV2}.soc_pct"].quality is Quality.GOOD  # nor is the other car

    everest.send("evse_1", "ev_info", EV_INFO)
    inputs.wait(lambda: inputs.samples[f"{EV1}.soc_pct"].quality is Quality.GOOD, "a good ev_info again")
    everest.send("evse_1", "session_info", b'{"state": "Charging", "latest_total_w": ' + b"9" * 400 + b"}")
    inputs.wait(
        lambda: inputs.samples[f"{EV1}.p_present_w"].quality is Quality.BAD, "a 400-digit number marks BAD"
    )
    assert inputs.samples[f"{EV1}.soc_pct"].quality is Quality.GOOD
    everest.send("evse_1", "session_info", session_info("Charging", 4200.0))
    inputs.wait_value(f"{EV1}.p_present_w", 4200.0)
    status = driver.status()
    assert status.connected and status.counters["callback_errors"] == 0
    assert status.counters["network_thread_restarts"] == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of it
def test_a_callback_that_raises_is_counted_and_a_dead_thread_is_replaced(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, alarms = start_driver()
    link = driver._link
    original = link._on_message
    raised: list[BaseException] = [RuntimeError("a bug"), SystemExit("ends the network thread")]

    def buggy(topic: str, payload: bytes) -> None:
        error = raised.pop(0)
        if not raised:
            link._on_message = original
        raise error

    link._on_message = buggy
    everest.plug_in("evse_1")  # two messages: the first raises a bug, the second ends the thread
    inputs.wait(lambda: driver.status().counters["network_thread_restarts"] == 1, "the dead thread is seen")
    assert driver.status().counters["callback_errors"] == 1
    assert any(alarm.key == ALARM_BROKER for alarm in alarms.history())
    inputs.wait(lambda: driver.status().connected, "a new connection")
    assert ALARM_BROKER not in {alarm.key for alarm in alarms.active()}
    everest.plug_in("evse_1", power_w=1500.0)
    inputs.wait_value(f"{EV1}.p_present_w", 1500.0)
    assert inputs.samples[f"{EV1}.p_present_w"].quality is Quality.GOOD
