"""The OCPP station under load, in real time: programs/freq_response.st with 10 simulated EVs at 10 ms,
the OCPP driver connected to a CSMS on 127.0.0.1 (tests/support/csms.py, built on the ``ocpp``
package, OCPP 2.1), in alternating blocks of one run:

- idle: the link carries only heartbeats and the station's own messages;
- busy: the CSMS sends requests back to back (SetChargingProfile with a per-EVSE limit alternating
  6000/8000 W, then 20 GetVariables), the station answers each (schema validation both ways).

The CSMS runs in a process of its own (bench/ocpp_csms_load.py) so that only the station's work
shares the scan's interpreter.

Printed: the scan's wake latency (p50/p99/p99.9/max) and execution time, and overruns, idle against
busy (goal: no measurable difference); requests per second the link carried while busy; and the
latency from SetChargingProfile to the charger setpoint (``evs[1].p_setpoint_w`` at the new limit),
in scans, counted from the scan running when the CSMS sent the request and from the scan running
when its answer arrived (CLOCK_MONOTONIC in both processes).

    python bench/ocpp_link.py --duration 30     # seconds per state (idle, busy)
"""

from __future__ import annotations

import argparse
import bisect
import os
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

from plcrun.cli_sim import load_with_fleet_size  # noqa: E402
from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.alarms import AlarmBus  # noqa: E402
from plcrun.executor.clock import MonotonicClock  # noqa: E402
from plcrun.executor.engine import Executor  # noqa: E402
from plcrun.executor.gc_control import GcController, GcPolicy  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.io.ocpp import OcppDriver, parse_ocpp_config  # noqa: E402
from plcrun.io.site_io import sim_io  # noqa: E402

EVS = 10


def secret(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per state (idle, busy)")
    parser.add_argument("--block", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="CSMS requests per second; 0: back to back")
    args = parser.parse_args()
    print(
        f"command: python bench/ocpp_link.py --duration {args.duration:g} --block {args.block:g} --rate {args.rate:g}"
    )
    work = Path(tempfile.mkdtemp(prefix="plcrun-ocpp-bench-"))
    csms = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "ocpp_csms_load.py"), "--rate", str(args.rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert csms.stdin is not None and csms.stdout is not None
    port = int(csms.stdout.readline())
    table = {
        "url": f"ws://127.0.0.1:{port}/ocpp",
        "station_id": "BENCH-1",
        "security_profile": 1,
        "password_file": secret(work / "password", "bench-password-0123"),
        "evses": EVS,
        "reconnect_min_s": 0.1,
        "store": {"directory": str(work / "store"), "key_file": secret(work / "key", os.urandom(32).hex())},
    }
    program = compile_file(ROOT / "programs" / "freq_response.st")
    io = sim_io(program, load_with_fleet_size("quiet_grid", EVS), realtime=True)
    alarms = AlarmBus()
    driver = OcppDriver(parse_ocpp_config(table, str(work / "site.toml"), program.catalog()), alarms)
    executor = Executor(program, clock=MonotonicClock(), drivers=[*io.drivers, driver], alarms=alarms)
    for path, value in io.initial_writes.items():
        executor.journal.write(path, value)
    executor.journal.write("main.service", "SVC_NONE")
    executor.journal.write("main.baseline_w", 100_000.0)  # every car wants its maximum: limits bind

    state = {"now": "warm-up"}
    rows: dict[str, list[tuple[int, int]]] = {"idle": [], "busy": [], "warm-up": []}
    overruns = {"idle": 0, "busy": 0, "warm-up": 0}
    starts: list[int] = []  # start of every scan (perf_counter ns)
    setpoints: list[tuple[int, float]] = []  # (scan index, evs[1].p_setpoint_w) at every change
    setpoint = executor.state.accessor("main.evs[1].p_setpoint_w")

    def observe(r: Any) -> None:
        starts.append(r.start_ns)
        rows[state["now"]].append((r.start_ns - r.deadline_ns, r.end_ns - r.start_ns))
        overruns[state["now"]] += int(r.overrun)
        value = float(setpoint.get())
        if not setpoints or setpoints[-1][1] != value:
            setpoints.append((len(starts) - 1, value))

    executor.scheduler.add_scan_observer(observe)

    def scan_loop() -> None:
        rt = apply_rt_setup(RtConfig())
        gc_controller = GcController(executor.scheduler.stats, GcPolicy())
        gc_controller.start(executor.clock.now_ns())
        executor.scheduler.add_idle_hook(gc_controller.idle)
        try:
            executor.run()
        finally:
            gc_controller.stop()
            rt.close()

    thread = threading.Thread(target=scan_loop, name="scan")
    thread.start()
    while driver.status().counters.get("boots", 0) < 1:
        time.sleep(0.1)
    time.sleep(2.0)
    for _ in range(max(1, round(args.duration / args.block))):
        for wanted in ("idle", "busy"):
            state["now"] = "warm-up"
            csms.stdin.write(wanted + "\n")
            csms.stdin.flush()
            time.sleep(0.3)  # the change of state itself belongs to neither
            state["now"] = wanted
            time.sleep(args.block)
    state["now"] = "warm-up"
    csms.stdin.write("idle\nstop\n")
    csms.stdin.flush()
    lines = csms.stdout.read().splitlines()
    csms.wait(30)
    time.sleep(0.5)
    executor.stop()
    thread.join()
    executor.shutdown()
    sent = [
        (int(a), int(b), float(c))
        for _tag, a, b, c in (line.split() for line in lines if line.startswith("sent"))
    ]
    _tag, requests, busy_ns = next(line.split() for line in lines if line.startswith("totals"))

    for name in ("idle", "busy"):
        wake = np.array([w for w, _ in rows[name]]) / 1e3
        run = np.array([e for _, e in rows[name]]) / 1e3
        print(
            f"link {name}: scans {len(wake):6d}  wake p50 {np.percentile(wake, 50):6.1f} µs  "
            f"p99 {np.percentile(wake, 99):7.1f}  p99.9 {np.percentile(wake, 99.9):7.1f}  max {wake.max():8.1f}  |  "
            f"exec p50 {np.percentile(run, 50):6.0f} µs  p99 {np.percentile(run, 99):6.0f}  |  overruns {overruns[name]}"
        )
    print(
        f"requests answered while busy: {requests} in {int(busy_ns) / 1e9:.1f} s = {int(requests) / max(int(busy_ns) / 1e9, 1e-9):.0f}/s"
    )
    from_send: list[int] = []
    from_answer: list[int] = []
    for index, (sent_ns, answered_ns, limit) in enumerate(sent):
        before = bisect.bisect_right(starts, sent_ns) - 1  # the scan running at the send
        after = bisect.bisect_right(starts, answered_ns) - 1
        hit = next((n for n, value in setpoints if n > before and abs(value - limit) < 0.5), None)
        following = sent[index + 1][0] if index + 1 < len(sent) else None
        if hit is None or (following is not None and starts[hit] > following):
            continue  # not seen before the next profile: not attributable
        from_send.append(hit - before)
        from_answer.append(hit - after)
    if from_send:
        s, a = np.array(from_send), np.array(from_answer)
        print(
            f"SetChargingProfile -> evs[1].p_setpoint_w, {len(s)} of {len(sent)} changes: scans from the send "
            f"p50 {np.percentile(s, 50):.0f} p99 {np.percentile(s, 99):.0f} max {s.max()}; from the answer "
            f"p50 {np.percentile(a, 50):.0f} p99 {np.percentile(a, 99):.0f} max {a.max()}"
        )
    print(f"driver counters: {driver.status().counters}")


if __name__ == "__main__":
    main()
