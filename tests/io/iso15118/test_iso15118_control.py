"""plcrun as the SECC with a test car over a veth pair: ISO 15118-20 AC_BPT in dynamic mode (the signed
EVSETargetActivePower), scheduled mode for AC_BPT and DC_BPT (the program's power as the offered
schedule, then as the charge loop's limits), and pause and service renegotiation in a running session.

These run real sessions (a JVM per side)."""

from __future__ import annotations

import pytest

from tests.io.iso15118.conftest import Car, Rig

pytestmark = pytest.mark.slow

EV = "main.evs"
CAR_MAX_CHARGE_W = 11000.0  # ev_car.py
CAR_MAX_DISCHARGE_W = 7000.0


def field(rig: Rig, slot: int, name: str) -> object:
    return rig.read(f"{EV}[{slot}].{name}")


def within_car_limits(car: Car) -> None:
    loops = car.loops()
    assert loops and not any(e["beyond_limits"] for e in loops), [e for e in loops if e["beyond_limits"]]


def end(rig: Rig, slot: int, car: Car) -> None:
    """The program stops the session; the record clears."""
    rig.write(f"main.stop[{slot}]", True)
    rig.wait(f"session {slot} to end", lambda: field(rig, slot, "connected") is False)
    rig.write(f"main.stop[{slot}]", False)
    car.end()


def test_ac_bpt_dynamic_the_car_follows_the_signed_target_power(rig: Rig) -> None:
    car = rig.plug(5, "--mode", "ac_bpt", "--soc", "60")
    rig.wait("the AC car charging at its maximum", lambda: car.loops() and car.loops()[-1]["power_w"] > 0)
    rig.wait("the record", lambda: field(rig, 5, "p_present_w") == CAR_MAX_CHARGE_W)
    assert (field(rig, 5, "protocol"), field(rig, 5, "energy_mode"), field(rig, 5, "control_mode")) == (
        20,
        3,  # AC_BPT
        2,  # dynamic
    )
    assert field(rig, 5, "bidirectional_allowed") is True
    assert (field(rig, 5, "p_charge_max_w"), field(rig, 5, "p_discharge_max_w")) == (
        CAR_MAX_CHARGE_W,
        CAR_MAX_DISCHARGE_W,
    )
    assert field(rig, 5, "e_v2x_min_wh") < 0  # the car may give energy down to its 30 % floor
    # the program asks 15 kW; the target the car hears is its own 11 kW limit
    assert car.loops()[-1]["evse_target_w"] == CAR_MAX_CHARGE_W

    before = len(car.loops())
    rig.write("main.local_dip[5]", True)  # the program asks -20 kW
    rig.wait("the AC car discharging", lambda: car.loops()[-1]["power_w"] < 0)
    after = car.loops()[before:]
    first = next(i for i, e in enumerate(after) if e["power_w"] < 0)
    assert first <= 2, after[: first + 1]  # the next charge loop (one may have been in flight)
    assert after[first]["evse_target_w"] == -CAR_MAX_DISCHARGE_W  # signed, within the car's limit
    rig.wait("the program to see the discharge", lambda: field(rig, 5, "p_present_w") == -CAR_MAX_DISCHARGE_W)
    within_car_limits(car)
    rig.write("main.local_dip[5]", False)
    end(rig, 5, car)


