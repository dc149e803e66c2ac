"""The EVerest driver's liveness check in virtual time (``ManualTime``): a network thread that died
while nothing else wakes the publish thread is noticed at its next periodic check, not before,
against a real Mosquitto on 127.0.0.1."""

from __future__ import annotations

import pytest
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import ManualTime, VirtualClock
from plcrun.io.everest import EverestSessionDriver
from plcrun.io.everest.driver import _LIVENESS_CHECK_S

from tests.io.everest.everest_rig import FakeEverest, Inputs, make_config
from tests.support.modbus_devices import wait_for
from tests.support.mosquitto import Mosquitto


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of it
def test_a_dead_network_thread_is_noticed_at_the_next_liveness_check(
    broker: Mosquitto, everest: FakeEverest
) -> None:
    time = ManualTime()
    driver = EverestSessionDriver(
        make_config(broker.port), AlarmBus(), wall_clock=lambda: 1745856000.25, worker_time=time
    )
    clock = VirtualClock()
    driver.start(clock)
    try:
        inputs = Inputs(driver, clock)
        inputs.wait(lambda: driver.status().connected, "the driver connects to the broker")
        time.settle()  # the publish thread has sent the communication checks and waits
        link = driver._link

        def dies(topic: str, payload: bytes) -> None:
            raise SystemExit("ends the network thread")

        link._on_message = dies
        everest.plug_in("evse_1")
        wait_for(lambda: not link.alive(), 10.0)  # the network thread ends (nothing scans meanwhile)
        time.settle()
        assert driver.status().counters["network_thread_restarts"] == 0  # no check came due yet
        time.advance(round(_LIVENESS_CHECK_S * 1e9))
        time.settle()
        assert driver.status().counters["network_thread_restarts"] == 1
        inputs.wait(lambda: driver.status().connected, "a new connection")
    finally:
        driver.stop()
