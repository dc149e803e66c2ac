"""A process running a backhaul, for the tests that kill it with SIGKILL.

    python -m tests.io.mqtt.backhaul_child <site.toml> <windows>

It produces ``windows`` one-second report windows in virtual time (100 scans each, a few milliseconds
of real time apart), prints ``stored <seq>`` whenever the backhaul has written a new record to its
buffer, then idles until it is killed.
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
    scan = 0
    while True:
        if scan < windows * 100 + 1:
            clock.now = scan * 10_000_000
            backhaul.write_outputs(
                clock.now,
                {
                    "main.grid_hz": 50.0,
                    "main.site_w": float(scan),
                    **{f"main.evs[{i}].connected": False for i in range(1, 5)},
                },
            )
            scan += 1
            if scan % 100 == 0:
                time.sleep(0.005)
        else:
            time.sleep(0.01)
        stored = backhaul.status().counters["last_seq"]
        if stored != reported:
            reported = stored
            print(f"stored {stored}", flush=True)


if __name__ == "__main__":
    main()
