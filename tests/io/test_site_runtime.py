"""The site file's [runtime] table (real-time requirement, scan CPU, waiting mode) and [host] table reach
SiteIo."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.compiler.api import compile_source
from plcrun.executor.alarms import AlarmBus
from plcrun.io.config_errors import ConfigError
from plcrun.io.host import HostDriver
from plcrun.io.site_config import RuntimeOptions, SiteConfigError, parse_site_config
from plcrun.io.site_io import config_io

PROGRAM = "PROGRAM main\nVAR\n cpu_c : LREAL;\nEND_VAR\nEND_PROGRAM\n"


def test_runtime_table() -> None:
    catalog = {"main.x": "REAL"}
    assert parse_site_config({}, "s.toml", catalog).runtime == RuntimeOptions()
    config = parse_site_config({"runtime": {"require_realtime": True, "scan_cpu": 1}}, "s.toml", catalog)
    assert config.runtime == RuntimeOptions(require_realtime=True, scan_cpu=1)
    with pytest.raises(SiteConfigError) as caught:
        parse_site_config({"runtime": {"require_realtime": "yes", "scan_cpus": 1}}, "s.toml", catalog)
    text = str(caught.value)
    assert (
        "runtime.require_realtime: must be true or false" in text and "runtime.scan_cpus: unknown key" in text
    )


def test_runtime_waiting_mode_keys() -> None:
    catalog = {"main.x": "REAL"}
    config = parse_site_config(
        {"runtime": {"wake_tolerance_us": 0, "spin_budget_us": 400}}, "s.toml", catalog
    )
    assert config.runtime == RuntimeOptions(wake_tolerance_us=0, spin_budget_us=400)
    assert RuntimeOptions().wake_tolerance_us is None  # not given: plcrun's default (site.py)
    with pytest.raises(SiteConfigError) as caught:
        parse_site_config(
            {"runtime": {"wake_tolerance_us": 0.1, "spin_budget_us": 9000, "wake_tolerance": 5}},
            "/etc/plcrun/site.toml",
            catalog,
        )
    text = str(caught.value)
    assert "/etc/plcrun/site.toml" in text
    assert "runtime.wake_tolerance_us: must be an integer" in text
    assert "runtime.spin_budget_us" in text and "9000" in text and "5000" in text
    assert "runtime.wake_tolerance: unknown key" in text and "wake_tolerance_us" in text  # did you mean
    with pytest.raises(SiteConfigError, match=r"runtime\.wake_tolerance_us: .*-1"):
        parse_site_config({"runtime": {"wake_tolerance_us": -1}}, "s.toml", catalog)


def test_host_table_builds_the_host_driver(tmp_path: Path) -> None:
    program = compile_source(PROGRAM, "p.st")
    site = tmp_path / "site.toml"
    site.write_text('[runtime]\nscan_cpu = 0\n[host]\ncpu_temp = "main.cpu_c"\nalarm_c = 90\n')
    io = config_io(program, str(site), AlarmBus(), dict, "gw")
    (driver,) = io.drivers
    assert isinstance(driver, HostDriver) and driver.config.alarm_c == 90.0 and driver.config.clear_c == 85.0
    assert io.runtime.scan_cpu == 0
    site.write_text('[host]\ncpu_temp = "main.nope"\n')
    with pytest.raises(ConfigError, match=r"host\.cpu_temp: unknown variable 'main\.nope'"):
        config_io(program, str(site), AlarmBus(), dict, "gw")
