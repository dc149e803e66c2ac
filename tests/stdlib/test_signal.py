"""Signal blocks and timing of the grid library, scan by scan in virtual time: measurement validity,
ramp-rate limiter, first-order filter, RoCoF and the IEEE 1547 open-loop response time."""

from __future__ import annotations

import math

import pytest
from st_rig import MS, FbRig

GOOD_METER = {"freq_hz": 50.0, "voltage_v": 230.0, "revalidate_time": "T#0s"}


# ---------------------------------------------------------------------------------- MEAS_VALID
@pytest.mark.parametrize(
    ("inputs", "fault", "flag"),
    [
        ({"freq_hz": float("nan")}, "MEAS_NOT_FINITE", "not_finite"),
        ({"freq_hz": float("inf")}, "MEAS_NOT_FINITE", "not_finite"),
        ({"freq_hz": 499.0}, "MEAS_OUT_OF_RANGE", "out_of_range"),  # a x10 scale error
        ({"freq_hz": 44.99}, "MEAS_OUT_OF_RANGE", "out_of_range"),
        ({"voltage_v": 10.0}, "MEAS_VOLTAGE_LOW", "voltage_low"),
        ({"voltage_v": float("nan")}, "MEAS_VOLTAGE_LOW", "voltage_low"),
        ({"f_age": "T#1001ms"}, "MEAS_STALE", "stale"),
        ({"v_age": "T#6s"}, "MEAS_STALE", "stale"),
        ({"f_quality": "STALE"}, "MEAS_BAD_QUALITY", "bad_quality"),
        ({"f_quality": "COMM_LOST"}, "MEAS_BAD_QUALITY", "bad_quality"),
        ({"v_quality": "BAD"}, "MEAS_BAD_QUALITY", "bad_quality"),
    ],
)
def test_each_fault_is_invalid_in_the_same_scan(inputs: dict[str, object], fault: str, flag: str) -> None:
    rig = FbRig("MEAS_VALID")
    rig.scan(GOOD_METER)
    assert rig.get("valid") is True and rig.get("fault") == "MEAS_OK"
    rig.scan(inputs)
    assert rig.get("valid") is False
    assert rig.get("fault") == fault
    assert rig.get(flag) is True


def test_window_ends_are_valid_and_unbound_counts_as_good() -> None:
    rig = FbRig("MEAS_VALID")
    rig.scan(GOOD_METER, freq_hz=45.0, f_quality="UNBOUND", v_quality="UNBOUND", f_age="T#1s")
    assert rig.get("valid") is True
    rig.scan(freq_hz=65.0, voltage_v=184.01)  # 0.8 * 230 V = 184 V
    assert rig.get("valid") is True
    rig.scan(voltage_v=183.99)
    assert rig.get("valid") is False and rig.get("fault") == "MEAS_VOLTAGE_LOW"


def test_voltage_check_can_be_switched_off() -> None:
    rig = FbRig("MEAS_VALID")
    rig.scan(GOOD_METER, voltage_v=0.0, v_quality="COMM_LOST", v_age="T#1h", v_min_pu=0.0)
    assert rig.get("valid") is True


def test_first_failing_check_is_reported() -> None:
    rig = FbRig("MEAS_VALID")
    rig.scan(GOOD_METER, freq_hz=float("nan"), voltage_v=0.0, f_quality="STALE")
    assert rig.get("fault") == "MEAS_BAD_QUALITY"
    assert rig.get("not_finite") is True and rig.get("voltage_low") is True


def test_revalidation_time_after_a_fault_and_at_start() -> None:
    rig = FbRig("MEAS_VALID")
    rig.set(GOOD_METER, revalidate_time="T#1s")
    rig.scan()
    assert rig.get("valid") is False and rig.get("fault") == "MEAS_RECOVERING"
    rig.run(99)
    assert rig.get("valid") is False
    rig.scan()  # 1 s after the first good scan
    assert rig.get("valid") is True
    rig.scan(freq_hz=float("nan"))
    assert rig.get("valid") is False
    rig.run(50, freq_hz=50.0)
    rig.scan(freq_hz=70.0)  # a new fault restarts the timer
    rig.run(100, freq_hz=50.0)
    assert rig.get("valid") is False
    rig.scan()
    assert rig.get("valid") is True


# ---------------------------------------------------------------------------------- RAMP_LIMIT
def test_ramp_limit_up_and_down_rates() -> None:
    rig = FbRig("RAMP_LIMIT")
    rig.scan(in_w=0.0, up_w_per_s=1000.0, down_w_per_s=4000.0)
    assert rig.get("out_w") == 0.0  # the first call starts at the input
    rig.run(100, in_w=10000.0)
    assert rig.get("out_w") == pytest.approx(1000.0, abs=1e-3)
    assert rig.get("limiting") is True
    rig.run(900)
    assert rig.get("out_w") == pytest.approx(10000.0, abs=1e-3)
    rig.scan()
    assert rig.get("out_w") == 10000.0 and rig.get("limiting") is False
    rig.run(50, in_w=-10000.0)  # 0.5 s at 4 kW/s
    assert rig.get("out_w") == pytest.approx(8000.0, abs=1e-3)


