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

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.gc_control import GcController, GcPolicy  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

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
    site = work / "site.toml"  # the simulated site and its backhaul, as an operator would write them
    site.write_text(
        '[sim]\nscenario = "quiet_grid"\nevs = 100\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0\n'
        "[mqtt.report]\nperiod_s = 1.0\n"
        '[[mqtt.report.variables]]\nname = "frequency_hz"\npath = "main.grid_hz"\n'
        '[[mqtt.report.variables]]\nname = "site_power_w"\npath = "main.site_w"\n'
        'stats = ["min", "max", "mean", "last", "energy"]\n'
        '[[mqtt.report.variables]]\nname = "sessions"\npath = "main.evs[1..100].connected"\n'
        'reduce = "count_nonzero"\n'
        f'[mqtt.buffer]\ndirectory = "{work / "buffer"}"\nkey_file = "{key}"\n'
    )
    program = compile_file(ROOT / "programs" / "freq_response.st")
    executor = SiteRuntime.build(program, config=str(site), gateway_id="bench").executor
    (backhaul,) = [driver for driver in executor.drivers if driver.kind == "mqtt"]
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
