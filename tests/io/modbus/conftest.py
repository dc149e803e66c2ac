"""Fixtures of the Modbus driver tests: simulated devices in other processes, drivers stopped at teardown."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so that `tests.support` imports under plain `pytest` too
    sys.path.insert(0, str(ROOT))

from plcrun.executor.alarms import AlarmBus  # noqa: E402
from plcrun.io.modbus.driver import ModbusDeviceDriver  # noqa: E402
from plcrun.io.modbus.model import DeviceSpec  # noqa: E402

from tests.io.modbus.rig import DriverFactory, MonotonicClock  # noqa: E402
from tests.support.modbus_devices import ModbusPeer  # noqa: E402


@pytest.fixture(scope="module")
def meter() -> Iterator[ModbusPeer]:
    """A SunSpec meter (models 1, 203, 213 at 40000) shared by the tests of a module."""
    with ModbusPeer("meter") as peer:
        yield peer


@pytest.fixture
def alarms() -> AlarmBus:
    return AlarmBus()


@pytest.fixture
def start_driver(alarms: AlarmBus) -> Iterator[DriverFactory]:
    """Starts drivers on the alarm bus of the test; stops them (and so their threads) at teardown."""
    started: list[ModbusDeviceDriver] = []

    def factory(spec: DeviceSpec) -> ModbusDeviceDriver:
        driver = ModbusDeviceDriver(spec, alarms)
        driver.start(MonotonicClock())
        started.append(driver)
        return driver

    yield factory
    for driver in started:
        driver.stop()
