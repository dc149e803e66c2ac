"""Fixtures of the MQTT backhaul tests: a Mosquitto broker on a free port, a recording probe, and
backhauls that are stopped at teardown."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so that `tests.support` imports under plain `pytest` too
    sys.path.insert(0, str(ROOT))

from plcrun.executor.alarms import AlarmBus  # noqa: E402
from plcrun.io.mqtt import Backhaul, BackhaulConfig  # noqa: E402

from tests.io.mqtt.rig import GATEWAY, FakeClock, load_config, write_site_config  # noqa: E402
from tests.support.mosquitto import Mosquitto, MqttProbe  # noqa: E402

ConfigFactory = Callable[..., BackhaulConfig]


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigFactory:
    def factory(port: int, **options: object) -> BackhaulConfig:
        return load_config(write_site_config(tmp_path / "site", port, **options))  # type: ignore[arg-type]

    return factory


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", persistence=True) as running:
        yield running


@pytest.fixture
def probe(broker: Mosquitto) -> Iterator[MqttProbe]:
    recorder = MqttProbe(broker.port, [f"plcrun/{GATEWAY}/#"], client_id="probe-main", persistent=True)
    yield recorder
    recorder.close()


class BackhaulRig:
    """Creates backhauls with an alarm bus and a fake clock, and stops them all at teardown."""

    def __init__(self) -> None:
        self.started: list[Backhaul] = []
        self.stats = {"main_task": {"scans": 0, "overruns": 0}}

    def start(
        self, config: BackhaulConfig, clock: FakeClock | None = None
    ) -> tuple[Backhaul, AlarmBus, FakeClock]:
        bus = AlarmBus()
        clock = clock or FakeClock()
        backhaul = Backhaul(config, bus, lambda: self.stats, GATEWAY)
        backhaul.start(clock)
        self.started.append(backhaul)
        return backhaul, bus, clock

    def stop_all(self) -> None:
        for backhaul in self.started:
            backhaul.stop()


@pytest.fixture
def rig() -> Iterator[BackhaulRig]:
    made = BackhaulRig()
    yield made
    made.stop_all()
