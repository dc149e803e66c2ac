"""Test helpers: the EVerest side of the MQTT API (a paho client publishing ``e2m`` messages and recording
``m2e`` ones), a configuration for the test program, and a collector of the driver's samples."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Sample
from plcrun.io.everest import EverestConfig, EverestSessionDriver, parse_everest_config

from tests.support.mosquitto import MqttProbe

PROGRAM = Path(__file__).resolve().parents[1] / "programs" / "ev_dispatch.st"
EVSE_API = "everest_api/1/evse_manager_consumer"
LIMITS_API = "everest_api/1/external_energy_limits_consumer"
_CATALOG: dict[str, str] | None = None


def catalog() -> dict[str, str]:
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = compile_file(PROGRAM).catalog()
    return _CATALOG


def everest_table(port: int, **options: Any) -> dict[str, Any]:
    """``[everest]`` for two EVSEs: evse_1 -> main.evs[1] (bidirectional, setpoints through limits_1),
    evse_2 -> main.evs[2] (monitoring only)."""
    table: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "prefix": "main.evs",
        "stale_after_s": 3.0,
        "refresh_s": 2.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "evse": {
            "evse_1": {
                "slot": 1,
                "limits_module": "limits_1",
                "allow_discharge": True,
                "max_discharge_w": 5000.0,
                "min_soc_pct": 20.0,
            },
            "evse_2": {"slot": 2},
        },
    }
    table.update(options)
    return table


def make_config(port: int, **options: Any) -> EverestConfig:
    return parse_everest_config(everest_table(port, **options), "site.toml", catalog())


class FakeEverest:
    """The EVerest side: publishes what the API modules publish, records what plcrun sends."""

    def __init__(self, port: int) -> None:
        self.probe = MqttProbe(port, ["everest_api/1/+/+/m2e/#"])

    def send(self, module: str, message: str, payload: Any) -> None:
        raw = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.probe.publish(f"{EVSE_API}/{module}/e2m/{message}", raw)

    def plug_in(self, module: str, power_w: float = 0.0, modes: list[str] | None = None) -> None:
        self.send(module, "supported_energy_transfer_modes", modes or ["AC_three_phase_core", "DC", "DC_BPT"])
        self.send(module, "session_info", session_info("Charging", power_w))

    def limits(self, module: str) -> list[dict[str, Any]]:
        return self.probe.json(f"{LIMITS_API}/{module}/m2e/set_external_limits")

    def messages(self, topic: str) -> list[bytes]:
        return [payload for _, payload, _ in self.probe.snapshot(topic)]

    def close(self) -> None:
        self.probe.close()


def session_info(state: str, power_w: float) -> dict[str, Any]:
    return {
        "state": state,
        "charged_energy_wh": 1200,
        "discharged_energy_wh": 0,
        "latest_total_w": power_w,
        "session_duration_s": 60,
        "timestamp": "2025-04-28T16:00:00.000Z",
    }


class Inputs:
    """Collects the driver's samples as the executor would (only changes arrive)."""

    def __init__(self, driver: EverestSessionDriver, clock: VirtualClock) -> None:
        self.driver = driver
        self.clock = clock
        self.samples: dict[str, Sample] = {}

    def poll(self) -> dict[str, Sample]:
        changed = dict(self.driver.read_inputs(self.clock.now_ns()))
        self.samples.update(changed)
        return changed

    def value(self, path: str) -> object:
        return self.samples[path].value

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = 10.0) -> None:
        """Poll the driver until ``condition`` holds (waiting for the broker, not asserting time)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout_s} s: {what}; samples: {self.samples}")
            time.sleep(0.01)

    def wait_value(self, path: str, value: object) -> None:
        self.wait(lambda: path in self.samples and self.samples[path].value == value, f"{path} == {value!r}")
