"""programs/freq_response.st: discharge in the scan that sees a frequency step for every service, the
safe state (0 W on every session) for NaN, implausible frequency, voltage collapse, stale or bad
meter data, site limits, disabling and parameter errors. Direct scans in virtual time, and under the
executor with a real driver for the qualities and ages that only I/O produces."""

from __future__ import annotations

import math
from typing import Any

import pytest
from meter_driver import MeterDriver
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Quality
from plcrun.executor.engine import Executor
from st_rig import BIDI_CAR, PROGRAMS, ProgramRig

N_CARS = 4
NOMINAL = {"grid_hz": 50.0, "grid_v": 230.0, "site_w": 0.0}


def site(service: str, nominal_hz: float = 50.0, **params: Any) -> ProgramRig:
    """freq_response with 4 bidirectional cars, warmed up at the nominal frequency (valid, at the
    baseline)."""
    rig = ProgramRig("freq_response.st")
    for i in range(1, N_CARS + 1):
        rig.set_ev(i, **BIDI_CAR)
    rig.set(n_evs=N_CARS, service=service, f_nominal_hz=nominal_hz, **params)
    rig.run(101, NOMINAL, grid_hz=nominal_hz)  # valid after 1 s of good readings
    assert rig.get("status") == "ST_NORMAL"
    assert math.fsum(rig.setpoints(N_CARS)) == pytest.approx(params.get("baseline_w", 0.0), abs=0.1)
    return rig


def total(rig: ProgramRig) -> float:
    return math.fsum(rig.setpoints(N_CARS))


# --------------------------------------------------------------------------- same-scan response
@pytest.mark.parametrize(
    ("service", "params", "step_hz", "expected_w"),
    [
        ("SVC_FCR", {"p_contracted_w": 20000.0}, 49.9, -10000.0),
        ("SVC_FCR_N", {"p_contracted_w": 20000.0}, 49.95, -10000.0),
        ("SVC_FCR_D", {"p_contracted_w": 20000.0}, 49.7, -10000.0),
        ("SVC_DC", {"p_contracted_w": 100000.0}, 49.7, -36666.7),
        ("SVC_FFR", {"p_contracted_w": 20000.0, "trigger_hz": 49.7}, 49.69, -20000.0),
        ("SVC_LFSM", {"p_ref_w": 40000.0}, 49.5, -4800.0),
        ("SVC_DM", {"p_contracted_w": 40000.0}, 49.85, -21000.0),  # 5 % at 0.1 Hz, 100 % at 0.2 Hz
        ("SVC_DR", {"p_contracted_w": 20000.0}, 49.9, -20000.0 * 0.085 / 0.185),
        ("SVC_VF_FCAS", {"p_contracted_w": 20000.0}, 49.84, -20000.0),
    ],
)
def test_discharge_in_the_scan_that_sees_the_step(
    service: str, params: dict[str, Any], step_hz: float, expected_w: float
) -> None:
    rig = site(service, **params)
    rig.scan(grid_hz=step_hz)
    setpoints = rig.setpoints(N_CARS)
    assert all(p <= 0.0 for p in setpoints) and any(p < 0.0 for p in setpoints)
    assert total(rig) == pytest.approx(expected_w, abs=0.1)
    assert rig.get("status") == "ST_RESPONDING"


def test_ieee1547_starts_its_first_order_response_in_the_same_scan() -> None:
    rig = site("SVC_IEEE1547", nominal_hz=60.0, p_rated_w=20000.0, baseline_w=30000.0)
    assert total(rig) == pytest.approx(30000.0, abs=0.1)
    rig.scan(grid_hz=59.0)
    tau = 5.0 / math.log(10.0)
    expected = 30000.0 - 6426.67 * (1.0 - math.exp(-0.01 / tau))
    assert total(rig) == pytest.approx(expected, abs=0.5)
    rig.run(1000)  # 10 s later: 99 % of the static change
    assert total(rig) == pytest.approx(30000.0 - 6426.67 * 0.99, abs=1.0)


