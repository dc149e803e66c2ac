"""CPU against wake-up latency of each way the scan thread can wait for its next 10 ms deadline.

    python bench/wait_modes.py                     # 16 blocks x 3 rounds x 10 s, about 8 minutes
    python bench/wait_modes.py --seconds 5 --rounds 2

Modes: sleep only (no spin), a fixed 1 ms spin (what MonotonicClock did before issue 17), the precise
adaptive spin (tolerance 0: the measured p99 of the kernel's wake-up error plus 30 µs, at least
20 µs; ``MonotonicClock()``, ``plcrun run --wake-tolerance-us 0``), the adaptive spin with a wake
tolerance of 50, 100 (``plcrun run``'s default) and 200 µs (spin only what the p99 exceeds the
tolerance by), all within the 1 ms spin budget, and tolerance 100 µs with a 300 µs budget; each with
and without SCHED_FIFO (priority 40, timer slack 1 ns; needs root or CAP_SYS_NICE, else those rows
say "refused"). Each mode runs a 10 ms loop on its own
thread (deadlines offset 0.5 ms from the tick, as the scheduler does) that does nothing but wait;
the figure is that thread's CPU time (time.thread_time) as % of one core, and the wake latency
(the first clock read after sleep_until returned, minus the deadline), both after 64 wake-ups of
warm-up (until then the adaptive modes spin the whole budget). Modes take turns in blocks of
``--seconds`` (order rotated each round) so the machine's load falls on all of them alike; CPU and
latencies are pooled over the rounds. A scan's own work is not included: the 10-EV main job adds its
execution time (bench/main_job.py measures the whole process).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.executor.clock import MonotonicClock  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402

PERIOD_NS = 10_000_000
OFFSET_NS = 500_000
WARMUP_WAKES = 64  # not counted: two recomputations of the adaptive spin
MODES = {
    "sleep only": lambda: MonotonicClock(spin_ns=0),
    "fixed 1 ms spin (before issue 17)": lambda: MonotonicClock(spin_ns=1_000_000),
    "precise: tolerance 0": lambda: MonotonicClock(),
    "tolerance 50 µs": lambda: MonotonicClock(wake_tolerance_ns=50_000),
    "tolerance 100 µs (plcrun run)": lambda: MonotonicClock(wake_tolerance_ns=100_000),
    "tolerance 200 µs": lambda: MonotonicClock(wake_tolerance_ns=200_000),
    "tolerance 100 µs, budget 300 µs": lambda: MonotonicClock(wake_tolerance_ns=100_000, max_spin_ns=300_000),
}


def run_block(make_clock, fifo: bool, seconds: float, out: dict[str, object]) -> None:
    config = RtConfig(
        fifo_priority=40 if fifo else None,
        lock_memory=False,
        switch_interval_s=None,
        timer_slack_ns=1 if fifo else None,
    )
    with apply_rt_setup(config) as rt:
        out["fifo_applied"] = rt.applied("sched_fifo") if fifo else False
        clock = make_clock()
        now = clock.now_ns
        deadline = -(-now() // PERIOD_NS) * PERIOD_NS + OFFSET_NS
        for _ in range(WARMUP_WAKES):  # the adaptive modes spin the whole budget until measured
            deadline += PERIOD_NS
            clock.sleep_until(deadline)
        end = now() + int(seconds * 1e9)
        late: list[int] = []
        cpu0 = time.thread_time()
        wall0 = now()
        while deadline < end:
            deadline += PERIOD_NS
            clock.sleep_until(deadline)
            late.append(now() - deadline)
        out["cpu_s"] = time.thread_time() - cpu0
        out["wall_s"] = (now() - wall0) / 1e9
        out["late"] = late
        out["spin_ns"] = clock.spin_ns


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one block")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"command: python bench/wait_modes.py --seconds {args.seconds:g} --rounds {args.rounds}")
    keys = [(name, fifo) for fifo in (True, False) for name in MODES]
    pooled: dict[tuple[str, bool], dict[str, object]] = {
        k: {"cpu_s": 0.0, "wall_s": 0.0, "late": []} for k in keys
    }
    for round_index in range(args.rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            out: dict[str, object] = {}
            thread = threading.Thread(target=run_block, args=(MODES[key[0]], key[1], args.seconds, out))
            thread.start()
            thread.join()
            acc = pooled[key]
            acc["cpu_s"] += out["cpu_s"]  # type: ignore[operator]
            acc["wall_s"] += out["wall_s"]  # type: ignore[operator]
            acc["late"].extend(out["late"])  # type: ignore[attr-defined]
            acc["fifo_applied"] = out["fifo_applied"]
            acc["spin_ns"] = out["spin_ns"]
    print()
    print(
        "| mode | SCHED_FIFO | CPU % of a core | wake p50 µs | p99 µs | p99.9 µs | max µs | spin at end µs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, fifo in keys:
        acc = pooled[(name, fifo)]
        late = acc["late"]
        fifo_text = ("yes" if acc["fifo_applied"] else "refused") if fifo else "no"
        print(
            f"| {name} | {fifo_text} | {100 * acc['cpu_s'] / acc['wall_s']:.2f} | {pct(late, 0.5):.1f} | "
            f"{pct(late, 0.99):.1f} | {pct(late, 0.999):.1f} | {max(late) / 1e3:.0f} | {acc['spin_ns'] / 1e3:.0f} |"
        )
    with open("/proc/loadavg") as handle:
        print(f"\nload average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
