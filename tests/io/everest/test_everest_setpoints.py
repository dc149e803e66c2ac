"""Setpoints out to EVerest (``m2e/set_external_limits``), the refresh rule in virtual time, the safe
state, and one run of an ST program through the executor with the driver on a real broker."""

from __future__ import annotations

import math

from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.io.everest import EverestSessionDriver

from tests.io.everest.conftest import DriverFactory
from tests.io.everest.everest_rig import (
    LIMITS_API,
    PROGRAM,
    FakeEverest,
    make_config,
    session_info,
)
from tests.support.mosquitto import Mosquitto

SETPOINT = "main.evs[1].p_setpoint_w"
MS = 1_000_000
S = 1_000_000_000
STAMP = "2025-04-28T16:00:00.250Z"  # the drivers' wall clock in these tests


def test_a_setpoint_is_published_as_set_external_limits(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, _ = start_driver(priority=50)
    assert driver.output_paths() == frozenset({SETPOINT})  # evse_2 has no limits module
    driver.write_outputs(0, {SETPOINT: -4000.0})
    assert everest.probe.wait_for(lambda: everest.limits("limits_1"))
    assert everest.limits("limits_1")[-1] == {
        "schedule_import": [
            {
                "timestamp": STAMP,
                "limits_to_root": {"total_power_W": {"value": 0.0, "source": "plcrun"}},
                "limits_to_leaves": {"total_power_W": {"value": 0.0, "source": "plcrun"}},
            }
        ],
        "schedule_export": [
            {
                "timestamp": STAMP,
                "limits_to_root": {"total_power_W": {"value": 4000.0, "source": "plcrun"}},
                "limits_to_leaves": {"total_power_W": {"value": 4000.0, "source": "plcrun"}},
            }
        ],
        "schedule_setpoints": [
            {"timestamp": STAMP, "setpoint": {"total_power_W": -4000.0, "priority": 50, "source": "plcrun"}}
        ],
    }
    driver.write_outputs(200 * MS, {SETPOINT: 7000.0})  # charging: import allowed, export not
    assert everest.probe.wait_for(lambda: len(everest.limits("limits_1")) == 2)
    last = everest.limits("limits_1")[-1]
    assert last["schedule_setpoints"][0]["setpoint"]["total_power_W"] == 7000.0
    assert last["schedule_import"][0]["limits_to_root"]["total_power_W"]["value"] == 7000.0
    assert last["schedule_export"][0]["limits_to_root"]["total_power_W"]["value"] == 0.0
    # the communication check goes to both API modules of the EVSE, and to the monitoring-only one
    inputs.poll()
    for topic in (
        "everest_api/1/evse_manager_consumer/evse_1/m2e/communication_check",
        "everest_api/1/evse_manager_consumer/evse_2/m2e/communication_check",
        f"{LIMITS_API}/limits_1/m2e/communication_check",
    ):
        assert everest.probe.wait_for(lambda topic=topic: everest.messages(topic))
        assert everest.messages(topic)[-1] == b"true"


def test_refresh_and_rate_limit_follow_the_scans_in_virtual_time(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, _, _ = start_driver(refresh_s=2.0, min_interval_s=0.1)

    def queued() -> int:
        return driver.status().counters["setpoints"]

    driver.write_outputs(0, {SETPOINT: 1000.0})
    assert queued() == 1
    driver.write_outputs(10 * MS, {SETPOINT: 1000.0})  # unchanged, not due
    driver.write_outputs(50 * MS, {SETPOINT: 2000.0})  # changed, but within min_interval of the last
    assert queued() == 1
    driver.write_outputs(100 * MS, {SETPOINT: 2000.0})  # the change goes out once min_interval passed
    assert queued() == 2
    for t in range(110, 2100, 10):  # unchanged: the next refresh is due 2 s after the last send
        driver.write_outputs(t * MS, {SETPOINT: 2000.0})
    assert queued() == 2
    for t in range(2100, 4100, 10):
        driver.write_outputs(t * MS, {SETPOINT: 2000.0})
    assert queued() == 3  # refreshed at 2.1 s; the next one is due at 4.1 s
    assert everest.probe.wait_for(lambda: everest.limits("limits_1")[-1:] and _setpoint(everest) == 2000.0)
    driver.write_outputs(4100 * MS, {SETPOINT: 2000.0})  # a refresh ...
    driver.write_outputs(4110 * MS, {SETPOINT: -3000.0})  # ... never holds back a real change
    assert queued() == 5
    assert everest.probe.wait_for(lambda: _setpoint(everest) == -3000.0)
    assert driver._link.nodelay  # small setpoint messages leave at once (no Nagle delay)
    # a non-finite setpoint is never sent: 0 W goes out instead, with an alarm
    driver.write_outputs(4300 * MS, {SETPOINT: math.nan})
    assert everest.probe.wait_for(lambda: _setpoint(everest) == 0.0)


def test_safe_state_goes_out_at_once_and_a_stop_flushes_it(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, _, _ = start_driver()
    driver.write_outputs(0, {SETPOINT: -3000.0})
    assert everest.probe.wait_for(lambda: everest.limits("limits_1"))
    driver.apply_safe_state({SETPOINT: 0.0})
    driver.stop()
    assert everest.probe.wait_for(lambda: _setpoint(everest) == 0.0)
    assert [_power(doc) for doc in everest.limits("limits_1")] == [-3000.0, 0.0]


def test_st_program_dispatches_the_sessions_it_reads(broker: Mosquitto, everest: FakeEverest) -> None:
    """End to end: EVerest-shaped messages -> driver -> ST program (virtual time) -> setpoint on the broker."""
    from plcrun.executor.alarms import AlarmBus

    driver = EverestSessionDriver(make_config(broker.port), AlarmBus(), wall_clock=lambda: 1745856000.25)
    executor = Executor(compile_file(PROGRAM), clock=VirtualClock(), drivers=[driver])
    executor.start()  # starts the driver on the executor's clock
    try:
        assert everest.probe.wait_for(lambda: driver.status().connected)
        everest.plug_in("evse_1", power_w=0.0)
        everest.send("evse_1", "ev_info", {"soc": 70.0, "maximum_power_limit": 11000.0,
                                           "maximum_discharge_power_limit": 3000.0})  # fmt: skip
        everest.send("evse_2", "session_info", session_info("Charging", 0.0))
        assert everest.probe.wait_for(lambda: driver.status().counters["messages"] >= 4)
        executor.run(max_scans=3)
        # the program asks for -4000 W: car 1 may give 3000 W, car 2 may not discharge
        assert executor.read("main.evs[1].connected") is True
        assert executor.read("main.evs[1].bidirectional_allowed") is True
        assert executor.read("main.evs[1].p_setpoint_w") == -3000.0
        assert executor.read("main.evs[2].connected") is True
        assert executor.read("main.evs[2].p_setpoint_w") == 0.0
        assert everest.probe.wait_for(lambda: _setpoint(everest) == -3000.0)
        # the site turns to charging: the program follows, the driver sends the change
        executor.journal.write("main.request_w", 5000.0, source="test")
        executor.run(max_scans=20)
        assert everest.probe.wait_for(lambda: _setpoint(everest) == 5000.0)
        assert executor.read("main.evs[1].p_setpoint_w") == 5000.0
    finally:
        executor.shutdown()  # safe state (0 W) goes out before the driver disconnects
    assert everest.probe.wait_for(lambda: _setpoint(everest) == 0.0)
    assert [_power(doc) for doc in everest.limits("limits_1")] == [-3000.0, 5000.0, 0.0]


def _power(document: dict[str, object]) -> float:
    setpoints = document["schedule_setpoints"]
    assert isinstance(setpoints, list)
    return float(setpoints[0]["setpoint"]["total_power_W"])


def _setpoint(everest: FakeEverest) -> float | None:
    documents = everest.limits("limits_1")
    return _power(documents[-1]) if documents else None


def test_setpoint_age_counts_from_the_last_published_setpoint(
    start_driver: DriverFactory, everest: FakeEverest
) -> None:
    driver, inputs, _ = start_driver()
    age_path = "main.evs[1].setpoint_age"
    assert age_path in driver.input_paths() and "main.evs[2].setpoint_age" not in driver.input_paths()
    clock = inputs.clock
    before = driver.read_inputs(clock.now_ns())[age_path]
    assert before.value == 0  # since the start: nothing published yet, no time passed
    clock.advance(500 * MS)
    driver.write_outputs(clock.now_ns(), {SETPOINT: -1500.0})
    assert everest.probe.wait_for(lambda: everest.limits("limits_1"))
    inputs.wait(lambda: driver.read_inputs(clock.now_ns())[age_path].value == 0, "published now")
    clock.advance(250 * MS)
    assert driver.read_inputs(clock.now_ns())[age_path].value == 250 * MS
