"""Would numpy pay for the per-car part of FLEET_ALLOC? Step 1 of the block ("what each car may do":
eligibility, floor margin, the four ranges and their sums) written with numpy over sessions held as
arrays, checked bit for bit against the compiled block, and timed beside the compiled block's whole
body on the same state, in one run.

    python bench/numpy_per_car.py                  # 10, 100, 1000 EVs
    python bench/numpy_per_car.py --evs 100 --calls 500

programs/freq_response.st runs quiet_grid in virtual time for 3 simulated s; then the session fields
step 1 reads are copied into float64/int64 arrays (not timed: this assumes sessions already stored
as arrays, a state-layout change plcrun does not have), the block's body is called once more and
its c_lo/c_hi/d_lo/d_hi and capacity sums must equal numpy's (ST's MIN/MAX as ``where`` on the
same comparison, so NaN and signed zeros match; sums by ``cumsum``, which adds in index order as
the loop does). Times: best of 7 x ``--calls``, numpy's step 1 alone against the compiled body with
all five steps; the ratio is what the numpy step costs as a share of the whole block today.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.clock import VirtualClock  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

FIELDS = (
    "connected", "bidirectional_allowed", "soc_pct", "soc_age", "min_soc_pct", "p_charge_max_w",
    "p_charge_min_w", "p_discharge_max_w", "p_discharge_min_w", "p_limit_charge_w",
    "p_limit_discharge_w", "e_max_wh", "p_present_w", "p_setpoint_w",
)  # fmt: skip


def st_min(a: Any, b: Any) -> Any:
    return np.where(a > b, b, a)  # MIN(a, b) as the compiled code: b if a > b else a


def st_max(a: Any, b: Any) -> Any:
    return np.where(a < b, b, a)


def step1(s: dict[str, Any], fb: Any) -> tuple[Any, ...]:
    """FLEET_ALLOC's first loop over arrays; ``fb`` gives the block's inputs."""
    conn = s["connected"]
    c_max = st_min(s["p_charge_max_w"], s["p_limit_charge_w"])
    may_c = conn & (s["soc_pct"] < fb.v_charge_stop_pct) & (c_max > 0.0) & (s["p_charge_min_w"] <= c_max)
    fresh = (fb.v_soc_max_age <= 0) | (s["soc_age"] <= fb.v_soc_max_age)
    d_max = st_min(s["p_discharge_max_w"], s["p_limit_discharge_w"])
    may_d = conn & s["bidirectional_allowed"] & fresh & (d_max > 0.0) & (s["p_discharge_min_w"] <= d_max)
    margin = np.zeros(len(conn))
    if fb.v_soc_resolution_pct > 0.0 or fb.v_soc_horizon > 0:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            own = (s["e_max_wh"] > 0.0) & (s["soc_pct"] < 99.0)
            capacity = np.where(own, s["e_max_wh"] * 100.0 / (100.0 - s["soc_pct"]), fb.v_capacity_default_wh)
            drain = st_max(-st_min(s["p_present_w"], s["p_setpoint_w"]), 0.0)
            spread = (drain * (s["soc_age"] / 1000000) + d_max * (fb.v_soc_horizon / 1000000)) * 0.001
            part = fb.v_soc_resolution_pct + spread / 3600.0 / capacity * 100.0
            margin = np.where(capacity > 0.0, part, 1.0e9)
    may_d &= (s["soc_pct"] - margin) > s["min_soc_pct"]
    c_lo = np.where(may_c, st_max(s["p_charge_min_w"], 0.0), 0.0)
    c_hi = np.where(may_c, c_max, 0.0)
    d_lo = np.where(may_d, st_max(s["p_discharge_min_w"], 0.0), 0.0)
    d_hi = np.where(may_d, d_max, 0.0)
    sums = tuple(float(np.cumsum(a)[-1]) if len(a) else 0.0 for a in (c_lo, c_hi, d_lo, d_hi))
    return c_lo, c_hi, d_lo, d_hi, sums


def best_us(call: Callable[[], Any], calls: int) -> float:
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def measure(evs: int, calls: int) -> tuple[float, float]:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
    executor.run(duration_ns=3_000_000_000)  # past the start-up safe state: FLEET_ALLOC runs
    main = executor.state.instances["main"]
    fb = main.v_dispatch.v_alloc
    fb.v_evs = main.v_evs  # the VAR_IN_OUT as SITE_DISPATCH binds it for the call
    n = max(0, min(fb.v_n_evs, 1000))
    if n != evs:
        raise SystemExit(f"{evs} EVs: FLEET_ALLOC last ran with n_evs = {fb.v_n_evs}")
    sessions = fb.v_evs[:n]
    arrays = {f: np.array([getattr(e, "v_" + f) for e in sessions]) for f in FIELDS}
    arrays["soc_age"] = arrays["soc_age"].astype(np.int64)
    c_lo, c_hi, d_lo, d_hi, sums = step1(arrays, fb)
    fb._body()  # the compiled block on the same sessions and inputs
    for name, ours in (("c_lo", c_lo), ("c_hi", c_hi), ("d_lo", d_lo), ("d_hi", d_hi)):
        theirs = np.array(getattr(fb, "v_" + name)[:n])
        if ours.tobytes() != theirs.tobytes():
            raise SystemExit(f"{evs} EVs: numpy's {name} differs from the compiled block's")
    capacities = (np.float32(sums[1]), np.float32(sums[3]))
    if capacities != (np.float32(fb.v_charge_capacity_w), np.float32(fb.v_discharge_capacity_w)):
        raise SystemExit(f"{evs} EVs: numpy's capacity sums differ from the compiled block's")
    numpy_us = best_us(lambda: step1(arrays, fb), calls)
    compiled_us = best_us(fb._body, calls)
    executor.shutdown()
    return numpy_us, compiled_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", default="10,100,1000")
    parser.add_argument("--calls", type=int, default=300, help="calls per timing (best of 7)")
    args = parser.parse_args()
    print(f"command: python bench/numpy_per_car.py --evs {args.evs} --calls {args.calls}")
    print(
        "| EVs | numpy step 1 alone µs | compiled FLEET_ALLOC, all steps µs | numpy step 1 / compiled block |"
    )
    print("|---|---|---|---|")
    for evs in (int(n) for n in args.evs.split(",")):
        numpy_us, compiled_us = measure(evs, args.calls)
        print(f"| {evs} | {numpy_us:.1f} | {compiled_us:.1f} | {numpy_us / compiled_us:.2f} |")


if __name__ == "__main__":
    main()
