"""The OCPP driver with the real site program (programs/freq_response.st) and the simulation under the
executor in virtual time, against a CSMS on 127.0.0.1: charging profiles bound the allocation, and a
LocalFrequency curve from the CSMS makes the cars discharge on a frequency dip."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v21 import call
from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.io.ocpp import OcppDriver, parse_ocpp_config
from plcrun.io.sim.scenario_load import load_scenario
from plcrun.io.site_io import sim_io
from rig import base_table

from tests.support.csms import Csms

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent
_program: Any = None


def site_program() -> Any:
    global _program
    if _program is None:
        _program = compile_file(ROOT / "programs" / "freq_response.st")
    return _program


class SiteRun:
    def __init__(self, tmp_path: Path, csms: Csms) -> None:
        program = site_program()
        scenario = load_scenario(str(HERE / "steady.toml"))
        io = sim_io(program, scenario)
        config = parse_ocpp_config(base_table(tmp_path, csms.url), "site.toml", program.catalog())
        self.alarms = AlarmBus()
        self.ocpp = OcppDriver(config, self.alarms)
        self.executor = Executor(
            program,
            clock=VirtualClock(),
            drivers=[*io.drivers, self.ocpp],
            config=ExecutorConfig(),
            alarms=self.alarms,
        )
        for path, value in io.initial_writes.items():
            self.executor.journal.write(path, value, source="scenario")

    def read(self, path: str) -> Any:
        return self.executor.read(path)

    def now_s(self) -> float:
        return self.executor.clock.now_ns() / 1e9

    def scans(self, n: int) -> None:
        self.executor.run(max_scans=n)

    def paced(self, n: int) -> None:
        """``n`` scans 10 ms of real time apart, as in the field: the station's process and the
        driver's bridge get the time a real scan period leaves them."""
        for _ in range(n):
            time.sleep(0.01)
            self.scans(1)

    def until(self, done: Any, timeout: float = 20.0) -> int:
        """Scan one at a time (a real millisecond between) until ``done()``; returns the scans."""
        deadline = time.monotonic() + timeout
        n = 0
        while not done():
            assert time.monotonic() < deadline, f"not reached within {timeout} s ({n} scans)"
            self.scans(1)
            n += 1
            time.sleep(0.001)
        return n

    def total_w(self) -> float:
        return float(self.read("main.evs[1].p_setpoint_w")) + float(self.read("main.evs[2].p_setpoint_w"))

    def close(self) -> None:
        self.executor.shutdown()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SiteRun, Csms]]:
    with Csms(versions=("2.1",)) as csms:
        run = SiteRun(tmp_path, csms)
        yield run, csms
        run.close()


def tx_default(
    pid: int,
    stack: int,
    period: dict[str, Any],
    evse: int = 0,
    purpose: str = "TxDefaultProfile",
    **extra: Any,
) -> Any:
    profile = {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {"id": pid, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, **period}]}
        ],
        **extra,
    }
    return call.SetChargingProfile(evse_id=evse, charging_profile=profile)


def test_profile_stacking_limits_the_chargers(site: tuple[SiteRun, Csms]) -> None:
    run, csms = site
    run.scans(200)  # the program validates the meter for 1 s after start
    run.until(lambda: len(csms.of("TransactionEvent")) >= 2)
    assert run.total_w() == pytest.approx(14000.0, abs=1.0)  # the program's baseline, split 7000 + 7000
    tx = {e["evse"]["id"]: e["transactionInfo"]["transactionId"] for e in csms.of("TransactionEvent")}

    assert csms.request(tx_default(1, 0, {"limit": 11000.0})).status == "Accepted"
    run.paced(2)
    assert run.total_w() == pytest.approx(14000.0, abs=1.0)  # 11 kW per EVSE does not bind
    assert csms.request(tx_default(2, 1, {"limit": 3000.0})).status == "Accepted"
    run.paced(2)  # the higher stack level leads: 3 kW per EVSE
    assert run.read("main.evs[1].p_limit_charge_w") == 3000.0
    assert run.read("main.evs[1].p_setpoint_w") == pytest.approx(3000.0, abs=0.5)
    assert run.read("main.evs[2].p_setpoint_w") == pytest.approx(3000.0, abs=0.5)

    profile = tx_default(3, 0, {"limit": 1000.0}, evse=1, purpose="TxProfile", transactionId=tx[1])
    assert csms.request(profile).status == "Accepted"
    run.paced(2)  # the TxProfile replaces the defaults on EVSE 1 only
    assert run.read("main.evs[1].p_setpoint_w") == pytest.approx(1000.0, abs=0.5)
    assert run.read("main.evs[2].p_setpoint_w") == pytest.approx(3000.0, abs=0.5)

    assert (
        csms.request(tx_default(4, 0, {"limit": 2500.0}, purpose="ChargingStationMaxProfile")).status
        == "Accepted"
    )
    run.paced(2)  # the station maximum bounds the cars' total
    assert run.read("main.ocpp_station_charge_limit_w") == 2500.0
    assert run.total_w() == pytest.approx(2500.0, abs=1.0)
    assert run.read("main.evs[1].p_setpoint_w") <= 1000.0 + 0.5

    composite = csms.request(call.GetCompositeSchedule(duration=600, evse_id=1, charging_rate_unit="W"))
    assert composite.status == "Accepted"
    assert composite.schedule["charging_schedule_period"][0]["limit"] == 1000.0

    assert (
        csms.request(
            call.ClearChargingProfile(
                charging_profile_criteria={"chargingProfilePurpose": "ChargingStationMaxProfile"}
            )
        ).status
        == "Accepted"
    )
    assert csms.request(call.ClearChargingProfile(charging_profile_id=3)).status == "Accepted"
    run.paced(2)
    assert run.total_w() == pytest.approx(6000.0, abs=1.0)


