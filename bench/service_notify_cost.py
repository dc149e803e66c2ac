"""Cost of the systemd notifier on the scan thread (executor/sd_notify.py).

The ``ServiceNotifier`` is a scan observer: it runs after every scan and, every quarter of
WATCHDOG_USEC, sends one datagram. Timed here, interleaved in blocks and against a baseline measured
in the same run (a scan observer that does nothing): the observer call without a ping, and one
``WATCHDOG=1`` datagram to a service manager that is another process reading every datagram, as
systemd does. The cost per scan is the call plus the datagram shared by the scans of one quarter.

    python bench/service_notify_cost.py [--calls 200000] [--blocks 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from plcrun.executor.scheduler import ScanRecord
from plcrun.executor.sd_notify import NotifySocket, ServiceNotifier
from plcrun.executor.stats import ExecutorStats

MANAGER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    s.recv(64)
"""


def per_call_ns(observer: Callable[[ScanRecord], None], records: list[ScanRecord]) -> float:
    start = time.perf_counter_ns()
    for record in records:
        observer(record)
    return (time.perf_counter_ns() - start) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args()
    stats = ExecutorStats()
    stats.add_task("fast", 10_000_000, 0)
    records = [
        ScanRecord("fast", i * 10**7, i * 10**7, i * 10**7 + 50_000, 0, False) for i in range(args.calls)
    ]
    with tempfile.TemporaryDirectory() as folder:
        address = str(Path(folder) / "notify.sock")
        manager = subprocess.Popen(
            [sys.executable, "-c", MANAGER, address], stdout=subprocess.PIPE, text=True
        )
        assert manager.stdout is not None and manager.stdout.readline().strip() == "ready"
        sock = NotifySocket(address)
        notifier = ServiceNotifier(sock, stats, ["fast"], watchdog_ns=10**18)  # no ping inside the block
        notifier(records[0])  # READY
        baseline, calls, sends = [], [], []
        for _ in range(args.blocks):
            baseline.append(per_call_ns(lambda record: None, records))
            calls.append(per_call_ns(notifier, records))
            spent = 0
            for _ in range(200):
                start = time.perf_counter_ns()
                sock.send("WATCHDOG=1")
                spent += time.perf_counter_ns() - start
                time.sleep(0.0005)  # pings are 0.5 s apart in service; let the manager read each one
            sends.append(spent / 200)
        manager.kill()
        manager.wait()
    noop, call, send = statistics.median(baseline), statistics.median(calls), statistics.median(sends)
    print(f"no-op scan observer (baseline): {noop:7.0f} ns per scan")
    print(f"ServiceNotifier, no ping:       {call:7.0f} ns per scan ({call / noop:.1f}x the baseline)")
    print(f"one WATCHDOG=1 datagram:        {send:7.0f} ns")
    scans_per_ping = 0.5 / 0.01  # WatchdogSec=2s: a ping every 0.5 s; a 10 ms task
    per_scan = call + send / scans_per_ping
    print(
        f"per 10 ms scan with WatchdogSec=2s: {per_scan:.0f} ns = {per_scan / 10_000_000 * 100:.4f} % of the period"
    )
    print(f"datagrams sent {sock.sent}, refused {sock.failed}")


if __name__ == "__main__":
    main()
