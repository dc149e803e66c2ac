"""A process running a backhaul, for the tests that kill it with SIGKILL.

    python -m tests.io.mqtt.backhaul_child <site.toml> <windows>

It produces ``windows`` one-second report windows in virtual time (100 scans each), waits after each
until the backhaul has written its report to the buffer and prints ``stored <last seq>``, then idles
until it is killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from plcrun.executor.alarms import AlarmBus
from plcrun.io.mqtt import Backhaul

from tests.io.mqtt.rig import GATEWAY, FakeClock, load_config


def main() -> None:
    config = load_config(Path(sys.argv[1]))
    windows = int(sys.argv[2])
    clock = FakeClock()
    backhaul = Backhaul(config, AlarmBus(), lambda: {"child": True}, GATEWAY)
    backhaul.start(clock)
    print("started", flush=True)
    reported = 0
    for scan in range(windows * 100 + 1):
        clock.now = scan * 10_000_000
        values: dict[str, object] = {"main.grid_hz": 50.0, "main.site_w": float(scan)}
        values.update({f"main.evs[{i}].connected": False for i in range(1, 5)})
        backhaul.write_outputs(clock.now, values)
        if scan and scan % 100 == 0:  # a window closed: let the worker store it before going on
            while backhaul.status().counters["reports"] < scan // 100:
                time.sleep(0.001)
            stored = backhaul.status().counters["last_seq"]
            if stored != reported:
                reported = stored
                print(f"stored {stored}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
