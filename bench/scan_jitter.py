"""Scan jitter at 10 ms: plcrun's Scheduler against a plain sleep loop, same work, same run.

Both variants run the same stand-in scan body (100 simulated EVs: frequency droop, SoC and
per-phase limits, ramp, site-limit allocation; 50-100 µs of pure Python) in interleaved blocks
(``--block`` seconds each), so they see the same machine noise:

* ``plain``: ``time.sleep`` until the absolute deadline, then the scan. (The naive
  ``work(); time.sleep(period)`` would in addition drift by the scan time every period.)
* ``plcrun``: ``Scheduler`` + ``MonotonicClock`` (sleep to 1 ms before the deadline, then spin;
  deadlines 0.5 ms off the kernel tick), ``apply_rt_setup`` (SCHED_FIFO, mlockall, switch interval,
  timer slack, where the OS allows; ``--dma-latency`` adds /dev/cpu_dma_latency) and ``GcController``.

Modes: ``idle`` (nothing else running) and ``busy`` (a CPU hog process spinning on the other core).
Wake latency = scan start - deadline; overrun = scan ends after the next deadline; both variants are
measured with the same ``TaskStats``. Before the runs it measures what recording one scan costs.

    python bench/scan_jitter.py                   # 60 s per variant and mode (4 minutes)
    python bench/scan_jitter.py --duration 10     # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from plcrun.executor.clock import MonotonicClock
from plcrun.executor.gc_control import GcController
from plcrun.executor.retain_store import RetainStore
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup
from plcrun.executor.scheduler import Scheduler
from plcrun.executor.stats import TaskStats, format_ns

MS = 1_000_000
GOAL_RATIO = 3.0
GOAL_P99_NS = 1 * MS
GOAL_OVERRUNS_PER_10K = 1.0


class Ev:
    __slots__ = (
        "capacity_kwh",
        "energy_kwh",
        "limit_count",
        "limit_flag",
        "p_max_kw",
        "p_min_kw",
        "plugged",
        "setpoint_kw",
        "soc",
    )

    def __init__(self, index: int) -> None:
        self.soc = 20.0 + (index * 37) % 70
        self.capacity_kwh = 40.0 + index % 3 * 20
        self.p_max_kw = 11.0
        self.p_min_kw = -11.0
        self.setpoint_kw = 0.0
        self.plugged = index % 10 != 0
        self.energy_kwh = 0.0
        self.limit_flag = False
        self.limit_count = 0


def ev_scan(evs: list[Ev], t_s: float, dt_s: float = 0.01) -> float:
    """The stand-in scan body: droop + limits + allocation over the EVs (numpy-free)."""
    grid_hz = 50.0 + 0.08 * math.sin(t_s * 0.7) + 0.02 * math.sin(t_s * 5.3)
    deviation = grid_hz - 50.0
    droop = 0.0 if abs(deviation) < 0.02 else -(deviation - math.copysign(0.02, deviation)) / 0.18
    site_limit_kw = 300.0
    total = 0.0
    for ev in evs:
        if not ev.plugged:
            ev.setpoint_kw = 0.0
            continue
        target = 6.0 + droop * ev.p_max_kw
        if ev.soc >= 95.0:
            target = min(target, 0.0)
        if ev.soc <= 20.0:
            target = max(target, 0.0)
        high = ev.p_max_kw if ev.soc < 80.0 else ev.p_max_kw * (100.0 - ev.soc) / 20.0
        low = ev.p_min_kw if ev.soc > 30.0 else ev.p_min_kw * (ev.soc - 20.0) / 10.0
        target = high if target > high else low if target < low else target
        delta = max(-2.0, min(2.0, target - ev.setpoint_kw))  # ramp limit
        ev.setpoint_kw += delta
        ev.soc += ev.setpoint_kw * dt_s / 3600.0 / ev.capacity_kwh * 100.0
        total += ev.setpoint_kw
    headroom = sum(ev.p_max_kw - ev.setpoint_kw for ev in evs if ev.plugged)
    share = max(0.0, (site_limit_kw - total) / headroom) if headroom > 0.0 else 0.0
    for ev in evs:
        if ev.plugged and droop == 0.0:
            ev.setpoint_kw += min(1.0, (ev.p_max_kw - ev.setpoint_kw) * share)
        watts_per_phase = ev.setpoint_kw * 1000.0 / 3.0
        for phase_v in (230.0, 229.0, 231.0):  # 32 A per phase
            amps = watts_per_phase / phase_v
            if amps > 32.0:
                watts_per_phase = 32.0 * phase_v
            elif amps < -32.0:
                watts_per_phase = -32.0 * phase_v
        ev.setpoint_kw = watts_per_phase * 3.0 / 1000.0
        ev.energy_kwh += ev.setpoint_kw * dt_s / 3600.0
        if ev.setpoint_kw > 10.5 and not ev.limit_flag:
            ev.limit_flag = True
            ev.limit_count += 1
        elif ev.setpoint_kw < 10.0:
            ev.limit_flag = False
    return total


def plain_block(stats: TaskStats, work: Callable[[int, int], None], period_ns: int, until_ns: int) -> None:
    """The baseline: time.sleep to the absolute deadline; same skip/overrun rules as the scheduler."""
    now = time.perf_counter_ns
    release = -(-now() // MS) * MS
    stats.break_period_chain()
    while release < until_ns:
        remaining = release - now()
        if remaining > 0:
            time.sleep(remaining / 1e9)
        start = now()
        skipped = (start - release) // period_ns
        release += skipped * period_ns
        work(start, release)
        end = now()
        stats.record_scan(start, end, release, skipped, end > release + period_ns)
        release += period_ns


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, object]:
    period_ns = int(args.period_ms * MS)
    evs = [Ev(i) for i in range(args.evs)]

    def work(start_ns: int, _deadline_ns: int) -> None:
        ev_scan(evs, start_ns / 1e9)

    plain = TaskStats("plain", period_ns, 0)
    clock = MonotonicClock(spin_ns=int(args.spin_ms * MS))
    scheduler = Scheduler(clock)
    scheduler.add_task("plcrun", period_ns, work)
    gc_control = GcController(scheduler.stats)
    scheduler.add_idle_hook(gc_control.idle)
    ours = scheduler.stats.task("plcrun")
    rt_config = None if args.no_rt else RtConfig(hold_cpu_dma_latency=args.dma_latency)
    hog = None
    if mode == "busy":
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    cpu = {"plain": 0, "plcrun": 0}
    rt_report = "real-time setup off (--no-rt)"
    try:
        time.sleep(0.5)
        block_ns = int(args.block * 1e9)
        remaining_ns = int(args.duration * 1e9)
        while remaining_ns > 0:
            length = min(block_ns, remaining_ns)
            remaining_ns -= length
            cpu_before = time.thread_time_ns()
            plain_block(plain, work, period_ns, time.perf_counter_ns() + length)
            cpu["plain"] += time.thread_time_ns() - cpu_before
            session = apply_rt_setup(rt_config) if rt_config is not None else None
            if session is not None:
                rt_report = session.summary()
            gc_control.start(clock.now_ns())
            try:
                scheduler.restart_schedule()
                cpu_before = time.thread_time_ns()
                scheduler.run(until_ns=clock.now_ns() + length)
                cpu["plcrun"] += time.thread_time_ns() - cpu_before
            finally:
                gc_control.stop()
                if session is not None:
                    session.close()
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    result: dict[str, object] = {"mode": mode, "rt_setup": rt_report}
    for name, stats in (("plain", plain), ("plcrun", ours)):
        report = stats.to_json()
        report["cpu_percent"] = 100.0 * cpu[name] / (args.duration * 1e9)
        result[name] = report
    result["gc"] = scheduler.stats.gc.to_json()
    return result


def print_mode(result: dict[str, object]) -> dict[str, bool]:
    rows = []
    latency: dict[str, dict[str, int]] = {}
    for name in ("plain", "plcrun"):
        report = result[name]
        assert isinstance(report, dict)
        wake = report["wake_latency_ns"]
        execution = report["execution_ns"]
        latency[name] = wake
        rows.append(
            f"  {name:<7} {report['scans']:>6} {format_ns(wake['p50']):>9} {format_ns(wake['p99']):>9} "
            f"{format_ns(wake['p99_9']):>9} {format_ns(wake['max']):>9} {report['overruns_per_10k']:>9.2f} "
            f"{report['skipped_periods']:>7} {format_ns(execution['p50']):>9} {report['cpu_percent']:>6.1f}"
        )
    print(f"\nmode {result['mode']}")
    print("  variant  scans   wake p50       p99     p99.9       max  ovr/10k skipped  exec p50   cpu%")
    print("\n".join(rows))
    ratio = latency["plain"]["p99"] / max(latency["plcrun"]["p99"], 1)
    ours = result["plcrun"]
    assert isinstance(ours, dict)
    goals = {
        f"p99 ratio plain/plcrun {ratio:.1f}x >= {GOAL_RATIO:g}x": ratio >= GOAL_RATIO,
        f"plcrun p99 {format_ns(latency['plcrun']['p99'])} < 1 ms": latency["plcrun"]["p99"] < GOAL_P99_NS,
        f"plcrun overruns {ours['overruns_per_10k']:.2f} < 1 per 10,000 scans": ours["overruns_per_10k"]
        < GOAL_OVERRUNS_PER_10K,
    }
    for text, met in goals.items():
        print(f"  {'met   ' if met else 'MISSED'} {text}")
    gc_stats = result["gc"]
    assert isinstance(gc_stats, dict)
    print(
        f"  GC in plcrun blocks: {gc_stats['count']} collections, max {format_ns(gc_stats['max_ns'])}, "
        f"{gc_stats['in_scan']} inside a scan"
    )
    return goals


def measure_recording_cost() -> None:
    """What the scan thread pays per scan for statistics and a retain hand-over."""
    stats = TaskStats("x", 10 * MS, 0)
    count = 200_000
    begin = time.perf_counter_ns()
    for i in range(count):
        stats.record_scan(i * 10 * MS, i * 10 * MS + 60_000, i * 10 * MS - 20_000, 0, False)
    record_ns = (time.perf_counter_ns() - begin) / count
    begin = time.perf_counter_ns()
    stats.to_json()
    report_ms = (time.perf_counter_ns() - begin) / 1e6
    with tempfile.TemporaryDirectory() as directory:
        store = RetainStore(Path(directory) / "bench.retain", "h", [("a", "DINT")], min_interval_s=3600)
        snapshot = {"a": 1}
        begin = time.perf_counter_ns()
        for _ in range(count):
            store.submit(snapshot)
        submit_ns = (time.perf_counter_ns() - begin) / count
    print(f"record_scan {record_ns / 1e3:.2f} µs per scan; RetainStore.submit {submit_ns / 1e3:.2f} µs;")
    print(f"to_json with full 100k windows {report_ms:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per variant and mode (60)")
    parser.add_argument("--block", type=float, default=5.0, help="seconds per interleaved block (5)")
    parser.add_argument("--period-ms", type=float, default=10.0, help="scan period (10 ms)")
    parser.add_argument("--spin-ms", type=float, default=1.0, help="spin before each deadline (1 ms)")
    parser.add_argument("--evs", type=int, default=100, help="simulated EVs in the scan body (100)")
    parser.add_argument("--modes", default="idle,busy", help="comma list of idle, busy")
    parser.add_argument("--no-rt", action="store_true", help="plcrun variant without apply_rt_setup")
    parser.add_argument("--dma-latency", action="store_true", help="also hold /dev/cpu_dma_latency at 0")
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ("idle", "busy")]
    if unknown or args.duration <= 0 or args.block <= 0:
        parser.error(f"--modes must list idle/busy (got {unknown}); --duration/--block must be > 0")
    evs = [Ev(i) for i in range(args.evs)]
    body = []
    for k in range(500):
        begin = time.perf_counter_ns()
        ev_scan(evs, k * 0.01)
        body.append(time.perf_counter_ns() - begin)
    body.sort()
    print(f"scan body: {args.evs} EVs, median {body[len(body) // 2] / 1e3:.0f} µs")
    measure_recording_cost()
    print(f"period {args.period_ms:g} ms, {args.duration:g} s per variant and mode, {args.block:g} s blocks")
    results = []
    all_met = True
    for mode in modes:
        result = run_mode(mode, args)
        results.append(result)
        all_met &= all(print_mode(result).values())
    print("\nreal-time setup of the plcrun variant:")
    print("  " + str(results[0]["rt_setup"]).replace("\n", "\n  "))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
