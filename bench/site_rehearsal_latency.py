"""Meter change -> charger register through the emulated devices of ``plcrun devices``: the shipped
site program (programs/freq_response.st, FCR 10 kW) with examples/site.toml, against the emulated
SunSpec meter and two Quasar chargers (5-50 ms answers, the meter refreshing its registers every
100 ms), in another process.

    python bench/site_rehearsal_latency.py --steps 1000

Each step holds a new grid frequency (never the same setpoint twice). The latency of a step runs from
the meter's *answer* that first carries the new frequency to the later of the two chargers receiving
its new setpoint (register 260); both are time-stamped in the device process with CLOCK_MONOTONIC.
Prints p50/p99/max in scans (10 ms: the baseline of the ratio) and the share within 2 scans (goal:
at least 99 %). The answer times of the meter itself (5-50 ms) come before the start of the clock.
``--write-connection`` gives the chargers ``write_connection = true`` (setpoints on a second TCP
connection, not behind a poll waiting for a slow answer).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

from tests.support.modbus_devices import free_port  # noqa: E402

SCAN_NS = 10_000_000
ANSWER_MS = (5.0, 50.0)


def devices_process(config: str, conn: Connection) -> None:
    from plcrun.io.emulate import QuasarCharger, Rehearsal, SunSpecMeter, plan_devices
    from plcrun.io.sim import load_scenario

    served, _ = plan_devices(config, ANSWER_MS)
    rehearsal = Rehearsal(served, load_scenario("quiet_grid"))
    rehearsal.hold_frequency = 50.0
    rehearsal.start()
    meter = next(s.device for s in served if isinstance(s.device, SunSpecMeter))
    chargers = [s.device for s in served if isinstance(s.device, QuasarCharger)]
    conn.send("ready")
    while True:
        command, arg = conn.recv()
        if command == "hold":
            rehearsal.hold_frequency = float(arg)
            conn.send(None)
        elif command == "log":
            with meter.lock:
                answers = [a for a in meter.answers if a[1] <= meter.frequency_address < a[1] + a[2]]
                meter.answers.clear()
                updated = meter.updated_ns
            writes = []
            for charger in chargers:
                with charger.lock:
                    writes.append([(t, v) for t, a, v in charger.writes if a == 260])
                    charger.writes.clear()
            conn.send((updated, answers, writes))
        elif command == "stop":
            rehearsal.stop()
            conn.send(None)
            return


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument(
        "--gap", type=float, default=0.25, help="seconds between steps (the meter updates every 0.1 s)"
    )
    parser.add_argument(
        "--write-connection", action="store_true", help="the chargers' setpoints on a connection of their own"
    )
    args = parser.parse_args()
    flag = " --write-connection" if args.write_connection else ""
    print(f"command: python bench/site_rehearsal_latency.py --steps {args.steps} --gap {args.gap:g}{flag}")
    text = (ROOT / "examples" / "site.toml").read_text()
    if args.write_connection:
        text = text.replace('profile = "quasar"', 'profile = "quasar"\nwrite_connection = true')
    for port in (15020, 15021, 15022):
        text = text.replace(f"port = {port}", f"port = {free_port()}")
    config = Path("/tmp") / f"plcrun-rehearsal-bench-{time.monotonic_ns()}.toml"
    config.write_text(text)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=devices_process, args=(str(config), child), daemon=True)
    process.start()
    assert parent.recv() == "ready"

    def call(command: str, arg: Any = None) -> Any:
        parent.send((command, arg))
        return parent.recv()

    site = SiteRuntime.build(compile_file(ROOT / "programs" / "freq_response.st"), config=str(config))
    site.start()
    executor = site.executor

    def scan_thread() -> None:
        rt = apply_rt_setup(RtConfig())
        try:
            executor.run()
        finally:
            rt.close()

    thread = threading.Thread(target=scan_thread, name="scan", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while executor.read("main.status") not in ("ST_NORMAL", "ST_RESPONDING") and time.monotonic() < deadline:
        time.sleep(0.1)
    latencies: list[int] = []
    missing = 0
    sign = 1
    for k in range(args.steps):
        sign = -sign
        hz = 50.0 + sign * (0.02 + ((k * 37) % 80) * 0.001)
        call("log")  # forget what came before this step
        call("hold", hz)
        time.sleep(args.gap)
        updated, answers, writes = call("log")
        carrying = [t for t, _address, _count in answers if t >= updated]
        arrived = [
            min((t for t, _v in w if t >= (carrying[0] if carrying else 0)), default=None) for w in writes
        ]
        if not carrying or any(a is None for a in arrived):
            missing += 1
            continue
        latencies.append(max(a for a in arrived if a is not None) - carrying[0])
    executor.stop()
    thread.join(5)
    site.stop()
    call("stop")
    process.join(5)
    stats = executor.scheduler.stats.task("fast")
    values = np.array(latencies, dtype=np.float64) / SCAN_NS
    print(f"steps {args.steps}, measured {len(latencies)}, missing {missing}")
    print(
        f"latency in scans (10 ms): p50 {np.percentile(values, 50):.2f}  p99 {np.percentile(values, 99):.2f}  "
        f"max {values.max():.2f}  within 2 scans: {np.mean(values <= 2.0) * 100:.1f}%"
    )
    print(f"scans {stats.scans}, overruns {stats.overruns}")


if __name__ == "__main__":
    main()
