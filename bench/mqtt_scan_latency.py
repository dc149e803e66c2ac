"""Scan wake latency and execution time of the executor (programs/freq_response.st, 100 simulated
EVs, 10 ms) while the MQTT backhaul reports every second, with the broker up against the broker
down (reports then go to the encrypted disk buffer and reconnects are tried), in alternating blocks
of one run. Goal: no measurable difference.

    python bench/mqtt_scan_latency.py --duration 60     # seconds per state (up, down)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

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
from plcrun.io.mqtt import Backhaul, parse_mqtt_config  # noqa: E402
from plcrun.io.site_io import sim_io  # noqa: E402

from tests.support.mosquitto import Mosquitto  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per broker state")
    parser.add_argument("--block", type=float, default=5.0)
    args = parser.parse_args()
    print(f"command: python bench/mqtt_scan_latency.py --duration {args.duration:g} --block {args.block:g}")
    work = Path(tempfile.mkdtemp(prefix="plcrun-mqtt-bench-"))
    key = work / "buffer.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    broker = Mosquitto(work / "broker").start()
    table = {
        "host": "127.0.0.1",
        "port": broker.port,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "report": {
            "period_s": 1.0,
            "variables": [
                {"name": "frequency_hz", "path": "main.grid_hz"},
                {
                    "name": "site_power_w",
                    "path": "main.site_w",
                    "stats": ["min", "max", "mean", "last", "energy"],
                },
                {"name": "sessions", "path": "main.evs[1..100].connected", "reduce": "count_nonzero"},
            ],
        },
        "buffer": {"directory": str(work / "buffer"), "key_file": str(key)},
    }
    program = compile_file(ROOT / "programs" / "freq_response.st")
    io = sim_io(program, load_with_fleet_size("quiet_grid", 100), realtime=True)
    alarms = AlarmBus()
    holder: dict[str, Executor] = {}
    backhaul = Backhaul(
        parse_mqtt_config(table, str(work / "site.toml")),
        alarms,
        lambda: holder["x"].scheduler.stats.to_json(),
        "bench",
    )
    executor = Executor(program, clock=MonotonicClock(), drivers=[*io.drivers, backhaul], alarms=alarms)
    holder["x"] = executor
    for path, value in io.initial_writes.items():
        executor.journal.write(path, value)
    state = {"now": "warm-up"}
    rows: dict[str, list[tuple[int, int]]] = {"up": [], "down": [], "warm-up": []}
    stats = executor.scheduler.stats.task("fast")
    executor.scheduler.add_scan_observer(
        lambda r: rows[state["now"]].append((r.start_ns - r.deadline_ns, r.end_ns - r.start_ns))
    )

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
    time.sleep(2.0)  # warm up, connect
    for _ in range(max(1, round(args.duration / args.block))):
        for wanted in ("up", "down"):
            state["now"] = "warm-up"  # the broker start/stop itself is not part of either state
            if wanted == "up":
                broker.start()
            else:
                broker.stop()
            state["now"] = wanted
            time.sleep(args.block)
    state["now"] = "warm-up"
    broker.start()
    time.sleep(3.0)  # let the buffer drain
    executor.stop()
    thread.join()
    executor.shutdown()
    broker.stop()
    counters = backhaul.status().counters
    for name in ("up", "down"):
        wake = np.array([w for w, _ in rows[name]]) / 1e3
        run = np.array([e for _, e in rows[name]]) / 1e3
        print(
            f"broker {name:4s}: scans {len(wake):6d}  wake p50 {np.percentile(wake, 50):6.1f} µs  "
            f"p99 {np.percentile(wake, 99):7.1f}  p99.9 {np.percentile(wake, 99.9):7.1f}  max {wake.max():8.1f}  |  "
            f"exec p50 {np.percentile(run, 50):6.0f} µs  p99 {np.percentile(run, 99):6.0f}"
        )
    print(f"overruns {stats.overruns}; backhaul {counters}")


if __name__ == "__main__":
    main()
