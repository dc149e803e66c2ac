"""Store-and-forward against a real broker: an outage, a SIGKILL of the process while buffering, and a
tampered buffer file. Subscribers count on every sequence number arriving, in order, exactly once
after dropping duplicates by ``seq`` (QoS 1 is at-least-once)."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from plcrun.io.mqtt import Backhaul
from plcrun.io.mqtt.store_format import NONCE_BYTES, SEGMENT_HEADER_BYTES

from tests.io.mqtt.rig import GATEWAY, FakeClock, load_config, wait_until, write_site_config
from tests.support.mosquitto import Mosquitto, MqttProbe

MS = 1_000_000
S = 1_000_000_000
ROOT = Path(__file__).resolve().parents[3]
REPORT_TOPIC = f"plcrun/{GATEWAY}/report"
ALARM_TOPIC = f"plcrun/{GATEWAY}/alarm"


class Producer:
    """Drives a backhaul like the scan loop would, 100 scans per virtual second. Virtual time runs far
    faster than real time here, so after each window it lets the worker catch up (in real time a
    window takes a second; the recorder would otherwise drop windows, as designed, and count them)."""

    def __init__(self, backhaul: Backhaul, clock: FakeClock) -> None:
        self.backhaul, self.clock, self.scan, self.closed = backhaul, clock, 0, 0

    def _write(self) -> None:
        self.clock.now = self.scan * 10 * MS
        self.backhaul.write_outputs(self.clock.now, {"main.grid_hz": 50.0, "main.site_w": float(self.scan)})
        self.scan += 1

    def windows(self, count: int) -> None:
        if self.scan == 0:
            self._write()
        for _ in range(count):
            for _ in range(100):  # the last of these opens the next window and closes this one
                self._write()
            self.closed += 1
            assert wait_until(lambda: self.backhaul.status().counters["reports"] >= self.closed)
        assert self.backhaul.status().counters["dropped_windows"] == 0


def records(probe: MqttProbe) -> list[dict[str, object]]:
    """Reports and alarms in arrival order."""
    return [json.loads(p) for topic, p, _ in probe.snapshot() if topic in (REPORT_TOPIC, ALARM_TOPIC)]


def first_arrivals(probe: MqttProbe) -> list[int]:
    """Sequence numbers in arrival order with later duplicates removed (what a consumer keeps)."""
    seen: set[int] = set()
    order = []
    for record in records(probe):
        seq = int(record["seq"])  # type: ignore[call-overload]
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order


def test_outage_every_record_arrives_once_in_order_with_original_times(
    make_config, broker, probe, rig
) -> None:
    backhaul, _bus, clock = rig.start(make_config(broker.port))
    producer = Producer(backhaul, clock)
    producer.windows(2)
    assert wait_until(lambda: first_arrivals(probe) == [1, 2])

    broker.stop()
    assert wait_until(lambda: not backhaul.status().connected)
    producer.windows(6)  # reports made while the broker is down
    assert wait_until(lambda: backhaul.status().counters["pending"] >= 6)
    back_online_at = time.time()
    broker.start()

    def delivered() -> bool:
        status = backhaul.status()
        done = status.connected and status.counters["pending"] == 0
        return done and len(first_arrivals(probe)) >= status.counters["last_seq"]

    assert wait_until(delivered, 20)
    last = backhaul.status().counters["last_seq"]
    assert first_arrivals(probe) == list(range(1, last + 1))  # none missing, in order
    reports = [r for r in records(probe) if r["type"] == "report"]
    unique = {int(r["seq"]): r for r in reports}  # type: ignore[call-overload]
    starts = [r["window"]["start_ns"] for _, r in sorted(unique.items())]  # type: ignore[index]
    assert starts == [k * S for k in range(8)]
    for record in unique.values():  # made before the broker came back: original timestamps kept
        if record["window"]["start_ns"] >= 2 * S:  # type: ignore[index]
            assert record["time"] < back_online_at  # type: ignore[operator]
    # an outage alarm was raised while offline and delivered afterwards, cleared on reconnect
    alarms = [r["alarm"] for r in records(probe) if r["type"] == "alarm"]
    assert any(a["key"] == "mqtt:connection" and a["active"] for a in alarms)  # type: ignore[index]


def read_lines(stream, lines: queue.Queue[str]) -> None:  # type: ignore[no-untyped-def]
    for line in stream:
        lines.put(line.strip())


def test_sigkill_while_buffering_then_restart_loses_nothing(tmp_path: Path, rig) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)  # not running yet: connections are refused
    site = write_site_config(tmp_path / "site", broker.port)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.io.mqtt.backhaul_child", str(site), "100000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(child.stdout, lines), daemon=True).start()
    written = 0
    try:
        deadline = time.monotonic() + 30
        while written < 12 and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("stored "):
                written = int(line.split()[1])
        assert written >= 12, "the child did not buffer records"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-production: windows are still being written
        child.wait(10)

    with broker:
        probe = MqttProbe(broker.port, [f"plcrun/{GATEWAY}/#"])
        try:
            backhaul, bus, _clock = rig.start(load_config(site))
            last = backhaul.status().counters["last_seq"]
            assert last >= written  # everything the child reported as written was found
            assert not [a for a in bus.active() if a.key == "mqtt:buffer_integrity"]
            assert wait_until(lambda: len(first_arrivals(probe)) >= last, 20)
            assert first_arrivals(probe) == list(range(1, last + 1))
            starts = [r["window"]["start_ns"] for r in records(probe) if r["type"] == "report"]  # type: ignore[index]
            assert sorted(set(starts)) == [k * S for k in range(len(set(starts)))]  # no report window missing
        finally:
            probe.close()


def record_seqs(segment: bytes) -> list[int]:
    """The sequence numbers of a segment's records (format: docs/mqtt.md, "Buffer format")."""
    offset, seqs = SEGMENT_HEADER_BYTES, []
    while offset < len(segment):
        length, seq = struct.unpack_from(">IQ", segment, offset)
        seqs.append(seq)
        offset += 13 + NONCE_BYTES + length
    return seqs


