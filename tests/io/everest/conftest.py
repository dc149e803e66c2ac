"""Fixtures of the EVerest driver tests: a Mosquitto broker on a free port, the EVerest side played by
a test client, and drivers that are stopped at teardown."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so that `tests.support` imports under plain `pytest` too
    sys.path.insert(0, str(ROOT))

from plcrun.executor.alarms import AlarmBus  # noqa: E402
from plcrun.executor.clock import VirtualClock  # noqa: E402
from plcrun.io.everest import EverestSessionDriver  # noqa: E402

from tests.io.everest.everest_rig import FakeEverest, Inputs, make_config  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

DriverFactory = Callable[..., tuple[EverestSessionDriver, Inputs, AlarmBus]]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def everest(broker: Mosquitto) -> Iterator[FakeEverest]:
    fake = FakeEverest(broker.port)
    yield fake
    fake.close()


@pytest.fixture
def start_driver(broker: Mosquitto) -> Iterator[DriverFactory]:
    """Starts drivers on a virtual clock (advanced by the test only); stops them at teardown."""
    started: list[EverestSessionDriver] = []

    def factory(**options: object) -> tuple[EverestSessionDriver, Inputs, AlarmBus]:
        alarms = AlarmBus()
        clock = VirtualClock()
        driver = EverestSessionDriver(
            make_config(broker.port, **options), alarms, wall_clock=lambda: 1745856000.25
        )
        driver.start(clock)
        started.append(driver)
        inputs = Inputs(driver, clock)
        inputs.wait(lambda: driver.status().connected, "the driver connects to the broker")
        return driver, inputs, alarms

    yield factory
    for driver in started:
        driver.stop()