def test_ramp_limit_uses_the_scan_clock_not_the_scan_count() -> None:
    rig = FbRig("RAMP_LIMIT")
    rig.scan(in_w=0.0, up_w_per_s=100.0, at_ns=0)
    rig.scan(in_w=1000.0, at_ns=250 * MS)
    assert rig.get("out_w") == pytest.approx(25.0, abs=1e-4)
    rig.scan(at_ns=1250 * MS)
    assert rig.get("out_w") == pytest.approx(125.0, abs=1e-4)
    rig.scan(at_ns=1250 * MS)  # the same scan time again: no change
    assert rig.get("out_w") == pytest.approx(125.0, abs=1e-4)


def test_ramp_limit_reset_zero_rate_and_nan() -> None:
    rig = FbRig("RAMP_LIMIT")
    rig.scan(in_w=0.0, up_w_per_s=10.0, down_w_per_s=0.0)
    rig.scan(in_w=500.0, reset=True)
    assert rig.get("out_w") == 500.0
    rig.scan(in_w=-500.0, reset=False)  # no falling limit
    assert rig.get("out_w") == -500.0
    rig.scan(in_w=float("nan"))
    assert rig.get("out_w") == -500.0


# ---------------------------------------------------------------------------------- LOWPASS1
def test_lowpass_step_response_is_exact_for_any_step() -> None:
    rig = FbRig("LOWPASS1")
    rig.scan(**{"in": 0.0, "tau": "T#2s"}, at_ns=0)
    rig.scan(**{"in": 1.0}, at_ns=10 * MS)
    t = 0.01
    for at_ms in (20, 50, 300, 2010, 6000):
        rig.scan(at_ns=at_ms * MS)
        t = at_ms / 1000.0
        assert rig.get("out") == pytest.approx(1.0 - math.exp(-t / 2.0), abs=1e-12)
    rig.scan(**{"in": 5.0, "reset": True})
    assert rig.get("out") == 5.0
    rig.scan(**{"in": 7.0, "tau": "T#0s", "reset": False})
    assert rig.get("out") == 7.0


# ---------------------------------------------------------------------------------- ROCOF
def test_rocof_of_a_ramp() -> None:
    rig = FbRig("ROCOF")
    rig.set(window="T#200ms")
    for k in range(40):
        rig.scan(freq_hz=50.0 - 0.5 * k * 0.01)  # -0.5 Hz/s
        assert rig.get("ready") is (k >= 20)
    assert rig.get("rocof_hz_per_s") == pytest.approx(-0.5, abs=1e-9)
    rig.scan(freq_hz=float("nan"))
    assert rig.get("ready") is False and rig.get("rocof_hz_per_s") == 0.0
    rig.scan(freq_hz=50.0)
    assert rig.get("ready") is False


def test_rocof_window_longer_than_a_second() -> None:
    rig = FbRig("ROCOF")
    rig.set(window="T#2s")
    for k in range(700):
        rig.scan(freq_hz=50.0 + 0.1 * math.floor(k / 100))  # +0.1 Hz every second
    assert rig.get("rocof_hz_per_s") == pytest.approx(0.1, abs=1e-9)
    rig.scan(reset=True)
    assert rig.get("ready") is False


# ---------------------------------------------------------------------------------- IEEE 1547 timing
@pytest.mark.parametrize("tr_s", [5.0, 1.0, 0.2])
def test_ieee1547_first_order_reaches_90_percent_at_tr(tr_s: float) -> None:
    rig = FbRig("IEEE1547_DROOP")
    rig.set(p_rated_w=20000.0, response_time=f"T#{round(tr_s * 1000)}ms")
    rig.run(10, freq_hz=60.0)
    assert rig.get("delta_pu") == 0.0
    target = -(60.0 - 0.036 - 59.0) / (60.0 * 0.05)
    tau = tr_s / math.log(10.0)
    scans_to_tr = round(tr_s * 100)
    values = []
    for m in range(scans_to_tr + 5):
        rig.scan(freq_hz=59.0)
        values.append(rig.get("delta_pu"))
        # the filter holds this scan's input over the last 10 ms interval
        assert values[m] == pytest.approx(target * (1.0 - math.exp(-(m + 1) * 0.01 / tau)), abs=1e-9)
    assert rig.get("target_pu") == pytest.approx(target)
    # 90 % in the scan one period before step + Tr (tau is rounded to whole nanoseconds)
    assert values[scans_to_tr - 1] / target == pytest.approx(0.9, abs=1e-8)
    assert values[scans_to_tr - 2] / target < 0.9 - 1e-4
    assert rig.get("p_w") == pytest.approx(values[-1] * 20000.0, rel=1e-6)


def test_ieee1547_reset_holds_zero_and_restarts_from_zero() -> None:
    rig = FbRig("IEEE1547_DROOP")
    rig.set(p_rated_w=1000.0, response_time="T#1s")
    rig.run(700, freq_hz=59.0)
    assert rig.get("delta_pu") == pytest.approx(-0.3213, abs=1e-4)
    rig.run(3, reset=True)
    assert rig.get("delta_pu") == 0.0 and rig.get("p_w") == 0.0
    rig.scan(reset=False)
    assert 0.0 > rig.get("delta_pu") > -0.02