def test_ocpp_curve_in_the_same_scan() -> None:
    curve = {"v2x_curve_points": 3, "v2x_baseline_w": 2000.0}
    for i, (hz, w) in enumerate([(49.8, -7000.0), (50.0, 0.0), (50.2, 7000.0)], start=1):
        curve[f"v2x_curve_hz[{i}]"] = hz
        curve[f"v2x_curve_w[{i}]"] = w
    rig = ProgramRig("freq_response.st")
    for i in range(1, N_CARS + 1):
        rig.set_ev(i, **{**BIDI_CAR, "p_charge_min_w": 0.0, "p_discharge_min_w": 0.0})
    rig.set(curve, n_evs=N_CARS, service="SVC_OCPP")
    rig.run(101, NOMINAL)
    assert total(rig) == pytest.approx(2000.0, abs=0.01)
    for hz, expected in [(49.9, -1500.0), (50.1, 5500.0), (49.5, -5000.0), (50.5, 9000.0)]:
        rig.scan(grid_hz=hz)
        assert total(rig) == pytest.approx(expected, abs=0.01)


# --------------------------------------------------------------------------- safe state
@pytest.mark.parametrize(
    ("inputs", "alarm"),
    [
        ({"grid_hz": float("nan")}, "alarm_not_finite"),
        ({"grid_hz": float("inf")}, "alarm_not_finite"),
        ({"grid_hz": 499.0}, "alarm_out_of_range"),  # a x10 scale error
        ({"grid_hz": 44.0}, "alarm_out_of_range"),
        ({"grid_hz": 47.0, "grid_v": 10.0}, "alarm_voltage"),  # collapse: meaningless 47 Hz
        ({"grid_v": float("nan")}, "alarm_voltage"),
    ],
)
def test_safe_state_in_the_scan_that_sees_an_invalid_measurement(
    inputs: dict[str, float], alarm: str
) -> None:
    # a collapse is also a loss of grid; its recovery time is shorter than the revalidation here
    rig = site("SVC_FCR", p_contracted_w=20000.0, lom_recover_s=0.5)
    rig.scan(grid_hz=49.8)
    assert total(rig) == pytest.approx(-20000.0, abs=0.1)
    rig.scan(inputs)
    assert rig.setpoints(N_CARS) == [0.0] * N_CARS
    assert rig.get("status") == "ST_SAFE_MEASUREMENT"
    assert rig.get("alarm_measurement") is True and rig.get(alarm) is True
    assert rig.get("p_request_w") == 0.0
    # valid again: 1 s of good readings before responding
    rig.run(100, NOMINAL, grid_hz=49.8)
    assert rig.setpoints(N_CARS) == [0.0] * N_CARS
    rig.scan()
    assert total(rig) == pytest.approx(-20000.0, abs=0.1)
    assert rig.get("alarm_measurement") is False


def test_voltage_check_follows_the_nominal_voltage_and_can_be_off() -> None:
    rig = site("SVC_FCR", p_contracted_w=20000.0)
    rig.scan(grid_hz=49.8, grid_v=27000.0)  # fine for 230 V nominal: only a collapse is checked
    assert total(rig) < 0.0
    rig.set(v_nominal_v=27000.0)
    rig.scan(grid_v=20000.0)  # 0.74 pu
    assert total(rig) == 0.0 and rig.get("alarm_voltage") is True
    rig.set(min_voltage_pu=0.0)
    rig.run(101, grid_v=0.0)
    assert total(rig) == pytest.approx(-20000.0, abs=0.1)


def test_disabled_and_parameter_errors_write_zero() -> None:
    rig = site("SVC_FCR", p_contracted_w=20000.0, baseline_w=11000.0)
    assert total(rig) == pytest.approx(11000.0, abs=0.1)
    rig.scan(enable=False)
    assert total(rig) == 0.0 and rig.get("status") == "ST_DISABLED"
    rig.scan(enable=True, full_at_hz=0.0)
    assert total(rig) == 0.0 and rig.get("status") == "ST_SAFE_PARAMETERS"
    assert rig.get("alarm_parameters") is True
    rig.scan(full_at_hz=-1.0, service="SVC_OCPP")  # no curve
    assert total(rig) == 0.0 and rig.get("status") == "ST_SAFE_PARAMETERS"
    rig.scan(service="SVC_NONE")
    assert total(rig) == pytest.approx(11000.0, abs=0.1) and rig.get("status") == "ST_NORMAL"


def test_sessions_dropped_from_n_evs_get_zero() -> None:
    rig = site("SVC_NONE", baseline_w=44000.0)
    assert rig.setpoints(N_CARS) == [11000.0] * 4
    rig.scan(n_evs=2)
    assert rig.setpoints(N_CARS) == [11000.0, 11000.0, 0.0, 0.0]


