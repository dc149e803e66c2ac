"""End-to-end latency: a frequency change inside a Modbus meter server -> plcrun (Modbus client
driver, 10 ms scan, ST program) -> the setpoint arriving in a Modbus charger server.

    python bench/modbus_end_to_end.py --steps 1000

The meter and charger are pymodbus servers in other processes on 127.0.0.1 (tests/support). Both
servers time-stamp with CLOCK_MONOTONIC, so the latency is measured between the two processes
without the bench's own polling in it. Prints p50/p99/max in scans (10 ms) and the share of steps
within 2 scans (the goal: all of them).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

from tests.support.modbus_devices import QUASAR, ModbusPeer  # noqa: E402

SCAN_NS = 10_000_000

SITE = """
[site]
name = "e2e bench"

[devices.meter]
host = "127.0.0.1"
port = {meter}
unit = 1
profile = "sunspec"
timeout_ms = 100
poll_ms = 10

[devices.meter.points.hz]
sunspec = "213.Hz"
bind = "main.grid_hz"

[devices.charger]
host = "127.0.0.1"
port = {charger}
unit = 1
profile = "quasar"
ev = "main.evs[1]"
idle_timeout_s = 30
heartbeat_ms = 5000
timeout_ms = 100
poll_ms = 200
"""


def expected_setpoint(hz: float) -> int:
    return round(float(np.float32(hz)) * 10000.0 - 500000.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between frequency steps")
    args = parser.parse_args()
    print(f"command: python bench/modbus_end_to_end.py --steps {args.steps} --gap {args.gap:g}")
    with ModbusPeer("meter") as meter, ModbusPeer("charger") as charger:
        charger.plug_car(True)
        site = Path("/tmp") / f"plcrun-e2e-{meter.port}.toml"
        site.write_text(SITE.format(meter=meter.port, charger=charger.port))
        program = compile_file(ROOT / "bench" / "programs" / "e2e_setpoint.st")
        executor = SiteRuntime.build(program, config=str(site), gateway_id="bench").executor

        def scan_thread() -> None:
            rt = apply_rt_setup(RtConfig())
            try:
                executor.run()
            finally:
                rt.close()

        thread = threading.Thread(target=scan_thread, name="scan", daemon=True)
        thread.start()
        time.sleep(2.0)  # connect, SunSpec discovery, first polls
        charger.take_write_log()
        latencies: list[int] = []
        missing = 0
        for k in range(args.steps):
            hz = 50.0 + ((k * 37) % 200 - 100) * 0.001  # never the same value twice in a row
            want = expected_setpoint(hz)
            applied = meter.set_meter_at(hz)
            deadline = time.monotonic() + 1.0
            arrived = None
            while arrived is None and time.monotonic() < deadline:
                time.sleep(0.005)
                for stamp, register, value in charger.take_write_log():
                    signed = value - 65536 if value >= 32768 else value
                    if register == QUASAR["setpoint"] and signed == want and stamp >= applied:
                        arrived = stamp
                        break
            if arrived is None:
                missing += 1
            else:
                latencies.append(arrived - applied)
            time.sleep(max(0.0, args.gap - 0.005))
        executor.stop()
        thread.join(5)
        executor.shutdown()
        stats = executor.scheduler.stats.task("DEFAULT")
        polls = {d.name: d.status().counters for d in executor.drivers}
    values = np.array(latencies, dtype=np.float64) / SCAN_NS
    print(f"steps {args.steps}, arrived {len(latencies)}, missing {missing}")
    print(
        f"latency in scans: p50 {np.percentile(values, 50):.2f}  p99 {np.percentile(values, 99):.2f}  "
        f"max {values.max():.2f}  within 2 scans: {np.mean(values <= 2.0) * 100:.1f}%"
    )
    print(f"scans {stats.scans}, overruns {stats.overruns}")
    for name, counters in polls.items():
        print(f"driver {name}: {counters}")


if __name__ == "__main__":
    main()