def ciphertext_byte(segment: bytes, index: int) -> int:
    """The offset of the middle byte of record ``index``'s ciphertext (the segment's middle byte can
    fall on a record's length or sequence number, which is another fault: its framing is lost)."""
    offset = SEGMENT_HEADER_BYTES
    for _ in range(index):
        offset += 13 + NONCE_BYTES + struct.unpack_from(">I", segment, offset)[0]
    length = struct.unpack_from(">I", segment, offset)[0]
    return offset + 13 + NONCE_BYTES + length // 2


def test_tampered_record_is_detected_reported_and_not_loaded(
    tmp_path: Path, broker, probe, rig, caplog, request
) -> None:
    # a port bound for the whole test and never listened on: connections are refused, and no broker of
    # a test running in parallel can take it (a port merely free when chosen could be taken)
    refusing = socket.socket()
    request.addfinalizer(refusing.close)
    refusing.bind(("127.0.0.1", 0))
    offline = load_config(write_site_config(tmp_path / "site", refusing.getsockname()[1]))
    backhaul, _bus, clock = rig.start(offline)
    Producer(backhaul, clock).windows(4)
    assert wait_until(lambda: backhaul.status().counters["pending"] >= 4)
    backhaul.stop()
    segments = sorted(offline.buffer.directory.glob("seg-*.log"))
    assert len(segments) == 1
    data = bytearray(segments[0].read_bytes())
    written = record_seqs(bytes(data))
    data[ciphertext_byte(bytes(data), len(written) // 2)] ^= 0x01  # one bit of a middle record's ciphertext
    segments[0].write_bytes(bytes(data))

    online = load_config(write_site_config(tmp_path / "site", broker.port))
    with caplog.at_level(logging.ERROR, logger="plcrun.mqtt.buffer"):
        restarted, bus, _clock = rig.start(online)
    integrity = [a for a in bus.active() if a.key == "mqtt:buffer_integrity"]
    assert integrity and segments[0].name in integrity[0].message
    assert "fails authentication" in integrity[0].message
    assert any(segments[0].name in r.getMessage() for r in caplog.records)
    # only the altered record is quarantined; the other records of its segment are still sent
    (quarantined,) = (offline.buffer.directory / "quarantine").glob(f"*{segments[0].stem}-at-*.bin")
    lost_seq = struct.unpack_from(">Q", quarantined.read_bytes(), 4)[0]
    assert segments[0].exists()
    assert wait_until(lambda: restarted.status().counters["pending"] == 0)
    # every record is acknowledged, but the broker's PUBACK to the backhaul and its forwarding to the
    # probe are independent: wait until the probe holds each record but the quarantined one
    expected = set(range(1, restarted.status().counters["last_seq"] + 1)) - {lost_seq}
    assert wait_until(lambda: expected <= {int(r["seq"]) for r in records(probe)})  # type: ignore[call-overload]
    published = records(probe)
    alarm_keys = [r["alarm"]["key"] for r in published if r["type"] == "alarm"]  # type: ignore[index]
    assert "mqtt:buffer_integrity" in alarm_keys  # and the offline phase's alarms, kept in the buffer
    sent = {int(r["seq"]) for r in published}  # type: ignore[arg-type]
    assert lost_seq not in sent
    assert set(written) - sent == {lost_seq}  # every other record of the altered segment arrives
    assert any(r["type"] == "report" for r in published)
