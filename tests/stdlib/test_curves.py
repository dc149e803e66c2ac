"""The static frequency-response curves of the grid library (FCR, Dynamic Containment, LFSM, IEEE 1547,
OCPP LocalFrequency) against the check values of the grid codes, plus their edge behaviour."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from st_rig import FbRig

HERE = Path(__file__).parent


def test_check_values_program_matches_the_published_numbers() -> None:
    spec = json.loads((HERE / "check_values.expected.json").read_text())
    program = compile_file(HERE / "check_values.st")
    assert program.diagnostics == []
    state = program.new_state()
    for cycle in range(spec["cycles"]):
        state.run_task_scan(program.tasks[0].name, cycle * 10_000_000)
    values = state.snapshot()[spec["program"]]
    for name, check in spec["values"].items():
        actual = values[name]
        assert len(actual) == len(check["expected"]), name
        for i, (got, want) in enumerate(zip(actual, check["expected"], strict=True)):
            assert math.isfinite(got) and abs(got - want) <= check["abs_tol"], (
                f"{name}[{i + 1}]: {got} != {want}"
            )


# ---------------------------------------------------------------------------------------------- FCR
@pytest.mark.parametrize(
    ("hz", "expected_w"),
    [(49.99, 0.0), (50.01, 0.0), (49.989, -1100.0), (50.011, 1100.0), (49.9895, -1050.0), (49.991, 0.0)],
)
def test_fcr_deadband_edges_unshifted(hz: float, expected_w: float) -> None:
    rig = FbRig("FCR_DROOP")
    rig.scan(freq_hz=hz, p_max_w=20000.0)
    assert rig.get("p_w") == pytest.approx(expected_w, abs=0.01)
    assert rig.get("in_deadband") is (expected_w == 0.0)


def test_fcr_shifted_line_starts_from_zero_at_the_edge() -> None:
    rig = FbRig("FCR_DROOP")
    rig.set(p_max_w=19000.0, shift_at_deadband=True)
    rig.scan(freq_hz=49.989)
    # (0.011 - 0.010) / (0.2 - 0.01) of 19 kW = 100 W, discharging
    assert rig.get("p_w") == pytest.approx(-100.0, abs=0.01)
    rig.scan(freq_hz=50.2)
    assert rig.get("activation") == pytest.approx(1.0)


def test_fcr_parameters_and_nan() -> None:
    rig = FbRig("FCR_DROOP")
    rig.scan(freq_hz=49.8, p_max_w=1000.0, full_at_hz=0.0)
    assert rig.get("param_error") is True and rig.get("p_w") == 0.0
    rig.scan(full_at_hz=0.005, deadband_hz=0.01, shift_at_deadband=True)
    assert rig.get("param_error") is True and rig.get("p_w") == 0.0
    rig.scan(full_at_hz=0.2, freq_hz=float("nan"))
    assert rig.get("param_error") is False and rig.get("p_w") == 0.0


# ---------------------------------------------------------------------------------------------- DC
def test_dc_is_continuous_at_the_knee_and_full_beyond() -> None:
    rig = FbRig("DC_CURVE")
    rig.set(p_max_w=10000.0)
    rig.scan(freq_hz=50.0 - 0.2 + 1e-9)
    below = rig.get("activation_pct")
    rig.scan(freq_hz=50.0 - 0.2 - 1e-9)
    above = rig.get("activation_pct")
    assert below == pytest.approx(5.0, abs=1e-5) and above == pytest.approx(5.0, abs=1e-5)
    rig.scan(freq_hz=49.0)
    assert rig.get("p_w") == pytest.approx(-10000.0)
    rig.scan(freq_hz=50.015)
    assert rig.get("p_w") == 0.0


def test_dc_rejects_an_unordered_curve() -> None:
    rig = FbRig("DC_CURVE")
    rig.scan(freq_hz=49.5, p_max_w=1000.0, knee_hz=0.6)
    assert rig.get("param_error") is True and rig.get("p_w") == 0.0


# ---------------------------------------------------------------------------------------------- LFSM
def test_lfsm_freezes_pref_at_the_crossing() -> None:
    rig = FbRig("LFSM")
    rig.scan(freq_hz=50.1, p_ref_w=20000.0)
    assert rig.get("active_o") is False and rig.get("delta_p_w") == 0.0
    rig.scan(freq_hz=50.3, p_ref_w=20000.0)  # crossing: Pref = 20 kW
    assert rig.get("p_ref_frozen_w") == 20000.0
    assert rig.get("delta_p_w") == pytest.approx(800.0, abs=1e-3)
    rig.scan(freq_hz=50.6, p_ref_w=5000.0)  # the input moves; Pref stays frozen
    assert rig.get("p_ref_frozen_w") == 20000.0
    assert rig.get("delta_p_w") == pytest.approx(3200.0, abs=1e-3)
    rig.scan(freq_hz=50.0, p_ref_w=5000.0)  # back inside: released
    assert rig.get("active_o") is False and rig.get("p_ref_frozen_w") == 0.0
    rig.scan(freq_hz=49.5, p_ref_w=-5000.0)  # LFSM-U freezes |p_ref| = 5 kW
    assert rig.get("active_u") is True
    assert rig.get("delta_p_w") == pytest.approx(-600.0, abs=1e-3)


def test_lfsm_other_droop_limit_and_disable() -> None:
    rig = FbRig("LFSM")
    rig.scan(freq_hz=49.0, p_ref_w=10000.0, droop_pct=2.0, max_fraction=0.5)
    # (49.0 - 49.8) / (50 * 0.02) = -0.8, limited to -0.5
    assert rig.get("delta_fraction") == pytest.approx(-0.5)
    rig.scan(droop_pct=12.0, max_fraction=1.0)
    assert rig.get("delta_fraction") == pytest.approx(-0.8 / 6.0)
    rig.scan(enable_u=False)
    assert rig.get("active_u") is False and rig.get("delta_p_w") == 0.0
    rig.scan(droop_pct=0.0, enable_u=True)
    assert rig.get("param_error") is True and rig.get("delta_p_w") == 0.0


# ---------------------------------------------------------------------------------------------- OCPP
def set_curve(rig: FbRig, points: list[tuple[float, float]]) -> None:
    for i, (hz, w) in enumerate(points, start=1):
        rig.set({f"curve_hz[{i}]": hz, f"curve_w[{i}]": w})
    rig.set(n_points=len(points))


def test_ocpp_single_point_and_many_points() -> None:
    rig = FbRig("OCPP_FREQ_WATT")
    set_curve(rig, [(50.0, -3000.0)])
    rig.scan(freq_hz=49.0, baseline_w=500.0)
    assert rig.get("curve_ok") is True and rig.get("p_w") == pytest.approx(-2500.0)
    points = [(49.0 + 0.1 * k, 1000.0 * k * k) for k in range(20)]
    set_curve(rig, points)
    rig.scan(freq_hz=49.05, baseline_w=0.0)
    assert rig.get("p_w") == pytest.approx(500.0, abs=1e-3)  # halfway between 0 and 1000
    rig.scan(freq_hz=50.85)
    assert rig.get("p_w") == pytest.approx((324000.0 + 361000.0) / 2, rel=1e-6)
    rig.scan(freq_hz=51.5)
    assert rig.get("p_w") == pytest.approx(361000.0)


@pytest.mark.parametrize(
    "points",
    [[], [(50.0, 0.0), (50.0, 100.0)], [(50.1, 0.0), (50.0, 100.0)], [(50.0, float("nan")), (50.1, 0.0)]],
    ids=["empty", "repeated-frequency", "decreasing", "nan-power"],
)
def test_ocpp_unusable_curve_gives_zero(points: list[tuple[float, float]]) -> None:
    rig = FbRig("OCPP_FREQ_WATT")
    set_curve(rig, points)
    rig.scan(freq_hz=49.9, baseline_w=2000.0)
    assert rig.get("curve_ok") is False and rig.get("p_w") == 0.0


def test_ocpp_too_many_points_is_unusable() -> None:
    rig = FbRig("OCPP_FREQ_WATT")
    set_curve(rig, [(49.0 + 0.1 * k, 0.0) for k in range(20)])
    rig.scan(freq_hz=49.9, n_points=21)
    assert rig.get("curve_ok") is False


def test_ocpp_update_threshold_holds_small_changes() -> None:
    rig = FbRig("OCPP_FREQ_WATT")
    set_curve(rig, [(49.8, -7000.0), (50.0, 0.0), (50.2, 7000.0)])
    rig.scan(freq_hz=49.9, baseline_w=2000.0, update_threshold_hz=0.01)
    assert rig.get("p_w") == pytest.approx(-1500.0)
    rig.scan(freq_hz=49.905)  # 5 mHz: below the threshold, the setpoint stays
    assert rig.get("p_w") == pytest.approx(-1500.0) and rig.get("f_applied_hz") == 49.9
    rig.scan(freq_hz=49.911)  # 11 mHz from the applied frequency: a new setpoint
    assert rig.get("p_w") == pytest.approx(-7000.0 + 7000.0 / 0.2 * 0.111 + 2000.0, abs=1e-3)
