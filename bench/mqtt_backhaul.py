"""Benchmark of the MQTT backhaul against a local Mosquitto (started here on a free 127.0.0.1 port).

Measures, in one run:
1. the cost of ``write_outputs`` on the scan thread with the broker up, down, and down with a full
   buffer (dropping), against a baseline of the bare numpy row write the recorder has to do anyway;
2. reports per second sustained end to end (QoS 1, every report acknowledged, fsync per commit);
3. encrypted buffer write throughput (one record per commit and 100 per commit, fsync on and off)
   and replay throughput (reopen + authenticate + read, and delivery of a backlog after an outage).

    python bench/mqtt_backhaul.py [--scans 3000] [--reports 2000] [--records 5000] [--switch-interval 0.0005]

Numbers vary with the machine's load; compare the ratios printed, measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import operator
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plcrun.executor.alarms import AlarmBus  # noqa: E402
from plcrun.io.mqtt import Backhaul, BackhaulConfig, parse_mqtt_config  # noqa: E402
from plcrun.io.mqtt.store import ForwardBuffer  # noqa: E402
from plcrun.io.mqtt.store_format import KIND_REPORT  # noqa: E402

from tests.support.mosquitto import Mosquitto, MqttProbe, free_port, mosquitto_binary  # noqa: E402

MS = 1_000_000
GATEWAY = "gw-bench"
KEY_HEX = "5a" * 32
EVS = 8


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def now_ns(self) -> int:
        return self.now


def site_config(
    directory: Path, port: int, period_s: float = 1.0, max_bytes: int = 64 << 20, fsync: str = "always"
) -> BackhaulConfig:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "buffer.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, KEY_HEX.encode())
    os.close(fd)
    table = {
        "host": "127.0.0.1",
        "port": port,
        "keepalive_s": 5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "max_inflight": 50,
        "report": {
            "period_s": period_s,
            "variables": [
                {"name": "frequency_hz", "path": "main.grid_hz", "stats": ["min", "max", "mean", "last"]},
                {
                    "name": "site_power_w",
                    "path": "main.site_w",
                    "stats": ["min", "max", "mean", "last", "energy"],
                },
                {
                    "name": "ev_power_w",
                    "path": f"main.evs[1..{EVS}].p_w",
                    "reduce": "sum",
                    "stats": ["mean", "energy"],
                },
                {"name": "sessions", "path": f"main.evs[1..{EVS}].connected", "reduce": "count_nonzero"},
            ],
        },
        "buffer": {
            "directory": str(directory / "buffer"),
            "key_file": str(key),
            "max_bytes": max_bytes,
            "fsync": fsync,
        },
    }
    return parse_mqtt_config(table, str(directory / "site.toml"))


def scan_values(k: int) -> dict[str, object]:
    values: dict[str, object] = {
        "main.grid_hz": 50.0 + 0.01 * np.sin(k / 50),
        "main.site_w": 5000.0 - k % 10000,
    }
    for i in range(1, EVS + 1):
        values[f"main.evs[{i}].p_w"] = 7000.0 if (k + i) % 3 else -7000.0
        values[f"main.evs[{i}].connected"] = (k + i) % 5 != 0
    return values


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": ordered[len(ordered) // 2] / 1000,
        "p99": ordered[int(len(ordered) * 0.99)] / 1000,
        "max": ordered[-1] / 1000,
        "mean": statistics.fmean(ordered) / 1000,
    }


def time_scan_calls(
    call: Callable[[int, dict[str, object]], None], scans: int, real_period_s: float
) -> list[int]:
    """Call like a scan loop (virtual 10 ms per scan, ``real_period_s`` of real time apart)."""
    values = [scan_values(k) for k in range(200)]
    costs = []
    for k in range(scans):
        now = k * 10 * MS
        sample = values[k % 200]
        start = time.perf_counter_ns()
        call(now, sample)
        costs.append(time.perf_counter_ns() - start)
        time.sleep(real_period_s)
    return costs


def scan_cost(work: Path, broker: Mosquitto, scans: int) -> None:
    print(
        f"\n1. write_outputs on the scan thread ({scans} scans each, 1 s windows, 1 ms real apart, 4 rounds)"
    )
    config = site_config(work / "cost-baseline", broker.port)
    paths = tuple(p for v in config.report.variables for p in v.paths)
    rows = np.zeros((scans + 1, len(paths)))
    getter = operator.itemgetter(*paths)
    row = [0]

    def bare_row_write(now: int, values: dict[str, object]) -> None:
        rows[row[0]] = getter(values)
        row[0] += 1

    conditions = [
        ("broker up", site_config(work / "cost-up", broker.port)),
        ("broker down", site_config(work / "cost-down", free_port())),
        (
            "broker down, buffer full",
            site_config(work / "cost-full", free_port(), period_s=0.1, max_bytes=64 << 10),
        ),
    ]
    samples: dict[str, list[int]] = {
        "baseline: numpy row write": [],
        **{label: [] for label, _ in conditions},
    }
    notes: dict[str, str] = {}
    rounds = 4
    for round_index in range(rounds):  # alternate the order, so that warm-up and drift hit all alike
        order = conditions if round_index % 2 == 0 else conditions[::-1]
        row[0] = 0
        samples["baseline: numpy row write"] += time_scan_calls(bare_row_write, scans // rounds, 0.001)
        for label, cfg in order:
            backhaul = Backhaul(cfg, AlarmBus(), lambda: {"main_task": {"scans": 1}}, GATEWAY)
            backhaul.start(Clock())
            samples[label] += time_scan_calls(backhaul.write_outputs, scans // rounds, 0.001)
            counters = backhaul.status().counters
            backhaul.stop()
            notes[label] = (
                f"reports {counters['reports']}, dropped records {counters['dropped_records']}"
                f", dropped windows {counters['dropped_windows']}"
            )
    results = {label: percentiles(values) for label, values in samples.items()}
    base = results["baseline: numpy row write"]
    up = results["broker up"]
    print(
        f"   {'condition':28} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>8} {'mean µs':>8}  ratios (p50 vs up / vs baseline)"
    )
    for label, stats in results.items():
        print(
            f"   {label:28} {stats['p50']:8.2f} {stats['p99']:8.2f} {stats['max']:8.1f} {stats['mean']:8.2f}"
            f"  {stats['p50'] / up['p50']:5.2f}x / {stats['p50'] / base['p50']:5.2f}x  {notes.get(label, '')}"
        )


def sustained_reports(work: Path, broker: Mosquitto, count: int, fsync: str) -> None:
    print(f"\n2. reports per second sustained, end to end (QoS 1, buffer fsync={fsync}, {count} reports)")
    config = site_config(work / f"rate-{fsync}", broker.port, period_s=0.01, fsync=fsync)
    probe = MqttProbe(broker.port, [f"plcrun/{GATEWAY}/report"], client_id=f"bench-{fsync}")
    backhaul = Backhaul(config, AlarmBus(), lambda: {"main_task": {"scans": 1}}, GATEWAY)
    backhaul.start(Clock())
    while not backhaul.status().connected:
        time.sleep(0.01)
    values = scan_values(0)
    start = time.perf_counter()
    for k in range(count + 1):  # one scan per 10 ms window: every call closes a window
        backhaul.write_outputs(k * 10 * MS, values)
        while backhaul.status().counters["reports"] < k - 2:  # the pool holds 4 windows: keep up
            time.sleep(0.0002)
    while len(probe.snapshot()) < count and time.perf_counter() - start < 120:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    received = len(probe.snapshot())
    size = len(probe.snapshot()[0][1]) if received else 0
    counters = backhaul.status().counters
    backhaul.stop()
    probe.close()
    print(
        f"   {received} reports of ~{size} bytes received in {elapsed:.2f} s: {received / elapsed:,.0f} reports/s"
        f" ({counters['acknowledged']} acknowledged), {received / elapsed:,.0f}x the 1 report/s of a gateway"
    )


def buffer_throughput(work: Path, records: int) -> None:
    print(f"\n3. encrypted buffer ({records} records of ~900 bytes)")
    payload = b'{"schema":"plcrun.backhaul.report",' + b'"x":1,' * 140 + b'"end":1}'
    key = bytes.fromhex(KEY_HEX)
    rates: dict[str, float] = {}
    for fsync in ("always", "never"):
        for batch in (1, 100):
            directory = work / f"buffer-{fsync}-{batch}"
            buffer = ForwardBuffer(directory, key, 1 << 30, fsync)
            n = records if batch > 1 or fsync == "never" else min(records, 1000)
            start = time.perf_counter()
            for index in range(n):
                buffer.append(buffer.next_seq(), KIND_REPORT, payload)
                if (index + 1) % batch == 0:
                    buffer.commit()
            buffer.commit()
            rate = n / (time.perf_counter() - start)
            rates[f"write fsync={fsync} batch={batch}"] = rate
            buffer.close()
    directory = work / "buffer-never-100"
    start = time.perf_counter()
    reopened = ForwardBuffer(directory, key, 1 << 30)
    for seq in reopened.pending_seqs():
        record = reopened.get(seq)
        assert record is not None
        reopened.read(record)
    rates["replay: reopen + authenticate + read"] = reopened.pending_count / (time.perf_counter() - start)
    reopened.close()
    reference = rates["write fsync=always batch=1"]
    for label, rate in rates.items():
        print(
            f"   {label:40} {rate:12,.0f} records/s  {rate * len(payload) / 1e6:7.1f} MB/s  {rate / reference:7.1f}x"
        )


def outage_replay(work: Path, count: int) -> None:
    print(f"\n4. replay of a backlog after an outage ({count} reports buffered while the broker was down)")
    broker = Mosquitto(work / "replay-broker")
    config = site_config(work / "replay", broker.port, period_s=0.01)
    backhaul = Backhaul(config, AlarmBus(), lambda: {}, GATEWAY)
    backhaul.start(Clock())
    values = scan_values(0)
    for k in range(count + 1):
        backhaul.write_outputs(k * 10 * MS, values)
        while backhaul.status().counters["reports"] < k - 2:
            time.sleep(0.0002)
    while backhaul.status().counters["pending"] < count:
        time.sleep(0.01)
    broker.start()
    start = time.perf_counter()
    while backhaul.status().counters["pending"] > 0 and time.perf_counter() - start < 120:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    delivered = backhaul.status().counters["acknowledged"]
    backhaul.stop()
    broker.stop()
    print(
        f"   {delivered} records delivered and acknowledged in {elapsed:.2f} s (incl. reconnect backoff):"
        f" {delivered / elapsed:,.0f} records/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=3000)
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0005,
        help="sys.setswitchinterval in seconds, as the runtime sets it (Python's default is 0.005)",
    )
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"GIL switch interval: {sys.getswitchinterval() * 1e3:g} ms")
    logging.getLogger("plcrun").setLevel(logging.CRITICAL)  # outages are staged here on purpose
    if mosquitto_binary() is None:
        print("mosquitto is not installed: nothing to measure")
        return
    with tempfile.TemporaryDirectory(prefix="plcrun-bench-mqtt-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker:
            scan_cost(work, broker, args.scans)
            sustained_reports(work, broker, args.reports, "always")
            sustained_reports(work, broker, args.reports, "never")
        buffer_throughput(work, args.records)
        outage_replay(work, args.reports)


if __name__ == "__main__":
    main()
