"""Every waiting mode against the same recorded wake-ups: the kernel's wake-up error under SCHED_FIFO,
recorded once, replayed through ``WakeErrorTracker`` for each tolerance and estimator window.

    python bench/wake_trace.py --record 120 --trace /tmp/wake.json   # 2 minutes of a 10 ms sleep loop
    python bench/wake_trace.py --trace /tmp/wake.json                 # replay: the table
    python bench/wake_trace.py --record 120                           # both (trace in a temporary file)

Recording: a thread with SCHED_FIFO 40 and 1 ns timer slack (root or CAP_SYS_NICE; without it the
recording is of a normal thread, and says so) sleeps with clock_nanosleep to each 10 ms deadline
(0.5 ms off the tick) and notes how late it woke: the error the adaptive spin has to cover. Replay
(virtual time, deterministic): for each mode the tracker decides the spin before each wake-up from
the errors before it, as ``MonotonicClock.sleep_until`` does; a wake-up is late by what its error
exceeds the spin, and spins for what the spin exceeds its error. So every mode sees exactly the same
kernel, which the turns of ``bench/wait_modes.py`` cannot give on a busy machine; the spin's CPU is
the figure (a real wake-up also costs the kernel's own sleep/wake work, the same in every mode:
``wait_modes.py``'s "sleep only" row). The first 64 wake-ups (the tracker's start at the budget) are
not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.executor.clock import DEFAULT_SPIN_NS, WakeErrorTracker  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402

PERIOD_NS = 10_000_000
OFFSET_NS = 500_000
SKIP = 64
TOLERANCES_US = (0, 25, 50, 100, 150, 200)
WINDOWS = ((1024, 32), (256, 32), (128, 16))  # (window, every): the first is MonotonicClock's


def record(seconds: float, out: dict[str, object]) -> None:
    config = RtConfig(fifo_priority=40, lock_memory=False, switch_interval_s=None, timer_slack_ns=1)
    with apply_rt_setup(config) as rt:
        out["fifo"] = rt.applied("sched_fifo")
        now = time.perf_counter_ns
        deadline = -(-now() // PERIOD_NS) * PERIOD_NS + OFFSET_NS
        end = now() + int(seconds * 1e9)
        errors: list[int] = []
        while deadline < end:
            deadline += PERIOD_NS
            left = deadline - now()
            if left > 0:
                time.sleep(left / 1e9)
            errors.append(now() - deadline)
        out["errors"] = errors


def replay(errors: list[int], tolerance_ns: int, window: int, every: int) -> dict[str, float]:
    tracker = WakeErrorTracker(max_ns=DEFAULT_SPIN_NS, tolerance_ns=tolerance_ns, window=window, every=every)
    late: list[int] = []
    spun = 0
    for index, error in enumerate(errors):
        spin = tracker.spin_ns
        error = max(0, error)
        if index >= SKIP:
            late.append(max(0, error - spin))
            spun += max(0, spin - error)
        tracker.record(error)
    late.sort()
    n = len(late)
    return {
        "cpu": 100 * spun / (n * PERIOD_NS),
        "p50": late[n // 2] / 1e3,
        "p99": late[int(n * 0.99)] / 1e3,
        "p999": late[int(n * 0.999)] / 1e3,
        "max": late[-1] / 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", type=float, metavar="SECONDS", help="record a trace this long first")
    parser.add_argument("--trace", metavar="PATH", help="the trace file (written by --record, else read)")
    args = parser.parse_args()
    if args.record is None and args.trace is None:
        parser.error("give --record SECONDS, --trace PATH or both")
    print(
        "command: python bench/wake_trace.py"
        + (f" --record {args.record:g}" if args.record is not None else "")
        + (f" --trace {args.trace}" if args.trace else "")
    )
    path = Path(args.trace) if args.trace else Path(tempfile.mkdtemp(prefix="plcrun-wake-")) / "trace.json"
    if args.record is not None:
        out: dict[str, object] = {}
        thread = threading.Thread(target=record, args=(args.record, out))
        thread.start()
        thread.join()
        with open("/proc/loadavg") as handle:
            load = handle.read().split()[:3]
        path.write_text(json.dumps({"fifo": out["fifo"], "load": load, "errors": out["errors"]}))
        print(f"recorded {len(out['errors'])} wake-ups (SCHED_FIFO {out['fifo']}, load {load}) to {path}")  # type: ignore[arg-type]
    data = json.loads(path.read_text())
    errors: list[int] = data["errors"]
    ordered = sorted(max(0, e) for e in errors)
    n = len(ordered)
    print(
        f"trace: {n} wake-ups, SCHED_FIFO {data['fifo']}, load {data['load']}; the kernel's error p50 "
        f"{ordered[n // 2] / 1e3:.1f} µs, p99 {ordered[int(n * 0.99)] / 1e3:.1f}, p99.9 "
        f"{ordered[int(n * 0.999)] / 1e3:.1f}, max {ordered[-1] / 1e3:.0f}"
    )
    print()
    print(
        "| tolerance µs | window / every | spin CPU % of a core | late p50 µs | p99 µs | p99.9 µs | max µs |"
    )
    print("|---|---|---|---|---|---|---|")
    for tolerance_us in TOLERANCES_US:
        for window, every in WINDOWS:
            r = replay(errors, tolerance_us * 1000, window, every)
            print(
                f"| {tolerance_us} | {window} / {every} | {r['cpu']:.2f} | {r['p50']:.1f} | {r['p99']:.1f} | "
                f"{r['p999']:.1f} | {r['max']:.0f} |"
            )


if __name__ == "__main__":
    main()
