"""Where a virtual-time scan goes: programs/freq_response.st against the built-in simulation
(quiet_grid), split into the program's bodies, the process image (driver read + copy into
variables; outputs out of variables + driver write, which includes the simulation's step), the
ST alarms and the rest (scheduler, executor, journal, statistics), in µs per scan and % of the scan.

    python bench/scan_split.py                      # 10 and 100 EVs, 20 simulated s each
    python bench/scan_split.py --evs 10 --seconds 60

Each part is timed by wrapping it with perf_counter_ns (about 0.1 µs per wrapper, counted in the
part); the whole run is timed once without wrappers, so "speed" is the honest simulated seconds per
wall second (start-up excluded: 1 s warm-up first). Goals of issue 17: 500x at 10 EVs, 150x at 100.
"""

from __future__ import annotations

import argparse
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


def build(evs: int) -> Executor:
    program = compile_file(ROOT / "programs" / "freq_response.st")
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


def split(evs: int, seconds: float) -> None:
    executor = build(evs)
    executor.run(duration_ns=1_000_000_000)
    start, cpu = time.perf_counter(), time.thread_time()
    executor.run(duration_ns=int(seconds * 1e9))
    wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
    scans = int(seconds * 100)
    acc = {
        "program": 0,
        "driver read": 0,
        "inputs copy": 0,
        "outputs + driver write": 0,
        "driver write": 0,
        "ST alarms": 0,
    }
    image = executor.image
    for binding in image.bindings:
        binding.driver.read_inputs = timed(binding.driver.read_inputs, acc, "driver read")  # type: ignore[method-assign]
        binding.driver.write_outputs = timed(binding.driver.write_outputs, acc, "driver write")  # type: ignore[method-assign]
    image.read_inputs = timed(image.read_inputs, acc, "inputs copy")  # type: ignore[method-assign]
    image.write_outputs = timed(image.write_outputs, acc, "outputs + driver write")  # type: ignore[method-assign]
    executor._check_st_alarms = timed(executor._check_st_alarms, acc, "ST alarms")  # type: ignore[method-assign]
    for task, bodies in executor._runners.items():
        executor._runners[task] = [timed(body, acc, "program") for body in bodies]
    start = time.perf_counter()
    executor.run(duration_ns=int(seconds * 1e9))
    wrapped = time.perf_counter() - start
    executor.shutdown()
    parts = {
        "program (ST bodies)": acc["program"],
        "driver read_inputs (simulation)": acc["driver read"],
        "process image: copy into variables": acc["inputs copy"] - acc["driver read"],
        "driver write_outputs (simulation step, history)": acc["driver write"],
        "process image: outputs out of variables": acc["outputs + driver write"] - acc["driver write"],
        "ST alarms": acc["ST alarms"],
    }
    parts["executor, scheduler, journal, stats"] = int(wrapped * 1e9) - sum(parts.values())
    print(
        f"\n{evs} EVs: {seconds / wall:.0f}x real time ({wall / scans * 1e6:.0f} µs per scan unwrapped; "
        f"{seconds / cpu:.0f}x per s of the thread's CPU time, {cpu / scans * 1e6:.0f} µs)"
    )
    print("| part | µs per scan | % |")
    print("|---|---|---|")
    total = sum(parts.values())
    for name, ns in parts.items():
        print(f"| {name} | {ns / scans / 1e3:.1f} | {100 * ns / total:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", default="10,100")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"command: python bench/scan_split.py --evs {args.evs} --seconds {args.seconds:g}")
    for evs in (int(n) for n in args.evs.split(",")):
        split(evs, args.seconds)
    with open("/proc/loadavg") as handle:
        print(f"\nload average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
