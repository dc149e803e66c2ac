"""Scan cost of the field-behaviour features of programs/freq_response.st (issue 15): deadband
hysteresis, the SoC floor margin, the load-trend feed-forward and loss-of-grid detection, against
the same program with all of them switched off, measured in the same run (ratios, not absolute
times: the machine is shared).

    python bench/grid_field_cost.py [--evs 1000] [--scans 300]

Each configuration scans the program directly (compiled code, virtual time, no I/O) with ``--evs``
bidirectional sessions at 49.95 Hz plus noise; the best of three interleaved runs is kept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from plcrun.compiler.api import compile_file

ROOT = Path(__file__).resolve().parents[1]
OFF = {
    "hysteresis_hz": 0.0,
    "release_s": 0.0,
    "soc_resolution_pct": 0.0,
    "soc_horizon_s": 0.0,
    "load_trend_horizon_s": 0.0,
    "lom_enable": False,
}
CAR = {
    "connected": True,
    "bidirectional_allowed": True,
    "soc_pct": 60.0,
    "min_soc_pct": 30.0,
    "target_soc_pct": 80.0,
    "p_charge_max_w": 11000.0,
    "p_charge_min_w": 4140.0,
    "p_discharge_max_w": 11000.0,
    "p_discharge_min_w": 4140.0,
    "e_max_wh": 25600.0,
}


def scan_time(evs: int, scans: int, params: dict[str, object]) -> float:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    state = program.new_state()
    task = program.tasks[0].name
    for i in range(1, evs + 1):
        for name, value in CAR.items():
            state.write(f"main.evs[{i}].{name}", value)
    state.write("main.n_evs", evs)
    state.write("main.p_contracted_w", 2000.0 * evs)
    for name, value in params.items():
        state.write(f"main.{name}", value)
    noise = np.random.default_rng(1).normal(0.0, 0.002, scans + 150).tolist()
    now = 0
    for _ in range(150):  # valid after 1 s
        state.write("main.grid_hz", 50.0)
        state.run_task_scan(task, now)
        now += 10_000_000
    start = time.perf_counter()
    for k in range(scans):
        state.write("main.grid_hz", 49.95 + noise[k])
        state.write("main.site_w", 1000.0 * k)
        state.run_task_scan(task, now)
        now += 10_000_000
    return (time.perf_counter() - start) / scans


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=300)
    args = parser.parse_args()
    offs, ons = [], []
    for _ in range(3):  # interleaved, so a busy moment hits both
        offs.append(scan_time(args.evs, args.scans, OFF))
        ons.append(scan_time(args.evs, args.scans, {}))
    off, on = min(offs), min(ons)
    print(
        f"{args.evs} EVs: features off {off * 1e3:.3f} ms/scan, defaults {on * 1e3:.3f} ms/scan, ratio {on / off:.2f}"
    )


if __name__ == "__main__":
    main()
