"""The OCPP driver on the scan side, without an executor: a virtual clock advanced 10 ms per scan, the
EV session values a session source would have written, and the samples the driver hands back."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Sample
from plcrun.io.ocpp import OcppConfig, OcppDriver, parse_ocpp_config

HERE = Path(__file__).parent
PASSWORD = "correct-horse-battery"
_catalog: dict[str, str] | None = None


def catalog() -> dict[str, str]:
    global _catalog
    if _catalog is None:
        _catalog = dict(compile_file(HERE / "site.st").catalog())
    return _catalog


def write_secret(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def base_table(directory: Path, url: str, **overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "url": url,
        "station_id": "CS-0001",
        "security_profile": 1,
        "password_file": str(write_secret(directory / "password", PASSWORD)),
        "evses": 2,
        "evs": "main.evs",
        "snapshot_interval_s": 0.01,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "response_timeout_s": 5.0,
        "store": {
            "directory": str(directory / "store"),
            "key_file": str(write_secret(directory / "store.key", "ab" * 32)),
            "fsync": "never",
        },
    }
    table.update(overrides)
    return {k: v for k, v in table.items() if v is not None}  # None removes a key


def make_config(directory: Path, url: str, **overrides: Any) -> OcppConfig:
    return parse_ocpp_config(base_table(directory, url, **overrides), str(directory / "site.toml"), catalog())


class Site:
    """Drives one OcppDriver like the executor would (scan thread = the test thread)."""

    def __init__(self, config: OcppConfig, wall_start: float | None = None) -> None:
        self.clock = VirtualClock()
        self.alarms = AlarmBus()
        start = time.time() if wall_start is None else wall_start
        self.driver = OcppDriver(config, self.alarms, wall_clock=lambda: start)
        self.values: dict[str, object] = {path: _zero(path) for path in config.output_paths()}
        self.inputs: dict[str, object] = {}
        self.scans = 0
        self.driver.start(self.clock)

    def session(self, evse: int, **fields: object) -> None:
        for name, value in fields.items():
            self.values[f"main.evs[{evse}].{name}"] = value

    def scan(self) -> Mapping[str, Sample]:
        self.clock.advance(10_000_000)
        now = self.clock.now_ns()
        samples = self.driver.read_inputs(now)
        for path, sample in samples.items():
            self.inputs[path] = sample.value
        self.driver.write_outputs(now, dict(self.values))  # the image hands over a new dict every scan
        self.scans += 1
        return samples

    def scan_for(self, seconds: float, real_pause_s: float = 0.0) -> None:
        for _ in range(round(seconds / 0.01)):
            self.scan()
            if real_pause_s:
                time.sleep(real_pause_s)

    def scan_until(self, done: Callable[[], bool], timeout: float = 20.0, pause_s: float = 0.002) -> int:
        """Scan (10 ms virtual each, ``pause_s`` real between) until ``done()``; returns the scans taken."""
        deadline = time.monotonic() + timeout
        scans = 0
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s ({scans} scans)")
            self.scan()
            scans += 1
            time.sleep(pause_s)
        return scans

    def close(self) -> None:
        self.driver.stop()


def _zero(path: str) -> object:
    name = path.rsplit(".", 1)[-1]
    if name in ("connected", "bidirectional_allowed"):
        return False
    if name == "departure_time":
        return 0
    return 0.0