def test_site_export_limit_holds_with_the_site_load() -> None:
    """Cars follow their setpoint at once (a closed loop through site_w): FCR asks for 44 kW of
    discharge, the site may export 30 kW and has a 5 kW load of its own."""
    rig = site(
        "SVC_FCR",
        p_contracted_w=44000.0,
        export_limit_w=30000.0,
        import_limit_w=40000.0,
        site_margin_w=0.0,
        load_trend_horizon_s=0.0,
    )
    for hz in [49.7] * 5 + [50.3] * 5:
        present = rig.setpoints(N_CARS)
        for i, p in enumerate(present, start=1):
            rig.set_ev(i, p_present_w=p)
        rig.scan(grid_hz=hz, site_w=5000.0 + math.fsum(present))
    assert total(rig) == pytest.approx(35000.0, abs=0.1)  # import limit 40 kW minus the 5 kW load
    rig.set(grid_hz=49.7)
    for _ in range(5):
        present = rig.setpoints(N_CARS)
        for i, p in enumerate(present, start=1):
            rig.set_ev(i, p_present_w=p)
        rig.scan(site_w=5000.0 + math.fsum(present))
    assert total(rig) == pytest.approx(-35000.0, abs=0.1)  # export 30 kW plus the 5 kW load
    assert total(rig) >= -35000.0
    assert rig.get("p_unmet_w") == pytest.approx(-9000.0, abs=0.1)


# --------------------------------------------------------------------------- under the executor
def executor_with_meter() -> tuple[Executor, MeterDriver]:
    program = compile_file(PROGRAMS / "freq_response.st")
    outputs = [f"main.evs[{i}].p_setpoint_w" for i in range(1, N_CARS + 1)]
    meter = MeterDriver("main", outputs)
    executor = Executor(program, clock=VirtualClock(), drivers=[meter])
    for i in range(1, N_CARS + 1):
        for name, value in BIDI_CAR.items():
            executor.journal.write(f"main.evs[{i}].{name}", value)
    executor.journal.write("main.n_evs", N_CARS)
    executor.journal.write("main.p_contracted_w", 20000.0)
    meter.feed(grid_hz=49.9, grid_v=230.0, site_w=0.0)
    executor.run(max_scans=101)
    assert meter.written[-1] == {
        p: pytest.approx(v, abs=0.1) for p, v in zip(outputs, [-5000.0] * 2 + [0.0] * 2, strict=True)
    }
    return executor, meter


def handed_over_total(meter: MeterDriver) -> float:
    return math.fsum(float(v) for v in meter.written[-1].values())  # type: ignore[arg-type]


def test_a_meter_that_stops_updating_is_stale_after_max_meter_age() -> None:
    executor, meter = executor_with_meter()
    meter.freeze()
    executor.run(max_scans=100)  # the last reading is 1.00 s old: still usable
    assert handed_over_total(meter) == pytest.approx(-10000.0, abs=0.1)
    executor.run(max_scans=1)  # 1.01 s
    assert handed_over_total(meter) == 0.0
    assert executor.read("main.alarm_stale") is True
    assert executor.read("main.status") == "ST_SAFE_MEASUREMENT"


@pytest.mark.parametrize("quality", [Quality.STALE, Quality.BAD, Quality.COMM_LOST])
def test_a_bad_quality_is_safe_in_the_same_scan(quality: Quality) -> None:
    executor, meter = executor_with_meter()
    meter.mark(quality)
    executor.run(max_scans=1)
    assert handed_over_total(meter) == 0.0
    assert executor.read("main.alarm_quality") is True
    meter.feed(grid_hz=49.9)
    executor.run(max_scans=101)
    assert handed_over_total(meter) == pytest.approx(-10000.0, abs=0.1)


def test_fcr_d_down_answers_over_frequency_only() -> None:
    rig = site("SVC_FCR_D_DOWN", p_contracted_w=20000.0)
    rig.scan(grid_hz=49.7)
    assert total(rig) == 0.0
    rig.scan(grid_hz=50.3)  # shifted line 50.1 -> 50.5 Hz: half
    assert total(rig) == pytest.approx(10000.0, abs=0.1)
    assert rig.get("status") == "ST_RESPONDING"


