"""Does a charge point full of ISO 15118 sessions move the scan? plcrun's 10 ms scan in real time with
the ISO 15118 driver and its SECC process (10 EVSEs on 10 veth pairs), with no session and with
``--cars`` cars in their charge loops, in one run (none, sessions, none again).

The cars (``tests/io/iso15118/ev_car.py``, one process and JVM each, plugged in one after the other,
all in a network namespace this script creates) run DC BPT in dynamic mode; the site program asks each connected car for 5 kW. Printed: the
scan's wake latency and execution time (p50/p99/p99.9/max) per phase and the ratio of the p99s;
sessions per SECC process (how many reached the charge loop and stayed there), the charge-loop period
per session, the CPU the SECC process (with its JVM) used per session, how late the SECC process's
event loop woke (a 20 ms sleeper: p50/p99/max per phase; a car drops the session when an answer takes
over 0.5 s), how much of that loop's time went into the EXI codec's calls (the JVM works while the
loop waits), and the machine's load average beside each phase. The cars pause ``--loop-delay`` s
between charge loops (default 0.2 s; the package's EV sends the next at once). ``--car-processes``:
how many processes (each with its own JVM) carry the cars; 10 (one per car) loads this machine with
20 more processes beside the SECC and the scan. Needs root, Java and the SECC environment
(``/opt/plcrun-iso15118`` or ``$PLCRUN_ISO15118_PYTHON``).

    python bench/iso15118_sessions.py                      # 10 cars in 10 processes, 20 s per phase
    python bench/iso15118_sessions.py --car-processes 1    # the 10 cars in one process (one JVM)
    python bench/iso15118_sessions.py --cars 4 --block 10
"""

from __future__ import annotations

import argparse
import itertools
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_source  # noqa: E402
from plcrun.executor.alarms import AlarmBus  # noqa: E402
from plcrun.executor.clock import MonotonicClock  # noqa: E402
from plcrun.executor.config import ExecutorConfig  # noqa: E402
from plcrun.executor.engine import Executor  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.executor.stats import format_ns  # noqa: E402
from plcrun.executor.watchdog import WatchdogConfig  # noqa: E402
from plcrun.io.iso15118 import Iso15118Driver, parse_iso15118_config  # noqa: E402
from plcrun.io.iso15118.process import JAVA_OPTIONS  # noqa: E402

from tests.io.iso15118.conftest import EV_CAR, rig_skip_reason, secc_python  # noqa: E402

LAG_FILE_ENV = "PLCRUN_SECC_LAG_FILE"  # secc_process/worker.py: the event loop's lateness
from tests.io.iso15118.netns import CarNet  # noqa: E402

PROGRAM = """
PROGRAM main
VAR
  evs : ARRAY[1..{n}] OF EV_SESSION;
  i : INT;
END_VAR
FOR i := 1 TO {n} DO
  IF evs[i].connected THEN evs[i].p_setpoint_w := 5000.0; ELSE evs[i].p_setpoint_w := 0.0; END_IF;
END_FOR;
END_PROGRAM
"""


def cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of the SECC process and its JVM (a child process; all threads)."""
    if pid is None:
        return 0.0
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(p) for p in task.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentiles(values: np.ndarray[Any, Any]) -> dict[str, float]:
    if len(values) == 0:
        return dict.fromkeys(("p50", "p99", "p99_9", "max"), float("nan"))
    p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
    return {"p50": float(p50), "p99": float(p99), "p99_9": float(p999), "max": float(values.max())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cars", type=int, default=10)
    parser.add_argument("--block", type=float, default=20.0, help="seconds per phase")
    parser.add_argument(
        "--loop-delay", type=float, default=0.2, help="the cars' pause between charge loops (s)"
    )
    parser.add_argument("--car-processes", type=int, default=0, help="processes for the cars (0: one each)")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="the scan thread's real-time set-up as in plcrun run (SCHED_FIFO)",
    )
    args = parser.parse_args()
    reason = rig_skip_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    n = args.cars
    program = compile_source(PROGRAM.format(n=n), "bench_iso15118.st")
    tmp = Path(tempfile.mkdtemp(prefix="plcrun-bench-iso-"))
    os.chmod(tmp, 0o755)
    lag_file = tmp / "secc-lag.jsonl"
    os.environ[LAG_FILE_ENV] = str(lag_file)  # the SECC process inherits it
    windows: dict[str, list[tuple[float, float, float, float]]] = {"none": [], "sessions": []}
    with CarNet(n) as net:
        table = {
            "python": secc_python(),
            "prefix": "main.evs",
            "evse": {
                f"cp{i + 1}": {"interface": host, "slot": i + 1, "max_discharge_w": 11000.0}
                for i, host in enumerate(net.hosts)
            },
        }
        config = parse_iso15118_config(table, "bench.toml", program.catalog())
        driver = Iso15118Driver(config, AlarmBus())
        # measured, not enforced: a scan descheduled by the loaded machine must not fault the task
        watchdog = WatchdogConfig(time_factor=1000.0, overrun_limit=0)
        executor = Executor(
            program, clock=MonotonicClock(), drivers=[driver], config=ExecutorConfig(watchdog=watchdog)
        )

        def scan() -> None:
            if args.realtime:  # as `plcrun run` does on the scan thread (SCHED_FIFO 40, mlockall, ...)
                session = apply_rt_setup(RtConfig())
                print("real-time set-up:", "; ".join(f"{i.name}: {i.detail}" for i in session.items))
            executor.run()

        runner = threading.Thread(target=scan, daemon=True)
        runner.start()
        stats = executor.scheduler.stats
        samples: dict[str, dict[str, list[np.ndarray[Any, Any]]]] = {
            p: {"wake": [], "exec": []} for p in ("none", "sessions")
        }

        def phase(name: str) -> float:
            executor.request_stats_reset()
            cpu0 = cpu_s(driver.process.pid)
            start, load0 = time.time(), os.getloadavg()[0]
            time.sleep(args.block)
            windows[name].append((start, time.time(), load0, os.getloadavg()[0]))
            task = stats.task("DEFAULT")
            samples[name]["wake"].append(task.wake_latency.window())
            samples[name]["exec"].append(task.execution.window())
            return cpu_s(driver.process.pid) - cpu0

        def connected() -> int:
            return sum(bool(executor.read(f"main.evs[{i}].connected")) for i in range(1, n + 1))

        time.sleep(5)  # the SECC process starts its JVM
        cpu_idle = phase("none")
        stop_file = tmp / "stop"
        log = str(tmp / "car-{iface}.jsonl")

        def loops(iface: str) -> list[dict[str, Any]]:
            path = Path(log.replace("{iface}", iface))
            if not path.exists():
                return []
            return [e for e in map(json.loads, path.read_text().splitlines()) if "loop" in e]

        # the cars in --car-processes processes (each its own JVM), plugged in one after the other
        # (ten session set-ups at once on this machine's two cores time out)
        groups = args.car_processes or n
        cars = []
        for g in range(groups):
            ifaces = net.cars[g::groups]
            argv = net.car_command(
                "env", f"JAVA_TOOL_OPTIONS={JAVA_OPTIONS}", "nice", "-n", "-10", secc_python(), str(EV_CAR),
                *[a for iface in ifaces for a in ("--iface", iface)], "--log", log,
                "--stop-file", str(stop_file), "--loop-delay", str(args.loop_delay), "--stagger", "3",
            )  # fmt: skip
            cars.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(loops(ifaces[-1])) < 3:
                time.sleep(0.25)
        in_loop = sum(len(loops(c)) >= 3 for c in net.cars)
        before = {c: len(loops(c)) for c in net.cars}
        cpu_sessions = phase("sessions")
        after = {c: loops(c) for c in net.cars}
        stayed = connected()
        stop_file.touch()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and connected():
            time.sleep(0.5)
        for car in cars:
            car.kill()
            car.wait(10)
        cpu_idle += phase("none")
        ends = driver.session_log()
        executor.stop()
        runner.join(10)
        executor.shutdown()

    periods = []
    for car, entries in after.items():
        times = [e["t"] for e in entries[before[car] :]]
        periods += [b - a for a, b in itertools.pairwise(times)]
    figures = {
        p: {k: percentiles(np.concatenate(v) if v else np.array([])) for k, v in d.items()}
        for p, d in samples.items()
    }
    lags = [json.loads(line) for line in lag_file.read_text().splitlines()] if lag_file.exists() else []
    print(
        f"ISO 15118: {n} EVSEs in one SECC process, {args.block:g} s per phase, cars: DC BPT dynamic "
        f"in {args.car_processes or n} process(es), {args.loop_delay:g} s between loops, scan "
        + ("real-time (SCHED_FIFO)" if args.realtime else "at nice 0")
    )
    print(f"{'phase':9s} wake p50 / p99 / p99.9 / max               exec p50 / p99 / p99.9 / max")
    for name, data in figures.items():
        w, e = data["wake"], data["exec"]
        print(
            f"{name:9s} "
            + " / ".join(format_ns(w[k]) for k in ("p50", "p99", "p99_9", "max")).ljust(40)
            + " / ".join(format_ns(e[k]) for k in ("p50", "p99", "p99_9", "max"))
        )
    for name, spans in windows.items():
        inside = [e for e in lags if any(a <= e["t"] <= b for a, b, _l0, _l1 in spans)]
        loads = ", ".join(f"{l0:.1f}->{l1:.1f}" for _a, _b, l0, l1 in spans)
        if inside:
            seconds = 5.0 * len(inside)
            calls = sum(e["exi_calls"] for e in inside)
            print(
                f"{name:9s} SECC event loop late p50 {statistics.median(e['p50_ms'] for e in inside):.1f} ms, "
                f"p99 (worst 5 s) {max(e['p99_ms'] for e in inside):.1f} ms, "
                f"max {max(e['max_ms'] for e in inside):.1f} ms; EXI codec calls {calls / seconds:.1f}/s, "
                f"{sum(e['exi_ms'] for e in inside) / max(calls, 1):.1f} ms each, "
                f"{sum(e['exi_ms'] for e in inside) / seconds / 10:.0f} % of the loop's time; load average {loads}"
            )
        else:
            print(f"{name:9s} load average {loads}")
    ratio = figures["sessions"]["wake"]["p99"] / figures["none"]["wake"]["p99"]
    print(f"wake p99 sessions/none: {ratio:.2f}")
    print(
        f"sessions in their charge loop: {in_loop} of {n}; still connected after the phase: {stayed} of {n}"
    )
    reasons = sorted({reason for _count, reason in ends.values() if reason})
    print(f"session ends: {sum(c for c, _r in ends.values())}; reasons: {reasons}")
    if periods:
        print(
            f"charge-loop period per session: median {statistics.median(periods) * 1000:.0f} ms, "
            f"p90 {np.percentile(periods, 90) * 1000:.0f} ms, max {max(periods) * 1000:.0f} ms"
        )
    print(
        f"SECC process CPU: {cpu_idle / (2 * args.block) * 100:.1f} % idle, "
        f"{cpu_sessions / args.block * 100:.1f} % with {stayed} sessions "
        f"({cpu_sessions / args.block * 100 / max(stayed, 1):.1f} % per session)"
    )


if __name__ == "__main__":
    main()
