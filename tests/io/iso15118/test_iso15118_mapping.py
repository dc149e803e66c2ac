"""What the car hears for a setpoint, per session kind, from the SECC process's EVSE controller itself
(run in the SECC environment, without a network): dynamic and scheduled BPT, charge-only sessions,
the car's limits and minimum, stop and renegotiation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.io.iso15118.conftest import secc_python

PROBE = Path(__file__).with_name("mapping_probe.py")


@pytest.fixture(scope="module")
def cases() -> dict[str, Any]:
    python = secc_python()
    if not Path(python).is_file():
        pytest.skip(f"needs the SECC environment at {python}")
    done = subprocess.run([python, str(PROBE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_dynamic_bpt_follows_the_signed_setpoint_within_the_car_limits(cases: dict[str, Any]) -> None:
    discharge = cases["dynamic_discharge"]  # -20 kW asked, the car gives 7 kW at most
    assert (discharge["applied_w"], discharge["max_charge_w"], discharge["max_discharge_w"]) == (
        -7000.0,
        0.0,
        7000.0,
    )
    assert discharge["current_a"] == pytest.approx(-17.5)
    charge = cases["dynamic_charge"]
    assert (charge["applied_w"], charge["max_charge_w"], charge["max_discharge_w"]) == (5000.0, 5000.0, 0.0)
    fields = discharge["fields"]
    assert (fields["protocol"], fields["energy_mode"], fields["control_mode"], fields["auth_mode"]) == (
        20,
        4,
        2,
        1,
    )
    assert fields["bidirectional_allowed"] is True and fields["p_present_w"] == pytest.approx(-7000.0)


def test_scheduled_mode_gets_the_same_numbers_as_limits(cases: dict[str, Any]) -> None:
    scheduled = cases["scheduled_discharge"]
    assert (scheduled["max_charge_w"], scheduled["max_discharge_w"]) == (0.0, 3000.0)
    assert scheduled["fields"]["control_mode"] == 1


def test_sessions_without_bpt_are_charge_only(cases: dict[str, Any]) -> None:
    for name in ("dc_without_bpt", "iso2_discharge"):
        case = cases[name]
        assert (case["applied_w"], case["max_discharge_w"]) == (0.0, 0.0), name
        assert case["fields"]["bidirectional_allowed"] is False and case["fields"]["p_discharge_max_w"] == 0.0
    assert cases["iso2_discharge"]["fields"]["protocol"] == 2


def test_below_the_car_minimum_nothing_flows(cases: dict[str, Any]) -> None:
    assert cases["below_car_minimum"]["applied_w"] == 0.0


def test_stop_and_renegotiation_are_notifications_and_stop_means_no_power(cases: dict[str, Any]) -> None:
    assert cases["stop"]["notification"] == "Terminate" and cases["stop"]["applied_w"] == 0.0
    assert cases["renegotiate"]["notification"] == "ServiceRenegotiation"
    assert cases["renegotiate"]["applied_w"] == 5000.0
