"""The Nordic FFR state machine (NORDIC_FFR) driven scan by scan in virtual time (10 ms scans)."""

from __future__ import annotations

import pytest
from st_rig import FbRig

SCANS_PER_S = 100


def armed_rig(**params: object) -> FbRig:
    rig = FbRig("NORDIC_FFR")
    rig.set(p_contracted_w=20000.0, **params)
    rig.run(10, freq_hz=50.0)
    assert rig.get("state") == "FFR_ARMED" and rig.get("p_w") == 0.0
    return rig


@pytest.mark.parametrize("trigger", [49.7, 49.6, 49.5])
def test_full_activation_in_the_scan_that_sees_the_trigger(trigger: float) -> None:
    rig = armed_rig(trigger_hz=trigger)
    rig.scan(freq_hz=trigger + 0.005)
    assert rig.get("state") == "FFR_ARMED" and rig.get("p_w") == 0.0
    rig.scan(freq_hz=trigger)  # reaching the level is not yet falling below it
    assert rig.get("state") == "FFR_ARMED"
    rig.scan(freq_hz=trigger - 0.0005)
    assert rig.get("state") == "FFR_ACTIVE"
    assert rig.get("triggered") is True
    assert rig.get("p_w") == -20000.0
    rig.scan()
    assert rig.get("triggered") is False and rig.get("activations") == 1


def test_min_support_then_deactivation_ramp_then_rearm() -> None:
    rig = armed_rig(rearm_time="T#10s")
    rig.scan(freq_hz=49.65)
    start = rig.scans - 1  # index of the trigger scan
    rig.scan(freq_hz=50.0)  # recovers at once: still held for the 5 s minimum
    while rig.get("state") == "FFR_ACTIVE":
        assert rig.get("activation") == 1.0
        rig.scan()
    # left ACTIVE in the scan 5 s after the trigger scan
    assert rig.scans - 1 - start == 5 * SCANS_PER_S
    assert rig.get("state") == "FFR_DEACTIVATING"
    deactivation_start = rig.scans - 1
    rig.run(250)  # 2.5 s at 20 %/s
    assert rig.get("activation") == pytest.approx(0.5, abs=1e-9)
    assert rig.get("p_w") == pytest.approx(-10000.0, abs=1e-3)
    while rig.get("state") == "FFR_DEACTIVATING":
        rig.scan()
    assert rig.scans - 1 - deactivation_start == 5 * SCANS_PER_S
    assert rig.get("state") == "FFR_RECOVERING" and rig.get("p_w") == 0.0
    # the frequency has been above 49.9 Hz since; re-armed 10 s after entering RECOVERING
    recovering_start = rig.scans - 1
    while rig.get("state") == "FFR_RECOVERING":
        rig.scan()
    assert rig.scans - 1 - recovering_start == 10 * SCANS_PER_S
    rig.scan(freq_hz=49.6)
    assert rig.get("state") == "FFR_ACTIVE" and rig.get("activations") == 2


def test_no_reactivation_before_recovery() -> None:
    rig = armed_rig(deactivation_pct_per_s=0.0, rearm_time="T#2s")
    assert rig.get("min_support") == "T#30s"  # a step deactivation needs 30 s of support
    rig.scan(freq_hz=49.6)
    rig.run(30 * SCANS_PER_S - 1, freq_hz=49.8)
    assert rig.get("state") == "FFR_ACTIVE"
    rig.scan()
    assert rig.get("state") == "FFR_RECOVERING" and rig.get("p_w") == 0.0
    # 49.8 Hz is not above the 49.9 Hz recovery threshold: a new dip does not trigger
    rig.run(500, freq_hz=49.8)
    rig.scan(freq_hz=49.6)
    assert rig.get("state") == "FFR_RECOVERING" and rig.get("p_w") == 0.0
    rig.run(150, freq_hz=49.95)  # 1.5 s above: not yet
    rig.scan(freq_hz=49.88)  # dips below recovery: the re-arm timer restarts
    rig.run(150, freq_hz=49.95)
    assert rig.get("state") == "FFR_RECOVERING"
    rig.run(60, freq_hz=49.95)
    assert rig.get("state") == "FFR_ARMED"


def test_holds_while_the_frequency_stays_low_unless_capped() -> None:
    rig = armed_rig()
    rig.scan(freq_hz=49.5)
    rig.run(20 * SCANS_PER_S, freq_hz=49.5)
    assert rig.get("state") == "FFR_ACTIVE"
    capped = armed_rig(max_support_time="T#8s")
    capped.scan(freq_hz=49.5)
    capped.run(8 * SCANS_PER_S - 1, freq_hz=49.5)
    assert capped.get("state") == "FFR_ACTIVE"
    capped.scan()
    assert capped.get("state") == "FFR_DEACTIVATING"


def test_support_time_below_the_minimum_is_raised() -> None:
    rig = armed_rig(support_time="T#1s")
    assert rig.get("min_support") == "T#5s"
    rig = armed_rig(support_time="T#12s", deactivation_pct_per_s=25.0)
    assert rig.get("min_support") == "T#30s"


def test_a_new_dip_during_the_ramp_reactivates() -> None:
    rig = armed_rig()
    rig.scan(freq_hz=49.6)
    rig.run(5 * SCANS_PER_S + 100, freq_hz=50.0)
    assert rig.get("state") == "FFR_DEACTIVATING" and rig.get("activation") < 1.0
    rig.scan(freq_hz=49.69)
    assert rig.get("state") == "FFR_ACTIVE" and rig.get("activation") == 1.0
    assert rig.get("triggered") is True and rig.get("activations") == 2


def test_disable_and_nan() -> None:
    rig = armed_rig()
    rig.scan(freq_hz=49.6)
    rig.scan(freq_hz=float("nan"))
    assert rig.get("state") == "FFR_DISABLED" and rig.get("p_w") == 0.0
    rig.scan(freq_hz=50.0)
    assert rig.get("state") == "FFR_ARMED"
    rig.scan(enable=False, freq_hz=49.0)
    assert rig.get("state") == "FFR_DISABLED" and rig.get("p_w") == 0.0
