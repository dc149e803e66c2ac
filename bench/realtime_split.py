"""Where the main job's CPU goes in real time, period by period: `plcrun run`'s path
(programs/freq_response.st, 10 EVs, built-in simulation, dashboard on, SCHED_FIFO as root, the
default waiting mode) in a child process, this checkout against an earlier commit, alternating.

    python bench/realtime_split.py                          # 3 rounds of 15 s against 8d7aa93
    python bench/realtime_split.py --before 678a696 --seconds 30 --rounds 5

Each period of the scan thread is split by clock reads (perf_counter_ns; under SCHED_FIFO nothing
preempts the thread, so wall time is its CPU time) into: the kernel's sleep (the thread's CPU time
inside `time.sleep`, from CLOCK_THREAD_CPUTIME_ID: syscall, context switches, the GIL); wake-up to
scan start (the clock's spin, shown apart, and the scheduler's work before the scan); the scan
(`run_scan`: inputs, program, outputs); scan end to the next sleep (statistics, watchdog, idle
hooks, the scheduler's loop). The same child then runs the same scans in virtual time (back to back,
caches warm): the difference is what the real-time scan pays for starting cold after the sleep
(other processes had the core). Start-up and the first 5 s are excluded. The earlier commit runs
from a `git worktree` through a PYTHONPATH shim, with this checkout's programs, as in main_job.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARMUP_S = 5.0
PARTS = ("sleep", "spin", "wake", "scan", "after")
LABELS = {
    "sleep": "kernel sleep",
    "spin": "spin",
    "wake": "wake-up to scan (less spin)",
    "scan": "scan (real time)",
    "after": "scan end to sleep",
}


def child(seconds: float) -> dict[str, Any]:
    from plcrun.compiler.api import compile_file
    from plcrun.executor.clock import MonotonicClock, VirtualClock
    from plcrun.site import DashboardOptions, SiteRuntime

    program = compile_file(ROOT / "programs" / "freq_response.st")
    clock = MonotonicClock()
    site = SiteRuntime.build(program, evs=10, clock=clock, dashboard=DashboardOptions(port=0))
    task = site.executor.scheduler.tasks[0]
    now = time.perf_counter_ns
    cpu = time.thread_time_ns
    parts: dict[str, list[int]] = {part: [] for part in PARTS}
    marks = {"woke": 0, "end": 0, "on": False}
    kernel_sleep = clock._sleep
    scan = task.run_scan

    def sleep(seconds_: float) -> None:
        t0, c0 = now(), cpu()
        if marks["on"] and marks["end"]:
            parts["after"].append(t0 - marks["end"])
        kernel_sleep(seconds_)
        c1 = cpu()
        marks["woke"] = now()
        if marks["on"]:
            parts["sleep"].append(c1 - c0)

    def timed_scan(start: int, release: int) -> None:
        t0 = now()
        if marks["on"] and marks["woke"]:
            spin = max(0, min(release - marks["woke"], t0 - marks["woke"]))
            parts["spin"].append(spin)
            parts["wake"].append(t0 - marks["woke"] - spin)
        scan(start, release)
        marks["end"] = now()
        if marks["on"]:
            parts["scan"].append(marks["end"] - t0)

    clock._sleep = sleep  # type: ignore[method-assign]
    task.run_scan = timed_scan
    begin: dict[str, int] = {}

    def start_counting() -> None:
        time.sleep(WARMUP_S)
        marks["on"] = True
        begin["scans"] = task.scan_index
        begin["cpu"] = time.clock_gettime_ns(time.pthread_getcpuclockid(threading.main_thread().ident or 0))

    threading.Thread(target=start_counting, daemon=True).start()
    site.run_realtime(seconds + WARMUP_S, status_out=io.StringIO())
    periods = task.scan_index - begin["scans"]
    thread_cpu = (cpu() - begin["cpu"]) / periods
    # the same scans in virtual time, back to back
    virtual = SiteRuntime.build(program, evs=10, clock=VirtualClock())
    with virtual:
        executor = virtual.executor
        executor.run(duration_ns=2_000_000_000)
        c0 = cpu()
        executor.run(duration_ns=10_000_000_000)
        warm = (cpu() - c0) / 1000
    return {
        "periods": periods,
        "thread_cpu_ns": thread_cpu,
        "mean_ns": {part: statistics.fmean(values) for part, values in parts.items() if values},
        "p50_ns": {part: statistics.median(values) for part, values in parts.items() if values},
        "virtual_scan_ns": warm,
        "load": open("/proc/loadavg").read().split()[:3],
    }


def run_child(path: str | None, seconds: float) -> dict[str, Any]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--seconds", f"{seconds:g}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--before", default="8d7aa93", help="earlier commit, or 'none'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.seconds)))
        return
    print(
        f"command: python bench/realtime_split.py --seconds {args.seconds:g} --before {args.before} --rounds {args.rounds}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="plcrun-split-"))
    builds: list[tuple[str, str | None]] = []
    tree = tmp / "before"
    if args.before != "none":
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before],
            check=True,
            capture_output=True,
        )
        shim = tmp / "shim"
        shim.mkdir()
        (shim / "plcrun").symlink_to(tree / "runtime")
        builds.append((f"before ({args.before})", str(shim)))
    builds.append(("now", None))
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for _ in range(args.rounds):
            for label, path in builds:
                results.setdefault(label, []).append(run_child(path, args.seconds))
    finally:
        if args.before != "none":
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print()
    print(
        "µs per 10 ms period, mean (p50); % of a core = µs / 100. The scan thread's CPU is measured as a "
        "whole; the parts are wall time under SCHED_FIFO, the kernel sleep is CPU time."
    )
    print()
    head = " | ".join(LABELS[part] for part in PARTS)
    print(
        f"| build | load | scan thread CPU | {head} | the same scan in virtual time | cold-start cost of the scan |"
    )
    print("|---|---|---|" + "---|" * len(PARTS) + "---|---|")
    for label, runs in results.items():
        for r in runs:
            cells = " | ".join(f"{r['mean_ns'][p] / 1e3:.1f} ({r['p50_ns'][p] / 1e3:.1f})" for p in PARTS)
            cold = r["mean_ns"]["scan"] - r["virtual_scan_ns"]
            print(
                f"| {label} | {r['load'][0]} | {r['thread_cpu_ns'] / 1e3:.1f} | {cells} "
                f"| {r['virtual_scan_ns'] / 1e3:.1f} | {cold / 1e3:.1f} |"
            )
    print()
    print("Medians over the rounds:")
    print()
    print(f"| build | rounds | scan thread CPU | {head} | virtual-time scan |")
    print("|---|---|---|" + "---|" * len(PARTS) + "---|")
    for label, runs in results.items():
        med = statistics.median
        cells = " | ".join(f"{med(r['mean_ns'][p] for r in runs) / 1e3:.1f}" for p in PARTS)
        print(
            f"| {label} | {len(runs)} | {med(r['thread_cpu_ns'] for r in runs) / 1e3:.1f} | {cells} "
            f"| {med(r['virtual_scan_ns'] for r in runs) / 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()
