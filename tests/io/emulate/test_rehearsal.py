"""``plcrun devices``: the devices of a site file emulated on 127.0.0.1 and driven by the simulation;
the shipped site program commissioned against them (both in virtual time) answers a dip in the
emulated meter with discharge written to the emulated chargers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from plcrun.executor.clock import VirtualClock
from plcrun.io.emulate import QuasarCharger, Rehearsal, SunSpecMeter, plan_devices
from plcrun.io.modbus import profiles as Q
from plcrun.io.sim import load_scenario

from tests.support.modbus_devices import free_port, from_s16
from tests.support.virtual_site import VirtualSite

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent


def site_on_free_ports(tmp_path: Path) -> Path:
    text = (ROOT / "examples" / "site.toml").read_text()
    for port in (15020, 15021, 15022):
        text = text.replace(f"port = {port}", f"port = {free_port()}")
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_every_modbus_device_of_the_site_file_is_planned(tmp_path: Path) -> None:
    served, notes = plan_devices(str(ROOT / "examples" / "site.toml"))
    kinds = {s.name: (type(s.device), s.host, s.port, s.ev_index) for s in served}
    assert kinds == {
        "site-meter": (SunSpecMeter, "127.0.0.1", 15020, None),
        "charger-1": (QuasarCharger, "127.0.0.1", 15021, 1),
        "charger-2": (QuasarCharger, "127.0.0.1", 15022, 2),
    }
    assert notes == []


def test_a_dip_in_the_emulated_meter_discharges_the_emulated_chargers(tmp_path: Path) -> None:
    """In virtual time: the devices' simulation steps with the site's scans (``Rehearsal.start(clock)``,
    ``tick``), the site's executor and device threads follow the same virtual time (``VirtualSite``).
    In real time this test depended on the machine: a scan the OS left without a CPU for more than
    100 ms faulted the task for good (the watchdog's single-scan limit is wall time, on purpose:
    docs/executor.md), seen as 'scan of task 'fast' took 113.0 ms' in a loaded suite."""
    config = site_on_free_ports(tmp_path)
    # answers within 0-2 ms of real time: a request takes no virtual time however late it is
    # answered, so the emulator's usual 5-50 ms would only make the test slower
    served, _ = plan_devices(str(config), answer_ms=(0.0, 2.0))
    rehearsal = Rehearsal(served, load_scenario(str(HERE / "dip.toml")))
    chargers = [s.device for s in served if isinstance(s.device, QuasarCharger)]
    physics = VirtualClock()

    def step(now_ns: int) -> None:
        physics.sleep_until(now_ns)
        rehearsal.tick()

    rehearsal.start(physics)
    try:
        with VirtualSite(config, before_scan=step) as site:

            def setpoints() -> list[int]:
                return [from_s16(c.holding[Q.QUASAR_POWER_SETPOINT]) for c in chargers]

            # before the dip (5 s): measurement valid, the cars at their 0 W baseline
            site.run_until(lambda: site.read("main.status") == "ST_NORMAL", 4.0)
            assert setpoints() == [0, 0]
            # the dip: FCR 10 kW at 150 mHz of 200 -> 7.5 kW of discharge, shared by the two cars
            site.run_until(lambda: setpoints() == [-3750, -3750], 10.0)
            assert physics.now_ns() >= 5_000_000_000
            assert site.read("main.status") == "ST_RESPONDING"
            # the emulated cars follow: they discharge and the charger reports it (register 526, state 11)
            site.run_until(
                lambda: all(from_s16(c.holding[Q.QUASAR_ACTUAL_POWER]) < -3000 for c in chargers), 5.0
            )
            assert all(c.holding[Q.QUASAR_STATE] == 11 for c in chargers)
            # the meter's registers repeat between its updates, and the program keeps them fresh
            assert site.read("main.alarm_stale") is False
    finally:
        rehearsal.stop()


def test_the_command_serves_until_its_duration(tmp_path: Path) -> None:
    config = site_on_free_ports(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "plcrun.cli", "devices", str(config), "--duration", "1s"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "site-meter: emulated sunspec meter on 127.0.0.1:" in result.stderr
    assert "charger-2: emulated quasar charger on 127.0.0.1:" in result.stderr
    assert "stopped" in result.stderr
