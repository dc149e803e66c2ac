"""The CPU temperature as a program input, read from a fake sysfs tree: the hottest zone, the
over-temperature alarm with hysteresis, BAD quality when nothing is readable, and the [host] table
checked against the program; then a site file that binds it, run through the executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.compiler.api import compile_source
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Quality
from plcrun.executor.engine import Executor
from plcrun.io.config_errors import ConfigError
from plcrun.io.host import HostConfig, HostDriver, parse_host_config, read_thermal_zones
from plcrun.io.host.driver import ALARM, UNREADABLE


def zone(root: Path, number: int, kind: str, millidegrees: str | None) -> Path:
    path = root / "sys/class/thermal" / f"thermal_zone{number}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "type").write_text(kind + "\n")
    if millidegrees is not None:
        (path / "temp").write_text(millidegrees + "\n")
    return path


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    zone(tmp_path, 0, "acpitz", "41000")
    zone(tmp_path, 1, "x86_pkg_temp", "52500")
    zone(tmp_path, 2, "iwlwifi_1", None)  # no temp file: unreadable, as such zones often are
    (tmp_path / "sys/class/thermal/cooling_device0").mkdir()
    return tmp_path


def test_zones_are_read_and_unreadable_ones_say_why(sysfs: Path) -> None:
    zones = read_thermal_zones(sysfs)
    assert [(z.name, z.type, z.temp_c) for z in zones] == [
        ("thermal_zone0", "acpitz", 41.0),
        ("thermal_zone1", "x86_pkg_temp", 52.5),
        ("thermal_zone2", "iwlwifi_1", None),
    ]
    assert "No such file" in zones[2].error
    assert [z.type for z in read_thermal_zones(sysfs, ("acpitz",))] == ["acpitz"]
    assert read_thermal_zones(sysfs / "nowhere") == []


def test_alarm_with_hysteresis_and_bad_quality(sysfs: Path) -> None:
    alarms = AlarmBus()
    config = HostConfig("main.cpu_c", "main.hot", alarm_c=80.0, clear_c=75.0)
    driver = HostDriver(config, alarms, root=sysfs)
    driver.poll(1)
    assert driver.read_inputs(1) == {
        "main.cpu_c": (52.5, Quality.GOOD, 1),
        "main.hot": (False, Quality.GOOD, 1),
    }
    assert driver.read_inputs(2) == {}  # nothing new until the next poll
    hot = zone(sysfs, 1, "x86_pkg_temp", "80000")
    driver.poll(3)
    assert driver.read_inputs(3)["main.hot"].value is True
    assert [a.key for a in alarms.active()] == [ALARM] and "80.0 °C" in alarms.active()[0].message
    (hot / "temp").write_text("77000\n")  # between clear_c and alarm_c: stays raised
    driver.poll(4)
    assert driver.read_inputs(4)["main.hot"].value is True
    (hot / "temp").write_text("75000\n")
    driver.poll(5)
    assert driver.read_inputs(5)["main.hot"].value is False and alarms.active() == []
    for number in (0, 1):
        (sysfs / f"sys/class/thermal/thermal_zone{number}/temp").unlink()
    driver.poll(6)
    assert driver.read_inputs(6)["main.cpu_c"].quality == Quality.BAD
    assert [a.key for a in alarms.active()] == [UNREADABLE]
    assert not driver.status().connected


CATALOG = {"main.cpu_c": "REAL", "main.hot": "BOOL", "main.count": "INT"}


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({"cpu_temp": "main.cpu_x"}, "host.cpu_temp", "unknown variable 'main.cpu_x'"),
        ({"cpu_temp": "main.count"}, "host.cpu_temp", "is INT; it must be REAL or LREAL"),
        ({"cpu_hot": "main.cpu_c"}, "host.cpu_hot", "must be BOOL"),
        ({"cpu_temp": "main.cpu_c", "alarm_c": 70, "clear_c": 72}, "host.clear_c", "below alarm_c"),
        ({"cpu_temp": "main.cpu_c", "alarm": 70}, "host.alarm", "unknown key 'alarm'"),
        ({}, "host.cpu_temp", "bind cpu_temp"),
    ],
)
def test_host_table_problems(table: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_host_config(table, "site.toml", CATALOG)
    assert caught.value.key == key and problem in caught.value.problem


def test_the_program_reads_its_cpu_temperature(sysfs: Path) -> None:
    program = compile_source(
        "PROGRAM main\nVAR\n cpu_c : REAL;\n hot : BOOL;\n derate : BOOL;\nEND_VAR\n"
        "derate := hot OR cpu_c > 50.0;\nEND_PROGRAM\n",
        "host.st",
    )
    config = parse_host_config(
        {"cpu_temp": "main.CPU_C", "cpu_hot": "main.hot"}, "site.toml", program.catalog()
    )
    executor = Executor(program, clock=VirtualClock(), drivers=[HostDriver(config, AlarmBus(), root=sysfs)])
    executor.run(max_scans=2)
    assert executor.read("main.cpu_c") == pytest.approx(52.5) and executor.read("main.derate") is True
    executor.shutdown()
