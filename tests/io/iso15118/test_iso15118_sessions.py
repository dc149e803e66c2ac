"""plcrun as the SECC, a test car as the EVCC in a network namespace over a veth pair (both created
by the tests): ISO 15118-20 DC BPT with discharge on a frequency dip, the car's limits, the end of a
session on the program's command, ISO 15118-2 charge-only, and unusable TLS material as an alarm.

These run real sessions (a JVM per side, 5-30 s to the first charge loop on a loaded machine)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.io.iso15118.conftest import Rig

pytestmark = pytest.mark.slow

EV = "main.evs"
CAR_MAX_CHARGE_W = 11000.0  # ev_car.py
CAR_MAX_DISCHARGE_W = 7000.0


def field(rig: Rig, slot: int, name: str) -> object:
    return rig.read(f"{EV}[{slot}].{name}")


def test_dc_bpt_session_discharges_on_a_frequency_dip_within_the_car_limits(rig: Rig) -> None:
    car = rig.plug(1, "--mode", "dc_bpt", "--soc", "60")
    rig.wait(
        "the car in its charge loop", lambda: len(car.loops()) >= 3 and field(rig, 1, "p_present_w") != 0.0
    )
    # the record: what the car said
    assert field(rig, 1, "connected") is True
    assert car.loops()[-1]["tls"] is None  # this charge point is plain TCP
    assert (field(rig, 1, "protocol"), field(rig, 1, "energy_mode"), field(rig, 1, "control_mode")) == (
        20,
        4,
        2,
    )
    assert field(rig, 1, "auth_mode") == 1  # EIM
    assert field(rig, 1, "bidirectional_allowed") is True
    assert field(rig, 1, "p_charge_max_w") == CAR_MAX_CHARGE_W
    assert field(rig, 1, "p_discharge_max_w") == CAR_MAX_DISCHARGE_W
    assert (field(rig, 1, "min_soc_pct"), field(rig, 1, "target_soc_pct")) == (30.0, 80.0)
    assert field(rig, 1, "soc_pct") == 60.0
    assert field(rig, 1, "e_v2x_min_wh") == pytest.approx(-18000.0, abs=50)  # 30 % below 60 % of 60 kWh
    assert field(rig, 1, "departure_time") > 0
    # charging: the program asks 15 kW, the car takes at most 11 kW: that is what it hears
    rig.wait("charging at the car's maximum", lambda: car.loops()[-1]["power_w"] == CAR_MAX_CHARGE_W)
    assert field(rig, 1, "p_present_w") == pytest.approx(CAR_MAX_CHARGE_W)
    e_target_charging = field(rig, 1, "e_target_wh")

    # the grid dips: the program asks -20 kW; the car hears -7 kW (its limit) in the next charge loops
    loops_before = len(car.loops())
    rig.write("main.grid_hz", 49.7)
    rig.wait("the car discharging", lambda: car.loops()[-1]["power_w"] < 0)
    after = car.loops()[loops_before:]
    first_discharge = next(i for i, e in enumerate(after) if e["power_w"] < 0)
    # one loop may have been in flight when the setpoint changed: the next one carries it
    assert first_discharge <= 2, after[: first_discharge + 1]
    assert after[first_discharge]["power_w"] == -CAR_MAX_DISCHARGE_W
    assert after[first_discharge]["evse_max_discharge_w"] == CAR_MAX_DISCHARGE_W
    assert after[first_discharge]["evse_max_charge_w"] == 0.0
    rig.wait("the program to see the discharge", lambda: field(rig, 1, "p_present_w") == -CAR_MAX_DISCHARGE_W)
    # the car's own energy bookkeeping follows: it needs more energy to reach its target now
    rig.wait("the car's energy request to grow", lambda: field(rig, 1, "e_target_wh") > e_target_charging)
    # the charger never asked the car for more than its limits
    assert not any(e["beyond_limits"] for e in car.loops())
    assert all(-CAR_MAX_DISCHARGE_W <= e["asked_w"] <= CAR_MAX_CHARGE_W for e in car.loops())

    # the program ends the session: Terminate in the next charge loop, the car stops, the record clears
    ended_before = rig.driver.session_log()["cp1"][0]
    rig.write("main.stop[1]", True)
    rig.wait("the session to end", lambda: rig.driver.session_log()["cp1"][0] > ended_before)
    rig.wait("the record to clear", lambda: field(rig, 1, "connected") is False)
    assert field(rig, 1, "p_present_w") == 0.0 and field(rig, 1, "protocol") == 0
    assert rig.driver.status().counters["sessions"] >= 1
    rig.write("main.stop[1]", False)
    rig.write("main.grid_hz", 50.0)
    car.end()


def test_iso15118_2_car_gets_charge_only_limits(rig: Rig) -> None:
    rig.write("main.grid_hz", 49.7)  # the program asks -20 kW: a -2 car may not discharge
    car = rig.plug(2, "--mode", "dc2", "--soc", "40")
    rig.wait(
        "the -2 car in its current-demand loop, and in the record as -2 DC",
        lambda: len(car.loops()) >= 3 and (field(rig, 2, "protocol"), field(rig, 2, "energy_mode")) == (2, 2),
    )
    assert field(rig, 2, "bidirectional_allowed") is False
    assert field(rig, 2, "p_discharge_max_w") == 0.0
    assert all(e["power_w"] >= 0 and e["evse_max_charge_w"] >= 0 for e in car.loops())
    assert car.loops()[-1]["power_w"] == 0.0
    # the grid recovers: the program asks 15 kW, the car gets what it can take (its -2 limit: 8 kW)
    rig.write("main.grid_hz", 50.0)
    rig.wait("the -2 car charging", lambda: car.loops()[-1]["power_w"] > 0)
    assert car.loops()[-1]["evse_max_charge_w"] <= 15000.0
    rig.wait("the program to see it", lambda: field(rig, 2, "p_present_w") > 0)
    car.stop_file.touch()  # the car stops by itself this time
    rig.wait("the -2 session to end", lambda: field(rig, 2, "connected") is False)
    car.end()


def test_unusable_tls_material_is_a_clear_alarm_and_no_plain_tcp_fallback(rig: Rig) -> None:
    rig.wait(
        "the certificate alarm",
        lambda: any(a.key.startswith("iso15118:cp4:certificate:") for a in rig.alarms.active()),
        timeout_s=60,
    )
    texts = [a.message for a in rig.alarms.active() if a.key.startswith("iso15118:cp4:certificate:")]
    assert any("SECCCert" in t and "expired on" in t for t in texts), texts
    # and that SECC is not started (its own alarm says why)
    rig.wait(
        "the SECC-down alarm",
        lambda: any(a.key == "iso15118:cp4:secc" and "TLS" in a.message for a in rig.alarms.active()),
        timeout_s=60,
    )
    # a car that wants TLS gets no session there (the package would have fallen back to plain TCP)
    car = rig.plug(4, "--mode", "dc_bpt", "--tls", "--pki", str(rig.tmp / "pki"))
    # its SDP requests go unanswered (that SECC does not listen at all); watch 20 of them (5 s)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        assert field(rig, 4, "connected") is False
        assert car.loops() == []
        time.sleep(0.1)
    car.end()
    # the other charge points are not affected
    assert not any(a.key.startswith(("iso15118:cp1", "iso15118:process")) for a in rig.alarms.active())


def test_the_secc_process_runs_ahead_of_other_sessions_work(rig: Rig) -> None:
    """The SECC process has a session of its own whose autogroup has its nice value (-10): with
    autogroup scheduling a nice value ranks a process only within its session, and under load from
    other sessions the cars dropped their sessions with the SECC in plcrun's (docs/iso15118.md)."""
    rig.wait("the SECC process", lambda: rig.driver.status().connected)  # it said hello
    pid = rig.driver.process.pid
    assert pid is not None
    assert os.getsid(pid) == pid != os.getsid(0)  # set before it says hello
    assert os.getpriority(os.PRIO_PROCESS, pid) == -10
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():  # a kernel with autogroup scheduling
        assert autogroup.read_text().split()[-1] == "-10"
