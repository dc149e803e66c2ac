"""Where a virtual-time scan goes: programs/freq_response.st against the built-in simulation
(quiet_grid), split into the program's bodies, the process image (driver read + copy into
variables; outputs out of variables + driver write, which includes the simulation's step), the
ST alarms and the rest (scheduler, executor, journal, statistics), in µs per scan and % of the scan;
and everything outside the program at once (a run with only the program bodies wrapped).

    python bench/scan_split.py                      # 10 and 100 EVs, 20 simulated s each
    python bench/scan_split.py --evs 10 --seconds 60
    python bench/scan_split.py --seconds 5 --rounds 5      # on a busy machine: the least-preempted round
    python bench/scan_split.py --seconds 5 --rounds 3 --native   # the program's native build
    PYTHONPATH=SHIM python bench/scan_split.py ...         # another tree's runtime (SHIM/plcrun -> its runtime/)

"Outside the program" is also given in the scan thread's CPU time (the bodies wrapped by
thread_time_ns, the wrappers' own cost measured and taken off), which a preempted round on a busy
machine does not inflate. For another tree's runtime, SHIM must hold that tree's runtime/ as
``plcrun`` *with* its stdlib/ as ``plcrun/st_stdlib`` (e.g. ``git archive`` of runtime, stdlib,
programs laid out so, as bench/sim_report_identity.py does): a SHIM/plcrun that is only a link to
runtime/ lends it this checkout's stdlib through the editable install.

Each part is timed by wrapping it with perf_counter_ns (about 0.1 µs per wrapper, counted in the
part); the whole run is timed once without wrappers, so "speed" is the honest simulated seconds per
wall second (start-up excluded: 1 s warm-up first), and per second of the scan thread's CPU time.
The last column spreads that CPU time over the parts by their share (a loaded machine preempts the
scan at random, so shares stay about right where wall-clock µs do not). Goals of issue 17: 500x at
10 EVs, 150x at 100.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.clock import VirtualClock  # noqa: E402
from plcrun.executor.engine import Executor  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402


def build(evs: int, native: bool = False) -> Executor:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    if native:
        from plcrun.compiler.native import enable_native

        reason = enable_native(program)
        if reason:
            raise SystemExit(f"native build not used: {reason}")
    return SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor


def timed(fn: Callable[..., Any], acc: dict[str, int], key: str) -> Callable[..., Any]:
    clock = time.perf_counter_ns

    def wrapper(*args: Any) -> Any:
        t0 = clock()
        try:
            return fn(*args)
        finally:
            acc[key] += clock() - t0

    return wrapper


def _outside_cpu(
    executor: Executor, plain: dict[str, list[Callable[[], None]]], seconds: float, rounds: int
) -> float:
    """Everything outside the program in the scan thread's CPU time, ns per run (the round with the
    least): the run's CPU time less the bodies' CPU time (each body wrapped by thread_time_ns), less
    the wrappers' own cost measured around an empty function (what a preempted round cannot
    inflate, unlike the wall-clock figure)."""
    clock = time.thread_time_ns
    spent = [0]

    def cpu_timed(fn: Callable[[], None]) -> Callable[[], None]:
        def wrapper() -> None:
            t0 = clock()
            try:
                fn()
            finally:
                spent[0] += clock() - t0

        return wrapper

    calls = 20_000
    probe = cpu_timed(lambda: None)
    start = clock()
    for _ in range(calls):
        probe()
    per_call = (clock() - start) / calls  # the wrapper, its two clock reads and the empty call
    inside = spent[0] / calls  # of which the bodies' figure holds
    for task, bodies in plain.items():
        executor._runners[task] = [cpu_timed(body) for body in bodies]
    calls_per_run = int(seconds * 100) * sum(len(bodies) for bodies in plain.values())
    best = math.inf
    for _ in range(rounds):
        spent[0] = 0
        start = clock()
        executor.run(duration_ns=int(seconds * 1e9))
        total = clock() - start
        best = min(best, total - spent[0] - calls_per_run * (per_call - inside))
    return best


def split(evs: int, seconds: float, rounds: int, native: bool = False) -> None:
    executor = build(evs, native)
    executor.run(duration_ns=1_000_000_000)
    best_wall = best_cpu = math.inf  # unwrapped: the round with the least time counts
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.thread_time()
        executor.run(duration_ns=int(seconds * 1e9))
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.thread_time() - cpu)
    scans = int(seconds * 100)
    # everything outside the program: the whole scan with only the program bodies wrapped (one
    # wrapper per body, ~0.1 µs), less the bodies' time; the round with the least wall time counts
    bodies_ns = {"program": 0}
    plain = {task: list(bodies) for task, bodies in executor._runners.items()}
    for task, bodies in plain.items():
        executor._runners[task] = [timed(body, bodies_ns, "program") for body in bodies]
    best_outside, best_outside_wall = math.inf, math.inf
    for _ in range(rounds):
        bodies_ns["program"] = 0
        start = time.perf_counter()
        executor.run(duration_ns=int(seconds * 1e9))
        wall = time.perf_counter() - start
        if wall < best_outside_wall:
            best_outside_wall = wall
            best_outside = wall * 1e9 - bodies_ns["program"]
    best_outside_cpu = _outside_cpu(executor, plain, seconds, rounds)
    executor._runners.update(plain)
    keys = (
        "program",
        "driver read",
        "inputs copy",
        "SoC ages",
        "outputs + driver write",
        "driver write",
        "ST alarms",
    )
    acc = dict.fromkeys(keys, 0)
    image = executor.image
    for ages in getattr(image, "_ages", {}).values():  # the soc_age companions (process_image._Ages)
        ages.update = timed(ages.update, acc, "SoC ages")
    for binding in image.bindings:
        binding.driver.read_inputs = timed(binding.driver.read_inputs, acc, "driver read")  # type: ignore[method-assign]
        if hasattr(binding.driver, "read_input_groups"):  # a tree from before the groups: not there
            binding.driver.read_input_groups = timed(binding.driver.read_input_groups, acc, "driver read")  # type: ignore[method-assign]
        binding.driver.write_outputs = timed(binding.driver.write_outputs, acc, "driver write")  # type: ignore[method-assign]
    image.read_inputs = timed(image.read_inputs, acc, "inputs copy")  # type: ignore[method-assign]
    image.write_outputs = timed(image.write_outputs, acc, "outputs + driver write")  # type: ignore[method-assign]
    executor._check_st_alarms = timed(executor._check_st_alarms, acc, "ST alarms")  # type: ignore[method-assign]
    for task, bodies in executor._runners.items():
        executor._runners[task] = [timed(body, acc, "program") for body in bodies]
    best: dict[str, int] = {}
    best_wrapped = math.inf
    for _ in range(rounds):  # the wrapped round with the least wall time: the one preempted least
        for key in acc:
            acc[key] = 0
        start = time.perf_counter()
        executor.run(duration_ns=int(seconds * 1e9))
        wrapped = time.perf_counter() - start
        if wrapped < best_wrapped:
            best_wrapped, best = wrapped, dict(acc)
    executor.shutdown()
    parts = {
        "program (ST bodies)": best["program"],
        "driver read_inputs (simulation)": best["driver read"],
        "process image: copy into variables": best["inputs copy"] - best["driver read"] - best["SoC ages"],
        "process image: SoC ages": best["SoC ages"],
        "driver write_outputs (simulation step, history)": best["driver write"],
        "process image: outputs out of variables": best["outputs + driver write"] - best["driver write"],
        "ST alarms": best["ST alarms"],
    }
    parts["executor, scheduler, journal, stats"] = int(best_wrapped * 1e9) - sum(parts.values())
    cpu_us = best_cpu / scans * 1e6
    print(
        f"\n{evs} EVs: {seconds / best_wall:.0f}x real time ({best_wall / scans * 1e6:.0f} µs per scan unwrapped); "
        f"{seconds / best_cpu:.0f}x per s of the scan thread's CPU time ({cpu_us:.0f} µs per scan)"
    )
    goal = {10: 12, 100: 30}.get(evs)
    print(
        f"outside the program (only the bodies wrapped): {best_outside / scans / 1e3:.1f} µs per scan"
        + (f" (this session's aim: <= {goal} µs)" if goal else "")
        + f"; in the scan thread's CPU time {best_outside_cpu / scans / 1e3:.1f} µs"
    )
    print("| part | µs per scan (wall, wrapped) | % | ≈ µs of CPU (% x CPU per scan) |")
    print("|---|---|---|---|")
    total = sum(parts.values())
    for name, ns in parts.items():
        print(f"| {name} | {ns / scans / 1e3:.1f} | {100 * ns / total:.0f} | {cpu_us * ns / total:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", default="10,100")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of each measurement; the fastest counts"
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="the program's native build (plcrun sim --native; compiler/native.py)",
    )
    args = parser.parse_args()
    print(
        f"command: python bench/scan_split.py --evs {args.evs} --seconds {args.seconds:g} --rounds {args.rounds}"
        + (" --native" if args.native else "")
    )
    for evs in (int(n) for n in args.evs.split(",")):
        split(evs, args.seconds, args.rounds, args.native)
    with open("/proc/loadavg") as handle:
        print(f"\nload average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
