"""Virtual-time speed of a whole simulation run: programs/freq_response.st in the executor against the
built-in grid and EV-fleet simulation, for 10, 100 and 1000 EVs, in simulated seconds per
wall-clock second; and memory per EV session (tracemalloc, program state + simulation).

    python bench/sim_executor_speed.py --seconds 20

Goals from the issue: at least 1000x real time at 10 EVs and 100x at 100 EVs.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.clock import VirtualClock  # noqa: E402
from plcrun.executor.engine import Executor  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402


def build(evs: int) -> Executor:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    return SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor


def speed(evs: int, seconds: float) -> float:
    executor = build(evs)
    executor.run(duration_ns=1_000_000_000)  # warm up: start-up samples, first allocation
    start = time.perf_counter()
    executor.run(duration_ns=int(seconds * 1e9))
    return seconds / (time.perf_counter() - start)


def memory_per_session(evs: int) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    executor = build(evs)
    executor.run(duration_ns=100_000_000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(base, "filename"))
    del executor
    return grown


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per size")
    args = parser.parse_args()
    print(f"command: python bench/sim_executor_speed.py --seconds {args.seconds:g}")
    for evs in (10, 100, 1000):
        ratio = speed(evs, args.seconds)
        print(f"{evs:5d} EVs: {ratio:8.1f} simulated s per wall-clock s")
    small, large = memory_per_session(10), memory_per_session(1000)
    print(
        f"memory per EV session: {(large - small) / 990 / 1024:.1f} KiB (program state + simulation, 1000 vs 10 EVs)"
    )


if __name__ == "__main__":
    main()
