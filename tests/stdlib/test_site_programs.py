"""programs/ffr.st and programs/ocpp_local_frequency.st scan by scan: the response in the scan that
reads the sample, the safe state for invalid measurements and unusable parameters."""

from __future__ import annotations

import math

import pytest
from st_rig import BIDI_CAR, ProgramRig

N_CARS = 3
NOMINAL = {"grid_hz": 50.0, "grid_v": 230.0, "site_w": 0.0}


def with_cars(file_name: str, **params: object) -> ProgramRig:
    rig = ProgramRig(file_name)
    for i in range(1, N_CARS + 1):
        rig.set_ev(i, **BIDI_CAR)
    rig.set(n_evs=N_CARS, **params)
    return rig


def total(rig: ProgramRig) -> float:
    return math.fsum(rig.setpoints(N_CARS))


def test_ffr_program_steps_to_full_discharge_and_holds() -> None:
    rig = with_cars("ffr.st", p_contracted_w=30000.0, baseline_w=3000.0, trigger_hz=49.6)
    rig.run(101, NOMINAL)
    assert rig.get("status") == "ST_NORMAL" and rig.get("ffr_state") == "FFR_ARMED"
    assert total(rig) == 0.0  # 3 kW is below every car's minimum: reported, not run
    assert rig.get("p_unmet_w") == pytest.approx(3000.0)
    rig.scan(grid_hz=49.59)
    assert total(rig) == pytest.approx(-27000.0, abs=0.1)
    assert rig.get("status") == "ST_RESPONDING" and rig.get("activations") == 1
    rig.run(499, grid_hz=50.0)  # the 5 s minimum support
    assert total(rig) == pytest.approx(-27000.0, abs=0.1)
    rig.run(261)  # deactivating from the 500th scan on at 20 %/s: 2.6 s later 48 % is left
    assert rig.get("ffr_state") == "FFR_DEACTIVATING"
    assert rig.get("p_request_w") == pytest.approx(3000.0 - 0.48 * 30000.0, abs=1.0)


def test_ffr_program_safe_state_and_no_trigger_on_invalid_samples() -> None:
    rig = with_cars("ffr.st", p_contracted_w=30000.0)
    rig.run(101, NOMINAL)
    rig.scan(grid_hz=47.0, grid_v=10.0)  # a collapse with a meaningless frequency
    assert total(rig) == 0.0 and rig.get("status") == "ST_SAFE_MEASUREMENT"
    assert rig.get("ffr_state") == "FFR_DISABLED" and rig.get("activations") == 0
    rig.scan(grid_hz=4.97, grid_v=230.0)  # a scale error
    assert rig.get("ffr_state") == "FFR_DISABLED" and rig.get("alarm_measurement") is True


def test_ffr_program_stale_meter_age_limit_is_a_parameter() -> None:
    rig = with_cars("ffr.st", p_contracted_w=30000.0)
    assert rig.get("max_meter_age_s") == 0.5


def curve_rig(**params: object) -> ProgramRig:
    rig = with_cars("ocpp_local_frequency.st", v2x_baseline_w=2000.0, v2x_curve_points=3, **params)
    for i, (hz, w) in enumerate([(49.8, -7000.0), (50.0, 0.0), (50.2, 7000.0)], start=1):
        rig.set({f"v2x_curve_hz[{i}]": hz, f"v2x_curve_w[{i}]": w})
    for i in range(1, N_CARS + 1):
        rig.set_ev(i, p_charge_min_w=1000.0, p_discharge_min_w=1000.0)
    rig.run(101, NOMINAL)
    return rig


def test_ocpp_program_follows_the_curve_in_the_same_scan() -> None:
    rig = curve_rig()
    assert total(rig) == pytest.approx(2000.0, abs=0.01)
    for hz, expected in [(49.9, -1500.0), (50.1, 5500.0), (49.5, -5000.0), (50.5, 9000.0)]:
        rig.scan(grid_hz=hz)
        assert total(rig) == pytest.approx(expected, abs=0.01)
        assert all(p == 0.0 or abs(p) >= 1000.0 for p in rig.setpoints(N_CARS))


def test_ocpp_program_update_threshold_and_unusable_curve() -> None:
    rig = curve_rig(local_frequency_update_threshold_mhz=20.0)
    rig.scan(grid_hz=49.99)  # 10 mHz: below the threshold, the 50.0 Hz setpoint stays
    assert total(rig) == pytest.approx(2000.0, abs=0.01) and rig.get("f_applied_hz") == 50.0
    rig.scan(grid_hz=49.98)
    assert total(rig) == pytest.approx(2000.0 - 700.0, abs=0.01)
    rig.scan(v2x_curve_points=0)
    assert total(rig) == 0.0 and rig.get("status") == "ST_SAFE_PARAMETERS"
    assert rig.get("alarm_curve") is True
    rig.scan({"v2x_curve_points": 3, "v2x_curve_hz[2]": 49.7})  # frequencies not increasing
    assert total(rig) == 0.0 and rig.get("alarm_curve") is True


@pytest.mark.parametrize("file_name", ["ffr.st", "ocpp_local_frequency.st"])
def test_loss_of_grid_is_the_safe_state_in_both_programs(file_name: str) -> None:
    if file_name == "ffr.st":
        rig = with_cars(file_name, p_contracted_w=30000.0)
    else:
        rig = with_cars(file_name, v2x_curve_points=2)
        rig.set(
            {
                "v2x_curve_hz[1]": 49.0,
                "v2x_curve_w[1]": -20000.0,
                "v2x_curve_hz[2]": 51.0,
                "v2x_curve_w[2]": 0.0,
            }
        )
    rig.run(101, NOMINAL, grid_hz=49.5)
    assert total(rig) < 0.0
    rig.scan(grid_hz=47.3)  # plausible, but a dead network's frequency
    assert rig.setpoints(N_CARS) == [0.0] * N_CARS
    assert rig.get("status") == "ST_SAFE_GRID" and rig.get("alarm_loss_of_grid") is True
