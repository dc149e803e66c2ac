"""Helpers of the MQTT backhaul tests (shared with the child process ``backhaul_child.py``): a fake
executor clock and site configurations written as real TOML files and parsed by ``parse_mqtt_config``."""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plcrun.io.mqtt import BackhaulConfig, parse_mqtt_config
from plcrun.io.mqtt.session import Session

if TYPE_CHECKING:  # the child process (backhaul_child.py) imports this module without pytest
    import pytest
    from plcrun.executor.clock import ManualTime

GATEWAY = "gw-test"
KEY_HEX = "6b" * 32

BASE_TOML = """
[mqtt]
host = "127.0.0.1"
port = {port}
keepalive_s = 5
connect_timeout_s = 3.0
reconnect_min_s = 0.05
reconnect_max_s = 0.2
stop_timeout_s = 2.0
{mqtt_extra}

[mqtt.report]
period_s = 1.0
[[mqtt.report.variables]]
name = "frequency_hz"
path = "main.grid_hz"
stats = ["min", "max", "mean", "last"]

[[mqtt.report.variables]]
name = "site_power_w"
path = "main.site_w"
stats = ["min", "max", "mean", "last", "energy"]

[[mqtt.report.variables]]
name = "sessions"
path = "main.evs[1..4].connected"
reduce = "count_nonzero"
stats = ["last", "max"]

[mqtt.buffer]
directory = "{buffer_dir}"
key_file = "buffer.key"
max_bytes = {max_bytes}
fsync = "always"

[mqtt.commands.fw]
kind = "frequency_watt_curve"
frequency_path = "main.curve_f"
power_path = "main.curve_p"
count_path = "main.curve_n"
baseline_path = "main.baseline_w"
power_limit_w = 20000.0

[mqtt.commands.enable]
kind = "bool"
path = "main.enable"
{extra}
"""


class FakeClock:
    """The executor's clock in virtual time: tests move ``now`` by hand."""

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def now_ns(self) -> int:
        return self.now


def write_key(path: Path, text: str = KEY_HEX) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)
    return path


def write_site_config(
    directory: Path,
    port: int,
    *,
    buffer_dir: str = "buffer",
    max_bytes: int = 8 * 1024 * 1024,
    mqtt_extra: str = "",
    extra: str = "",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "buffer.key").exists():
        write_key(directory / "buffer.key")
    path = directory / "site.toml"
    path.write_text(
        BASE_TOML.format(
            port=port, buffer_dir=buffer_dir, max_bytes=max_bytes, mqtt_extra=mqtt_extra, extra=extra
        )
    )
    return path


def load_config(path: Path) -> BackhaulConfig:
    with path.open("rb") as handle:
        table = tomllib.load(handle)
    return parse_mqtt_config(table["mqtt"], str(path))


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``condition`` (a network peer's progress) until it holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def record_connect_attempts(monkeypatch: pytest.MonkeyPatch, clock: ManualTime) -> list[int]:
    """The virtual times (ms) of the MQTT session's connection attempts from now on (the backhaul's
    and the EVerest link's: both run on ``Session``)."""
    attempts: list[int] = []
    connect = Session._connect

    def counted(self: Session, client: Any, connection: Any) -> str | None:
        attempts.append(clock.now_ns() // 1_000_000)
        return connect(self, client, connection)

    monkeypatch.setattr(Session, "_connect", counted)
    return attempts
