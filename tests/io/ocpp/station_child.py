"""A station process for the kill -9 test: ``python station_child.py URL DIR PHASE``.

Phase 1: cars on EVSE 1 and 2 plug in, the car on EVSE 1 leaves; prints ``READY`` once the three
transaction events are in the queue (the CSMS is down), then keeps scanning until killed.
Phase 2: the car on EVSE 2 is still plugged in; prints ``DELIVERED`` once the queue is empty, then
unplugs it, prints ``DONE`` when that event is delivered too and exits."""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from rig import Site, make_config  # noqa: E402


def pending(site: Site) -> int:
    return site.driver.status().counters.get("queue_pending", -1)


def main() -> None:
    url, directory, phase = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    site = Site(make_config(directory, url, reconnect_min_s=0.05, reconnect_max_s=0.1))
    if phase == "1":
        site.session(1, connected=True, p_present_w=7000.0, soc_pct=50.0)
        site.session(2, connected=True, p_present_w=5000.0, soc_pct=50.0)
        site.scan_until(lambda: pending(site) >= 2, timeout=30, pause_s=0.005)
        site.scan_for(1.0, real_pause_s=0.001)
        site.session(1, connected=False, p_present_w=0.0)
        site.scan_until(lambda: pending(site) >= 3, timeout=30, pause_s=0.005)
        site.scan_for(0.2, real_pause_s=0.005)  # the state file follows the queue
        print("READY", flush=True)
        while True:
            site.scan()
            time.sleep(0.01)
    site.session(2, connected=True, p_present_w=5000.0, soc_pct=50.0)

    def delivered() -> int:
        return int(site.driver.status().counters.get("delivered", 0))

    site.scan_until(lambda: pending(site) == 0 and delivered() >= 3, timeout=30, pause_s=0.005)
    print("DELIVERED", flush=True)
    before = delivered()
    site.session(2, connected=False, p_present_w=0.0)
    site.scan_until(lambda: delivered() > before and pending(site) == 0, timeout=30, pause_s=0.005)
    print("DONE", flush=True)
    site.close()


if __name__ == "__main__":
    main()
