"""FLEET_ALLOC against its earlier, straightforward form (``fleet_alloc_reference.st``: the block as
it was before its loops were merged for speed): both run side by side in one program on the same
sessions for hundreds of scans of a random walk (cars plugging in and out, SoC, limits, minimum
powers, NaN, requests of either sign, site bounds that exclude 0 W, the fleet shrinking), and every
output, every setpoint and every element of the block's own arrays (ranges, run, pinned, ran last
call) must be the same bit for bit, scan after scan (the sticky first-fit state carries over).
The walk is checked to reach every branch: nothing runs, every car runs, first-fit, cars pinned at
their minimum over several passes."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from st_rig import SCAN_NS

HERE = Path(__file__).parent
OUTPUTS = (
    "p_target_w",
    "p_total_w",
    "p_unmet_w",
    "p_deadzone_w",
    "charge_capacity_w",
    "discharge_capacity_w",
    "n_active",
    "limited_by_site",
    "limited_by_fleet",
    "site_bounds_unreachable",
    "fraction",
)
# the block's own arrays (instance variables, seen on the dashboard and carried to the next call)
ARRAYS = ("c_lo", "c_hi", "d_lo", "d_hi", "lo", "hi", "run", "pinned", "ran_charging", "ran_discharging")
MAX_CARS = 14
NAN = math.nan


def _car(rng: random.Random) -> dict[str, Any]:
    def pick(*values: float) -> float:  # mostly the first (a healthy car), else any
        return values[0] if rng.random() < 0.7 else rng.choice(values)

    return {
        "connected": rng.random() < 0.9,
        "bidirectional_allowed": rng.random() < 0.6,
        # near the floor the margin (soc_age, drain, horizon, capacity) decides
        "soc_pct": pick(30.0 + rng.uniform(0.0, 0.3), rng.uniform(0.0, 100.0), 99.5, 100.0, NAN),
        "soc_age": rng.choice([0, 10, 500, 4000, 20000, 60000]) * 1_000_000,
        "min_soc_pct": pick(30.0, 20.0, 35.0),
        "p_charge_max_w": pick(3680.0, 7400.0, 11000.0, 22000.0, 0.0, NAN),
        "p_charge_min_w": pick(4140.0, 0.0, 1380.0, 6000.0, -5.0, 12000.0, NAN),
        "p_discharge_max_w": pick(3680.0, 7400.0, 11000.0, 0.0, NAN),
        "p_discharge_min_w": pick(4140.0, 0.0, 1380.0, 6000.0, -5.0, NAN),
        "p_limit_charge_w": pick(1.0e9, 1.0e9, 5000.0, 0.0),
        "p_limit_discharge_w": pick(1.0e9, 1.0e9, 5000.0),
        "e_max_wh": pick(0.0, 30000.0, 60000.0, -1.0),
        "p_present_w": rng.uniform(-11000.0, 11000.0),
    }


def _same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)  # NaN equals NaN, -0.0 differs from 0.0


@pytest.mark.parametrize(
    ("seed", "settings"),
    [
        (1, {"soc_resolution_pct": 0.01, "soc_horizon": 1_000_000_000}),
        (2, {"soc_max_age": 2_000_000_000, "capacity_default_wh": 0.0, "soc_resolution_pct": 0.5}),
        (3, {"charge_stop_pct": 90.0}),
    ],
)
def test_fleet_alloc_matches_its_reference_bit_for_bit(seed: int, settings: dict[str, Any]) -> None:
    program = compile_file(HERE / "fleet_alloc_reference.st")
    state = program.new_state()
    for name, value in settings.items():
        state.accessor(f"twin.{name}").set(value)
    rng = random.Random(seed)
    cars = [_car(rng) for _ in range(MAX_CARS)]
    request, span = 0.0, 8000.0
    seen = {"none": 0, "all": 0, "first_fit": 0, "pinned": 0, "bound_excludes_0": 0}
    for scan in range(400):
        for i, car in enumerate(cars, start=1):
            if scan == 0 or rng.random() < 0.15:
                car.update(rng.choice([_car(rng), {"p_present_w": rng.uniform(-11000.0, 11000.0)}]))
                for name, value in car.items():
                    state.accessor(f"twin.evs[{i}].{name}").set(value)
        if scan % 50 == 0:  # a stretch of small requests (first-fit) or large ones (every car runs)
            span = rng.choice([8000.0, 15000.0, 60000.0])
        move = rng.random()
        if move < 0.04:
            request = rng.choice([0.0, NAN, 2.0e5, -2.0e5])
        elif move < 0.3:
            request = rng.uniform(-span, span)
        else:
            request = max(-span, min(span, request + rng.uniform(-2000.0, 2000.0)))
        upper, lower = 1.0e9, -1.0e9
        if rng.random() < 0.15:
            upper = rng.uniform(-20000.0, 40000.0)
            lower = upper - rng.choice([0.0, 3000.0, 50000.0])
        state.accessor("twin.p_request_w").set(request)
        state.accessor("twin.p_total_max_w").set(upper)
        state.accessor("twin.p_total_min_w").set(lower)
        if scan % 40 == 0:
            state.accessor("twin.n_evs").set(rng.choice([0, 3, 9, 12, MAX_CARS, MAX_CARS, MAX_CARS]))
        state.run_task_scan(program.tasks[0].name, scan * SCAN_NS)
        for name in OUTPUTS:
            now, ref = state.read(f"twin.now_fb.{name}"), state.read(f"twin.ref_fb.{name}")
            assert _same(now, ref), (scan, name, now, ref)
        for i in range(1, MAX_CARS + 1):
            now, ref = (
                state.read(f"twin.evs[{i}].p_setpoint_w"),
                state.read(f"twin.evs_ref[{i}].p_setpoint_w"),
            )
            assert _same(now, ref), (scan, i, now, ref)
            for name in ARRAYS:
                now, ref = state.read(f"twin.now_fb.{name}[{i}]"), state.read(f"twin.ref_fb.{name}[{i}]")
                assert _same(now, ref), (scan, name, i, now, ref)
        assert state.read("twin.now_fb.last_n") == state.read("twin.ref_fb.n"), scan
        magnitude = abs(state.read("twin.ref_fb.magnitude"))
        sum_lo = state.read("twin.ref_fb.sum_lo")
        if magnitude <= 0.0:
            seen["none"] += 1
        elif sum_lo <= magnitude:
            seen["all"] += 1
        else:
            seen["first_fit"] += 1
        seen["pinned"] += state.read("twin.ref_fb.pass") > 1
        seen["bound_excludes_0"] += lower > 0.0 or upper < 0.0
    assert all(count > 0 for count in seen.values()), seen
