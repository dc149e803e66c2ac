"""The expected setpoints written in the shipped scenarios agree with independent Python versions of
each service's published curve, evaluated at the frequency the scenario's grid has at that time."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pytest
from plcrun.io.sim import GridModel, Scenario, builtin_scenarios, load_scenario

Params = Mapping[str, object]


def num(params: Params, key: str) -> float:
    value = params[key]
    assert isinstance(value, int | float)
    return float(value)


def fcr(f: float, p: Params, history: np.ndarray) -> float:
    dev = f - num(p, "f_nominal_hz")
    share = 0.0 if abs(dev) <= num(p, "deadband_hz") else max(-1.0, min(1.0, dev / num(p, "full_at_hz")))
    return num(p, "baseline_w") + num(p, "p_contracted_w") * share


def dc(f: float, p: Params, history: np.ndarray) -> float:
    dev = f - num(p, "f_nominal_hz")
    band, knee, knee_pct, full = (num(p, k) for k in ("deadband_hz", "knee_hz", "knee_pct", "full_at_hz"))
    d = abs(dev)
    if d <= band:
        pct = 0.0
    elif d <= knee:
        pct = knee_pct * (d - band) / (knee - band)
    else:
        pct = knee_pct + (100.0 - knee_pct) * min(1.0, (d - knee) / (full - knee))
    return num(p, "baseline_w") + num(p, "p_contracted_w") * math.copysign(pct / 100.0, dev)


def lfsm(f: float, p: Params, history: np.ndarray) -> float:
    droop = num(p, "droop_pct") / 100.0
    over, under = num(p, "lfsm_o_hz"), num(p, "lfsm_u_hz")
    delta = 0.0
    if f > over:
        delta = (f - over) / (50.0 * droop)
    elif f < under:
        delta = -(under - f) / (50.0 * droop)
    return num(p, "baseline_w") + num(p, "p_ref_w") * delta


def ffr(f: float, p: Params, history: np.ndarray) -> float:
    triggered = bool((history < num(p, "trigger_hz")).any())
    return num(p, "baseline_w") - (num(p, "p_contracted_w") if triggered else 0.0)


def ocpp(f: float, p: Params, history: np.ndarray) -> float:
    curve = p["v2x_freq_watt_curve"]
    assert isinstance(curve, list)
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    threshold = opt(p, "local_frequency_update_threshold_mhz", 0.0) / 1000.0
    applied = None
    for hz in [
        *history.tolist(),
        f,
    ]:  # the frequency used moves by at least the threshold (exactly it counts)
        if applied is None or abs(hz - applied) >= threshold - 1e-9:
            applied = hz
    assert applied is not None
    return float(np.interp(applied, xs, ys)) + num(p, "v2x_baseline_w")


def ieee1547(f: float, p: Params, history: np.ndarray) -> float:
    nominal, band, k = num(p, "f_nominal_hz"), num(p, "deadband_hz"), num(p, "droop_pct") / 100.0
    pu = max(0.0, (nominal - band - f) / (nominal * k))
    return num(p, "baseline_w") - pu * num(p, "p_rated_w")


def opt(params: Params, key: str, default: float) -> float:
    return num(params, key) if key in params else default


def shifted(dev: float, band: float, full: float) -> float:
    return math.copysign(min(1.0, max(0.0, abs(dev) - band) / (full - band)), dev)


def fcr_d_down(f: float, p: Params, history: np.ndarray) -> float:
    dev = f - num(p, "f_nominal_hz")
    share = max(0.0, shifted(dev, opt(p, "deadband_hz", 0.1), opt(p, "full_at_hz", 0.5)))
    return num(p, "baseline_w") + num(p, "p_contracted_w") * share


def dm(f: float, p: Params, history: np.ndarray) -> float:
    defaults = {"deadband_hz": 0.015, "knee_hz": 0.1, "knee_pct": 5.0, "full_at_hz": 0.2}
    return dc(f, {**defaults, **p}, history)


def dr(f: float, p: Params, history: np.ndarray) -> float:
    dev = f - num(p, "f_nominal_hz")
    share = shifted(dev, opt(p, "deadband_hz", 0.015), opt(p, "full_at_hz", 0.2))
    return num(p, "baseline_w") + num(p, "p_contracted_w") * share


def vf_fcas(f: float, p: Params, history: np.ndarray) -> float:
    """Switched: full from a trigger crossing, released after the hold once back inside by 10 mHz."""
    raise_hz, lower_hz = opt(p, "vf_raise_trigger_hz", 49.85), opt(p, "vf_lower_trigger_hz", 50.15)
    hold_rows = round(opt(p, "vf_min_hold_s", 1.0) / 0.01)
    state, since = 0, 0
    for row, hz in enumerate(history.tolist()):
        if (state < 0 and hz >= raise_hz + 0.01 and row - since >= hold_rows) or (
            state > 0 and hz <= lower_hz - 0.01 and row - since >= hold_rows
        ):
            state = 0
        if hz < raise_hz and state >= 0:
            state, since = -1, row
        elif hz > lower_hz and state <= 0:
            state, since = 1, row
    return num(p, "baseline_w") + num(p, "p_contracted_w") * state


REFERENCE: dict[str, Callable[[float, Params, np.ndarray], float]] = {
    "fcr_d_down": fcr_d_down,
    "dm": dm,
    "dr": dr,
    "vf_fcas": vf_fcas,
    "fcr": fcr,
    "dc": dc,
    "lfsm": lfsm,
    "ffr": ffr,
    "ocpp": ocpp,
    "ieee1547": ieee1547,
}


def setpoint_scenarios() -> list[str]:
    return [
        name
        for name in builtin_scenarios()
        if any(p.quantity == "setpoint_w" for p in load_scenario(name).criteria.points)
    ]


@pytest.mark.parametrize("name", setpoint_scenarios())
def test_expected_setpoints_follow_the_published_curves(name: str) -> None:
    scenario: Scenario = load_scenario(name)
    reference = REFERENCE[scenario.service.name]
    grid = GridModel(scenario)
    times = np.arange(scenario.n_steps + 1) * scenario.scan_period_s
    freq = grid.sample(times)[0]
    checked = 0
    for point in scenario.criteria.points:
        if point.quantity != "setpoint_w":
            continue
        row = round(point.at_s / scenario.scan_period_s)
        expected = reference(float(freq[row]), scenario.service.params, freq[: row + 1])
        assert abs(expected - point.value) <= point.tolerance, (point, expected)
        checked += 1
    assert checked >= 2


def test_dc_and_ocpp_files_carry_the_published_check_values() -> None:
    dc_params = load_scenario("dc_curve").service.params
    for dev, pct in ((0.05, 0.946), (0.1, 2.297), (0.2, 5.0), (0.3, 36.667), (0.35, 52.5), (0.4, 68.333)):
        share = (dc(50.0 - dev, dc_params, np.zeros(0)) - 30000.0) / -20000.0 * 100.0
        assert share == pytest.approx(pct, abs=0.001)
    ocpp_params = load_scenario("ocpp_curve").service.params
    for f, watts in ((49.9, -1500.0), (50.1, 5500.0), (49.5, -5000.0), (50.5, 9000.0)):
        assert ocpp(f, ocpp_params, np.zeros(0)) == pytest.approx(watts)