def test_very_fast_fcas_holds_then_releases_with_hysteresis() -> None:
    rig = site("SVC_VF_FCAS", p_contracted_w=20000.0, vf_raise_trigger_hz=49.8, vf_min_hold_s=1.0)
    rig.scan(grid_hz=49.79)  # the trigger is a parameter
    assert total(rig) == pytest.approx(-20000.0, abs=0.1)
    rig.run(50, grid_hz=49.95)  # back above, but held for 1 s
    assert total(rig) == pytest.approx(-20000.0, abs=0.1)
    rig.run(60, grid_hz=49.805)  # past the hold, but within the 10 mHz hysteresis
    assert total(rig) == pytest.approx(-20000.0, abs=0.1)
    rig.scan(grid_hz=49.81)
    assert total(rig) == 0.0
    rig.scan(grid_hz=50.16)  # the lower service: charge
    assert total(rig) == pytest.approx(20000.0, abs=0.1)


# --------------------------------------------------------------------------- lost sessions
@pytest.mark.parametrize("lost", [Quality.BAD, Quality.STALE, Quality.COMM_LOST])
def test_a_lost_session_leaves_the_allocation_in_the_scan_that_sees_it_and_rejoins(lost: Quality) -> None:
    """4 cars of 11 kW, FCR 40 kW: at 49.8 Hz every car gives 10 kW. Car 3's charger stops being heard:
    in that very scan its setpoint is 0 W and the others share its part within their 11 kW; the
    shortfall (40 - 33 = 7 kW) is reported. When it is GOOD again it takes its share back."""
    rig = site("SVC_FCR", p_contracted_w=40000.0)
    rig.scan(grid_hz=49.8)
    assert rig.setpoints(N_CARS) == pytest.approx([-10000.0] * 4, abs=0.1)
    assert rig.get("p_shortfall_w") == 0.0 and not rig.get("alarm_fleet_short")
    qualities = rig.state.rt.qualities
    qualities["main.evs[3].connected"] = int(lost)
    rig.scan(grid_hz=49.8)
    setpoints = rig.setpoints(N_CARS)
    assert setpoints[2] == 0.0
    assert [setpoints[i] for i in (0, 1, 3)] == pytest.approx([-11000.0] * 3, abs=0.1)
    assert rig.get("n_lost") == 1
    assert [rig.get(f"ev_lost[{i}]") for i in range(1, N_CARS + 1)] == [False, False, True, False]
    assert rig.get("p_shortfall_w") == pytest.approx(7000.0)
    assert not rig.get("alarm_fleet_short")  # told once it lasts fleet_short_delay_s (3 s)
    rig.run(300, grid_hz=49.8)
    assert rig.get("alarm_fleet_short")
    assert rig.get("evs[3].connected") is True  # the input keeps what the charger said
    qualities["main.evs[3].connected"] = int(Quality.GOOD)
    rig.scan(grid_hz=49.8)
    assert rig.setpoints(N_CARS) == pytest.approx([-10000.0] * 4, abs=0.1)
    assert not rig.get("alarm_fleet_short") and rig.get("n_lost") == 0
    assert [rig.get(f"ev_lost[{i}]") for i in range(1, N_CARS + 1)] == [False] * N_CARS  # heard again


def test_the_shortfall_alarm_says_by_how_many_watts() -> None:
    executor = Executor(compile_file(PROGRAMS / "freq_response.st"), clock=VirtualClock())
    for i in range(1, 3):
        for name, value in BIDI_CAR.items():
            executor.journal.write(f"main.evs[{i}].{name}", value)
    for name, value in {"n_evs": 2, "service": "SVC_FCR", "p_contracted_w": 25000.0}.items():
        executor.journal.write(f"main.{name}", value)
    executor.run(max_scans=302)
    active = {a.key: a.message for a in executor.alarms.active()}
    assert active["st:main.alarm_fleet_short"] == (
        "the fleet falls short of the contracted response by 3000 W (0 sessions lost)"
    )


def test_a_start_is_a_warm_up_not_an_alarm_and_a_meter_that_never_comes_is() -> None:
    rig = ProgramRig("freq_response.st")
    rig.set(n_evs=0)
    rig.run(50)  # no meter sample yet: safe, but no alarm
    assert rig.get("status") == "ST_SAFE_MEASUREMENT"
    assert not rig.get("alarm_measurement") and not rig.get("alarm_loss_of_grid")
    rig.run(960)  # 10 s without a valid measurement: now it is an alarm
    assert rig.get("alarm_measurement")
    rig.run(200, NOMINAL)
    assert rig.get("status") == "ST_NORMAL" and not rig.get("alarm_measurement")
