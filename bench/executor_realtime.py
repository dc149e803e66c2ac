"""Real-time scan statistics of the executor running programs/freq_response.st against 100 simulated
EVs at 10 ms, against a plain ``time.sleep`` loop doing the same scan work, idle and with the other
core busy (a CPU hog process). Both loops run in the same process run, in alternating blocks, so a
noisy shared machine hits both alike.

    python bench/executor_realtime.py --duration 60       # seconds per loop and load (>= 60 for the issue)

Prints p50/p99/p99.9/max wake latency (start - release) and overruns per 10,000 scans, and the
ratio of the p99s.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.engine import Executor  # noqa: E402
from plcrun.executor.gc_control import GcController, GcPolicy  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

PERIOD_NS = 10_000_000


def hog(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def build_executor(evs: int) -> Executor:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    return SiteRuntime.build(program, scenario="quiet_grid", evs=evs).executor


def plcrun_block(executor: Executor, seconds: float) -> tuple[list[int], int, int]:
    stats = executor.scheduler.stats.task("fast")
    before_overruns, before_scans = stats.overruns, stats.scans
    executor.run(duration_ns=int(seconds * 1e9))
    samples = stats.wake_latency.window()
    new = stats.scans - before_scans
    return [int(v) for v in samples[-new:]], stats.overruns - before_overruns, new


def plain_block(executor: Executor, seconds: float) -> tuple[list[int], int, int]:
    """The same scan function, woken by time.sleep to an absolute deadline; no RT setup, default GC."""
    scan = executor._make_scan("fast")
    latencies: list[int] = []
    overruns = 0
    now = time.perf_counter_ns()
    release = now + PERIOD_NS
    end = now + int(seconds * 1e9)
    while release < end:
        remaining = release - time.perf_counter_ns()
        if remaining > 0:
            time.sleep(remaining / 1e9)
        start = time.perf_counter_ns()
        behind = (start - release) // PERIOD_NS
        release += behind * PERIOD_NS  # skip missed periods like the executor does
        latencies.append(start - release)
        scan(start, release)
        if time.perf_counter_ns() > release + PERIOD_NS:
            overruns += 1
        release += PERIOD_NS
    return latencies, overruns, len(latencies)


def summary(name: str, latencies: list[int], overruns: int, scans: int) -> dict[str, float]:
    values = np.array(latencies, dtype=np.int64)
    row = {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "p99.9": float(np.percentile(values, 99.9)),
        "max": float(values.max()),
        "per10k": overruns * 10_000 / max(scans, 1),
    }
    print(
        f"  {name:7s} scans {scans:6d}  wake p50 {row['p50'] / 1e3:8.1f} µs  p99 {row['p99'] / 1e3:8.1f} µs  "
        f"p99.9 {row['p99.9'] / 1e3:8.1f} µs  max {row['max'] / 1e3:8.1f} µs  overruns/10k {row['per10k']:.2f}"
    )
    return row


def measure(executor: Executor, duration: float, block: float) -> dict[str, dict[str, float]]:
    results: dict[str, tuple[list[int], int, int]] = {"plcrun": ([], 0, 0), "plain": ([], 0, 0)}
    blocks = max(1, round(duration / block))
    for _ in range(blocks):
        for name in ("plcrun", "plain"):
            if name == "plcrun":
                rt = apply_rt_setup(RtConfig())
                gc_controller = GcController(executor.scheduler.stats, GcPolicy())
                gc_controller.start(executor.clock.now_ns())
                try:
                    got = plcrun_block(executor, block)
                finally:
                    gc_controller.stop()
                    rt.close()
                    executor.scheduler.restart_schedule()
            else:
                gc.enable()
                got = plain_block(executor, block)
            lat, over, scans = results[name]
            results[name] = (lat + got[0], over + got[1], scans + got[2])
    return {name: summary(name, *values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per loop and load")
    parser.add_argument("--block", type=float, default=5.0, help="seconds per alternating block")
    parser.add_argument("--evs", type=int, default=100)
    args = parser.parse_args()
    print(
        f"command: python bench/executor_realtime.py --duration {args.duration:g} --block {args.block:g} --evs {args.evs}"
    )
    executor = build_executor(args.evs)
    executor.start()
    executor.run(max_scans=50)  # warm up
    exec_times = executor.scheduler.stats.task("fast").execution.window()
    print(f"scan execution (warm-up, {args.evs} EVs): median {statistics.median(exec_times) / 1e3:.0f} µs")
    table = {}
    for load in ("idle", "cpu hog"):
        print(f"{load}:")
        stop = multiprocessing.Event()
        hog_process = multiprocessing.Process(target=hog, args=(stop,)) if load != "idle" else None
        if hog_process is not None:
            hog_process.start()
        try:
            table[load] = measure(executor, args.duration, args.block)
        finally:
            stop.set()
            if hog_process is not None:
                hog_process.join(5)
        ratio = table[load]["plain"]["p99"] / max(table[load]["plcrun"]["p99"], 1.0)
        print(
            f"  p99 ratio plain/plcrun: {ratio:.1f}x (goal >= 3); plcrun p99 < 1 ms: {table[load]['plcrun']['p99'] < 1e6}"
        )
    executor.shutdown()


if __name__ == "__main__":
    main()
