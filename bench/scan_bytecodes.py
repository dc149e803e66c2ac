"""How much Python a virtual-time scan executes: bytecodes per scan by source file (the generated
program is named after its ST file), plus the interpreter's cost per bytecode on this machine, so the
virtual-time goals of issue 17 can be read as a bytecode budget.

    python bench/scan_bytecodes.py                 # 10 and 100 EVs, this checkout
    python bench/scan_bytecodes.py --evs 10 --scans 500
    python bench/scan_bytecodes.py --native        # the program native: only what is outside it counts

programs/freq_response.st runs in the executor against the built-in simulation (quiet_grid), as in
bench/sim_executor_speed.py. After 1 simulated s of warm-up, ``--scans`` scans run under
``sys.settrace`` with opcode events on, counting every bytecode the interpreter executes (C code,
such as numpy or ``sorted``, counts as the one call instruction that enters it). The same number of
scans then runs untraced for the CPU time per scan; CPU time per scan / bytecodes per scan is the
average cost of a bytecode in this scan mix (C work included), and the goal's time per scan divided
by it is roughly how many bytecodes a scan may execute to reach the goal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.clock import VirtualClock  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

GOALS = {10: 500, 100: 150}  # x real time, issue 17
SCAN_NS = 10_000_000


def source_of(filename: str) -> str:
    if filename.endswith(".st"):
        return f"program: {Path(filename).name}"
    if "/plcrun/" in filename or "/runtime/" in filename:
        return "runtime: " + filename.replace("\\", "/").split("/runtime/")[-1].split("/plcrun/")[-1]
    return "other: " + Path(filename).name


def count(evs: int, scans: int, native: bool = False) -> None:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    if native:  # the program's bodies run as C: every bytecode counted is outside the program
        from plcrun.compiler.native import enable_native

        reason = enable_native(program)
        if reason:
            raise SystemExit(f"native build not used: {reason}")
    executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
    executor.run(duration_ns=1_000_000_000)
    opcodes: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        key = source_of(frame.f_code.co_filename)

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                opcodes[key] += 1
            return local

        return local

    sys.settrace(trace)
    try:
        executor.run(duration_ns=scans * SCAN_NS)
    finally:
        sys.settrace(None)
    best_cpu = min(_cpu_of_run(executor, scans) for _ in range(3))
    executor.shutdown()
    total = sum(opcodes.values()) / scans
    program_total = sum(n for key, n in opcodes.items() if key.startswith("program")) / scans
    ns_per_op = best_cpu / scans * 1e9 / total
    print(f"\n{evs} EVs: {total:,.0f} bytecodes per scan ({program_total:,.0f} in the program)")
    print(
        f"CPU per scan untraced {best_cpu / scans * 1e6:.1f} µs (best of 3 x {scans} scans): "
        f"{ns_per_op:.2f} ns per bytecode in this mix"
    )
    if evs in GOALS:
        budget_us = SCAN_NS / GOALS[evs] / 1e3
        print(
            f"goal {GOALS[evs]}x = {budget_us:.0f} µs per scan = about {budget_us * 1e3 / ns_per_op:,.0f} "
            f"bytecodes at that cost"
        )
    print("| source | bytecodes per scan | % |")
    print("|---|---|---|")
    for key, n in opcodes.most_common(16):
        print(f"| {key} | {n / scans:,.0f} | {100 * n / scans / total:.0f} |")


def _cpu_of_run(executor: Any, scans: int) -> float:
    start = time.thread_time()
    executor.run(duration_ns=scans * SCAN_NS)
    return time.thread_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", default="10,100")
    parser.add_argument("--scans", type=int, default=300, help="scans counted (and timed)")
    parser.add_argument("--native", action="store_true", help="the program's native build (not counted)")
    args = parser.parse_args()
    native = " --native" if args.native else ""
    print(f"command: python bench/scan_bytecodes.py --evs {args.evs} --scans {args.scans}{native}")
    for evs in (int(n) for n in args.evs.split(",")):
        count(evs, args.scans, args.native)


if __name__ == "__main__":
    main()