def test_a_local_frequency_curve_from_the_csms_discharges_on_a_dip(site: tuple[SiteRun, Csms]) -> None:
    run, csms = site
    run.scans(200)
    run.until(lambda: csms.station is not None and bool(csms.of("StatusNotification")))
    assert run.total_w() == pytest.approx(14000.0, abs=1.0)
    curve = [
        {"frequency": 49.8, "power": -7000.0},
        {"frequency": 50.0, "power": 0.0},
        {"frequency": 50.2, "power": 7000.0},
    ]
    period = {"operationMode": "LocalFrequency", "v2xFreqWattCurve": curve, "v2xBaseline": 1000.0}
    assert csms.request(tx_default(10, 0, period)).status == "Accepted"
    # the curve takes effect within 2 scans of its arrival
    taken = 0
    while run.read("main.ocpp_mode") != 7 and taken < 2:
        run.paced(1)
        taken += 1
    assert run.read("main.ocpp_mode") == 7 and taken <= 2
    assert run.read("main.v2x_curve_points") == 3
    assert run.read("main.v2x_curve_w[1]") == -7000.0
    assert run.total_w() == pytest.approx(1000.0, abs=1.0)  # 50 Hz: curve 0 W + baseline
    # the dip at 30 s: 49.85 Hz -> -5250 W + 1000 W baseline = -4250 W, discharging
    csms.stop()  # the local response never waits on the CSMS: take it away first
    while run.now_s() < 29.99:
        run.scans(1)
    before = run.total_w()
    run.scans(1)
    scans = 1
    while run.total_w() > -4000.0 and scans < 3:
        run.scans(1)
        scans += 1
    assert before == pytest.approx(1000.0, abs=1.0)
    assert scans <= 2, "the discharge setpoint must be written within 2 scans of the dip"
    assert run.total_w() == pytest.approx(-4250.0, abs=2.0)
    assert float(run.read("main.evs[1].p_setpoint_w")) < 0 and float(run.read("main.evs[2].p_setpoint_w")) < 0


def test_a_central_setpoint_from_the_csms_sets_the_cars_total(site: tuple[SiteRun, Csms]) -> None:
    run, csms = site
    run.scans(200)
    run.until(lambda: csms.station is not None and bool(csms.of("StatusNotification")))
    period = {"operationMode": "CentralSetpoint", "setpoint": -6000.0, "dischargeLimit": -2500.0}
    assert csms.request(tx_default(20, 0, period)).status == "Accepted"
    run.paced(2)
    assert run.read("main.ocpp_mode") == 3 and run.read("main.ocpp_setpoint_w") == -6000.0
    # each EVSE may discharge 2500 W: the program asks for -6000 W, the allocation gives -5000 W
    assert run.read("main.evs[1].p_limit_discharge_w") == 2500.0
    assert run.total_w() == pytest.approx(-5000.0, abs=1.0)
    assert csms.request(call.ClearChargingProfile(charging_profile_id=20)).status == "Accepted"
    run.paced(2)
    assert run.read("main.ocpp_mode") == 0
    assert run.total_w() == pytest.approx(14000.0, abs=1.0)  # back to the program's own baseline
