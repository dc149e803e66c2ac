"""A site commissioned from its site file, against device peers that behave like the field: the shipped
freq_response.st with examples/site.toml (parameters included) on a SunSpec meter that answers every
poll with the same steady values, and two Quasar chargers; one charger is lost and comes back.

The sites run in virtual time (``VirtualSite``): the peers are real Modbus servers in processes of
their own, and the site's timing (polls, timeouts, freshness, reconnects, the program's timers, the
simulated cars of the mixed site) runs on the test's steps, so a loaded machine makes it slower, never
different (in real time a scan the OS left without a CPU for 100 ms faulted the task: the watchdog's
single-scan limit is wall time, docs/executor.md)."""

from __future__ import annotations

from pathlib import Path

from plcrun.compiler.api import compile_file
from plcrun.site import SiteRuntime

from tests.support.modbus_devices import QUASAR, ModbusPeer, from_s16
from tests.support.virtual_site import VirtualSite

ROOT = Path(__file__).resolve().parents[2]


def site_file(tmp_path: Path, meter: int, charger1: int, charger2: int) -> Path:
    """examples/site.toml as shipped, on the peers' ports."""
    text = (ROOT / "examples" / "site.toml").read_text()
    text = text.replace("port = 15020", f"port = {meter}").replace("port = 15021", f"port = {charger1}")
    text = text.replace("port = 15022", f"port = {charger2}")
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def setpoint(charger: ModbusPeer) -> int:
    return from_s16(charger.registers(QUASAR["setpoint"])[0])


def test_a_steady_meter_keeps_the_site_responding_and_a_lost_charger_is_reallocated(tmp_path: Path) -> None:
    with (
        ModbusPeer("meter") as meter,
        ModbusPeer("charger") as charger1,
        ModbusPeer("charger") as charger2,
    ):
        meter.set_meter(hz=50.0, watts=0.0, volts=230.0)  # and it stays so: registers that repeat
        with VirtualSite(site_file(tmp_path, meter.port, charger1.port, charger2.port)) as site:
            # a meter answering every poll with the same values is fresh: the site leaves its safe state
            site.run_until(lambda: site.read("main.status") == "ST_NORMAL", 20.0)
            assert site.read("main.n_evs") == 2 and site.read("main.service") == "SVC_FCR"
            assert site.read("main.evs[1].bidirectional_allowed") is True  # the profile's default

            meter.set_meter(hz=49.8)  # full FCR response: 10 kW of discharge, 5 kW per car
            site.run_until(lambda: setpoint(charger1) == -5000 and setpoint(charger2) == -5000, 10.0)

            charger2.kill()  # lost: its share goes to charger 1 (within its 7.4 kW) and the gap is told
            site.run_until(lambda: setpoint(charger1) == -7400, 10.0)
            assert site.read("main.n_lost") == 1
            # told once the shortfall has lasted fleet_short_delay_s (3 s, freq_response.st)
            site.run_until(lambda: "st:main.alarm_fleet_short" in site.active_alarms(), 10.0)
            alarms = site.active_alarms()
            assert alarms["st:main.alarm_fleet_short"] == (
                "the fleet falls short of the contracted response by 2600 W (1 sessions lost)"
            )
            assert "modbus:charger-2:comm" in alarms
            # the meter keeps repeating 49.800 Hz: still valid, still responding
            assert site.read("main.status") == "ST_RESPONDING"

            charger2.restart()  # back: it rejoins, both at 5 kW again
            site.run_until(lambda: setpoint(charger1) == -5000 and setpoint(charger2) == -5000, 10.0)
            site.run_until(lambda: "st:main.alarm_fleet_short" not in site.active_alarms(), 5.0)
            assert site.read("main.alarm_measurement") is False


def test_a_mixed_site_takes_the_meter_from_the_device_and_the_cars_from_the_simulation(
    tmp_path: Path,
) -> None:
    with ModbusPeer("meter") as meter:
        meter.set_meter(hz=49.8, watts=0.0, volts=230.0)
        config = tmp_path / "meter-only.toml"
        text = (ROOT / "examples" / "site.toml").read_text().replace("port = 15020", f"port = {meter.port}")
        head, _, rest = text.partition("# Two bidirectional DC chargers.")
        config.write_text(head + rest[rest.index("# The program's parameters") :])
        # in virtual time, as the first test: the meter's device thread and the simulation follow the scans
        with VirtualSite(config, workers=1, scenario="quiet_grid", set_options=["main.n_evs=10"]) as site:
            sim = site.site.io.sim
            assert sim is not None
            assert "main.grid_hz" not in sim.input_paths()  # the device's
            assert "main.evs[1].soc_pct" in sim.input_paths() and "main.evs[10].soc_pct" in sim.input_paths()
            # the real meter's 49.8 Hz drives the full FCR response (10 kW) onto the simulated cars
            site.run_until(lambda: site.read("main.status") == "ST_RESPONDING", 20.0)
            site.run_until(lambda: abs(site.read("main.p_total_w") + 10000.0) < 1.0, 10.0)


def test_the_reverse_mix_puts_simulated_cars_after_the_chargers(tmp_path: Path) -> None:
    config = site_file(tmp_path, 15020, 15021, 15022)
    text = config.read_text()
    head, _, rest = text.partition("# The site meter:")
    config.write_text(
        head
        + rest[rest.index("# Two bidirectional DC chargers.") :].replace(
            '"main.grid_v" = "site-meter.voltage"', ""
        )
    )
    site = SiteRuntime.build(
        compile_file(ROOT / "programs" / "freq_response.st"), config=str(config), scenario="quiet_grid"
    )
    sim = site.io.sim
    assert sim is not None
    assert {"main.grid_hz", "main.site_w"} <= sim.input_paths()  # the simulated meter
    assert "main.evs[2].soc_pct" not in sim.input_paths()  # charger-2's session
    assert "main.evs[3].soc_pct" in sim.input_paths() and "main.evs[12].soc_pct" in sim.input_paths()
    assert "cars in sessions 3..12" in site.description
