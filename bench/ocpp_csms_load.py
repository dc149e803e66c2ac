"""The CSMS side of bench/ocpp_link.py, in a process of its own (so that its work does not compete
for the station's interpreter lock): a CSMS on 127.0.0.1 built on the ``ocpp`` package. Reads
commands on stdin (``busy``, ``idle``, ``stop``); while busy it sends SetChargingProfile (a per-EVSE
limit alternating 6000/8000 W) followed by ``--between`` GetVariables requests, back to back or at
``--rate`` requests per second. Prints
its port first, and at the end one line per profile (perf_counter ns, CLOCK_MONOTONIC, at send, at answer, limit) and the
request count and busy time."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocpp.v21 import call  # noqa: E402

from tests.support.csms import Csms  # noqa: E402


def profile(pid: int, limit: float) -> Any:
    period = {"startPeriod": 0, "limit": limit}
    schedule = {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
    return call.SetChargingProfile(
        evse_id=0,
        charging_profile={
            "id": pid,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [schedule],
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--between", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.0, help="requests per second; 0: back to back")
    args = parser.parse_args()
    csms = Csms(versions=("2.1",))
    csms.start()
    print(csms.port, flush=True)
    busy, stop = threading.Event(), threading.Event()
    sent: list[tuple[int, int, float]] = []
    totals = {"requests": 0, "busy_ns": 0}
    get = call.GetVariables(
        get_variable_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        ]
    )

    def hammer() -> None:
        limit = 6000.0
        while not stop.is_set():
            if not busy.wait(0.1) or csms.station is None:
                continue
            started = time.perf_counter_ns()
            limit = 8000.0 if limit == 6000.0 else 6000.0
            assert csms.request(profile(1, limit)).status == "Accepted"
            sent.append((started, time.perf_counter_ns(), limit))
            for _ in range(args.between):
                if args.rate > 0:
                    time.sleep(1.0 / args.rate)
                csms.request(get)
            totals["requests"] += 1 + args.between
            totals["busy_ns"] += time.perf_counter_ns() - started

    worker = threading.Thread(target=hammer)
    worker.start()
    for line in sys.stdin:
        command = line.strip()
        if command == "busy":
            busy.set()
        elif command == "idle":
            busy.clear()
        elif command == "stop":
            break
    busy.clear()
    stop.set()
    worker.join()
    for item in sent:
        print("sent", *item, flush=True)
    print("totals", totals["requests"], totals["busy_ns"], flush=True)
    csms.stop()


if __name__ == "__main__":
    main()