def test_scheduled_mode_offers_the_program_power_as_schedule_then_as_limits(rig: Rig) -> None:
    """Charge point 3 (DC_BPT) charges, charge point 6 (AC_BPT) is asked to discharge from the start; then
    the program swaps them. Both run in scheduled control mode."""
    rig.write("main.local_dip[6]", True)
    dc = rig.plug(3, "--mode", "dc_bpt", "--soc", "50")
    ac = rig.plug(6, "--mode", "ac_bpt", "--soc", "70")
    rig.wait("both cars in their charge loops", lambda: len(dc.loops()) >= 2 and len(ac.loops()) >= 2)
    rig.wait(
        "both in the record", lambda: field(rig, 3, "control_mode") == 1 == field(rig, 6, "control_mode")
    )
    assert (field(rig, 3, "energy_mode"), field(rig, 6, "energy_mode")) == (4, 3)
    # the schedule offered in ScheduleExchangeRes: the program's power within the car's limits
    # (the car reads it again at pre-charge and power delivery: the first reading is the offer)
    dc_schedule = next(e["schedule"] for e in dc.entries() if "schedule" in e)
    ac_schedule = next(e["schedule"] for e in ac.entries() if "schedule" in e)
    assert (dc_schedule["charge_w"], dc_schedule["discharge_w"]) == (CAR_MAX_CHARGE_W, 0.0)
    assert (ac_schedule["charge_w"], ac_schedule["discharge_w"]) == (0.0, CAR_MAX_DISCHARGE_W)
    # and the charge loop's limits say the same
    rig.wait("the DC car charging", lambda: dc.loops()[-1]["power_w"] == CAR_MAX_CHARGE_W)
    assert dc.loops()[-1]["evse_max_charge_w"] == CAR_MAX_CHARGE_W
    assert dc.loops()[-1]["evse_max_discharge_w"] == 0.0
    rig.wait("the AC car discharging", lambda: ac.loops()[-1]["power_w"] == -CAR_MAX_DISCHARGE_W)

    # the program changes its mind: the limits of the next charge loops carry it
    rig.write("main.local_dip[3]", True)
    rig.write("main.local_dip[6]", False)
    rig.wait("the DC car discharging", lambda: dc.loops()[-1]["power_w"] == -CAR_MAX_DISCHARGE_W)
    assert (dc.loops()[-1]["evse_max_charge_w"], dc.loops()[-1]["evse_max_discharge_w"]) == (
        0.0,
        CAR_MAX_DISCHARGE_W,
    )
    rig.wait("the AC car charging", lambda: ac.loops()[-1]["power_w"] == CAR_MAX_CHARGE_W)
    rig.wait(
        "the program to see both",
        lambda: (
            field(rig, 3, "p_present_w") == -CAR_MAX_DISCHARGE_W
            and field(rig, 6, "p_present_w") == CAR_MAX_CHARGE_W
        ),
    )
    within_car_limits(dc)
    within_car_limits(ac)
    rig.write("main.local_dip[3]", False)
    end(rig, 3, dc)
    end(rig, 6, ac)


def test_pause_holds_the_session_at_zero_and_renegotiation_comes_back_to_the_charge_loop(rig: Rig) -> None:
    rig.wait("charge point 1 free", lambda: field(rig, 1, "connected") is False)
    car = rig.plug(1, "--mode", "dc_bpt", "--soc", "40")
    rig.wait("the car charging", lambda: car.loops() and car.loops()[-1]["power_w"] == CAR_MAX_CHARGE_W)
    ended = rig.driver.session_log()["cp1"][0]

    rig.write("main.pause[1]", True)
    rig.wait("the car paused", lambda: car.loops()[-1]["power_w"] == 0.0)
    paused_at = len(car.loops())
    rig.wait("three charge loops in pause", lambda: len(car.loops()) >= paused_at + 3)
    assert all(e["power_w"] == 0.0 for e in car.loops()[paused_at:])
    assert car.loops()[-1]["evse_max_charge_w"] == 0.0 and car.loops()[-1]["evse_max_discharge_w"] == 0.0
    rig.wait("the record to show the pause", lambda: field(rig, 1, "p_present_w") == 0.0)
    assert field(rig, 1, "connected") is True
    rig.write("main.pause[1]", False)
    rig.wait("the car charging again", lambda: car.loops()[-1]["power_w"] == CAR_MAX_CHARGE_W)

    rig.write("main.renegotiate[1]", True)
    rig.wait(
        "the renegotiation notification",
        lambda: any(e["notification"] == "ServiceRenegotiation" for e in car.loops()),
    )
    asked_at = next(i for i, e in enumerate(car.loops()) if e["notification"] == "ServiceRenegotiation")
    rig.wait("the charge loop after renegotiating", lambda: len(car.loops()) >= asked_at + 4)
    rig.write("main.renegotiate[1]", False)
    after = car.loops()[asked_at + 1 :]
    # one request per rising edge; the session went on: no session end, power as before
    assert not any(e["notification"] == "ServiceRenegotiation" for e in after)
    rig.wait("the car charging after renegotiating", lambda: car.loops()[-1]["power_w"] == CAR_MAX_CHARGE_W)
    assert rig.driver.session_log()["cp1"][0] == ended
    assert field(rig, 1, "connected") is True
    within_car_limits(car)
    end(rig, 1, car)
