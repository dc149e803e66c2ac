"""The backhaul against a real Mosquitto: report content and sequence, immediate alarms, retained
status with last will, and a scan side that never waits for a stalled worker."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.io.mqtt.rig import GATEWAY, write_site_config
from tests.support.mosquitto import Mosquitto, MqttProbe

MS = 1_000_000
S = 1_000_000_000
REPORT_TOPIC = f"plcrun/{GATEWAY}/report"
ALARM_TOPIC = f"plcrun/{GATEWAY}/alarm"
STATUS_TOPIC = f"plcrun/{GATEWAY}/status"


def scan_values(k: int) -> dict[str, object]:
    """Known per-scan values: frequency wanders, power swings between charging and discharging."""
    connected = [True, k % 3 != 0, k >= 20, False]
    values: dict[str, object] = {
        "main.grid_hz": 50.0 + 0.05 * math.sin(k / 5.0),
        "main.site_w": 9000.0 * math.cos(k / 9.0) - 1500.0,
    }
    values.update({f"main.evs[{i + 1}].connected": flag for i, flag in enumerate(connected)})
    return values


def held_energy_wh(times: list[int], powers: list[float], start: int, end: int) -> tuple[float, float]:
    """Reference integral: each sample holds until the next one; the part inside [start, end)."""
    charged = discharged = 0.0
    for i in range(len(times) - 1):
        overlap = min(times[i + 1], end) - max(times[i], start)
        if overlap > 0:
            joules = powers[i] * overlap / 1e9
            if joules > 0:
                charged += joules / 3600
            else:
                discharged += -joules / 3600
    return charged, discharged


def test_reports_carry_window_statistics_in_sequence(make_config, broker, probe, rig) -> None:
    config = make_config(broker.port)
    rig.stats = {"main_task": {"scans": 1234, "overruns": 0, "p99_us": 87.5}}
    backhaul, _bus, clock = rig.start(config)
    period = 30 * MS  # does not divide the 1 s window: energy must be split across window edges
    times = [k * period for k in range(102)]  # 0 .. 3.03 s: closes the windows [0,1), [1,2), [2,3)
    samples = [scan_values(k) for k in range(len(times))]
    for now, values in zip(times, samples, strict=True):
        clock.now = now
        backhaul.write_outputs(now, values)

    assert probe.wait_for(lambda: len(probe.snapshot(REPORT_TOPIC)) >= 3), probe.snapshot()
    reports = probe.json(REPORT_TOPIC)
    assert [r["seq"] for r in reports] == [1, 2, 3]
    powers = [float(v["main.site_w"]) for v in samples]  # type: ignore[arg-type]
    for index, report in enumerate(reports):
        start, end = index * S, (index + 1) * S
        assert report["schema"] == "plcrun.backhaul.report" and report["schema_version"] == 1
        assert report["gateway_id"] == GATEWAY
        assert report["window"]["start_ns"] == start and report["window"]["end_ns"] == end
        inside = [k for k, t in enumerate(times) if start <= t < end]
        assert report["window"]["scans"] == len(inside)
        hz = [samples[k]["main.grid_hz"] for k in inside]
        frequency = report["values"]["frequency_hz"]
        assert frequency["min"] == min(hz) and frequency["max"] == max(hz)  # type: ignore[type-var]
        assert math.isclose(frequency["mean"], sum(hz) / len(hz), rel_tol=1e-12)  # type: ignore[arg-type]
        assert frequency["last"] == hz[-1]
        power = report["values"]["site_power_w"]
        assert power["min"] == min(powers[k] for k in inside)
        assert power["max"] == max(powers[k] for k in inside)
        charged, discharged = held_energy_wh(times, powers, start, end)
        assert charged > 0 and discharged > 0
        assert math.isclose(power["energy"]["charged_wh"], charged, rel_tol=1e-9)
        assert math.isclose(power["energy"]["discharged_wh"], discharged, rel_tol=1e-9)
        last_flags = [samples[inside[-1]][f"main.evs[{i}].connected"] for i in range(1, 5)]
        assert report["values"]["sessions"]["last"] == sum(bool(f) for f in last_flags)
        assert report["values"]["sessions"]["max"] == max(
            sum(bool(samples[k][f"main.evs[{i}].connected"]) for i in range(1, 5)) for k in inside
        )
        assert report["scan_stats"] == rig.stats
        assert report["alarms"] == []
    assert backhaul.status().counters["tcp_nodelay"] == 1


def test_alarm_is_published_at_once_and_listed_in_the_next_report(make_config, broker, probe, rig) -> None:
    backhaul, bus, clock = rig.start(make_config(broker.port))
    backhaul.write_outputs(0, scan_values(0))  # a window is open, far from its end
    bus.raise_alarm(
        "watchdog:main_task",
        "executor",
        "scan overran 10 ms",
    )
    assert probe.wait_for(lambda: len(probe.snapshot(ALARM_TOPIC)) == 1)
    assert probe.snapshot(REPORT_TOPIC) == []  # the alarm did not wait for the report window
    alarm = probe.json(ALARM_TOPIC)[0]
    assert alarm["seq"] == 1 and alarm["type"] == "alarm"
    assert alarm["alarm"]["key"] == "watchdog:main_task" and alarm["alarm"]["active"] is True

    bus.clear("watchdog:main_task")
    bus.raise_alarm("io:meter", "modbus", "meter not answering")
    assert probe.wait_for(lambda: len(probe.snapshot(ALARM_TOPIC)) == 3)
    clock.now = 1 * S
    backhaul.write_outputs(clock.now, scan_values(1))
    assert probe.wait_for(lambda: len(probe.snapshot(REPORT_TOPIC)) == 1)
    report = probe.json(REPORT_TOPIC)[0]
    assert report["seq"] == 4
    assert [a["key"] for a in report["alarms"]] == ["io:meter"]
    states = [(a["alarm"]["key"], a["alarm"]["active"]) for a in probe.json(ALARM_TOPIC)]
    assert states == [("watchdog:main_task", True), ("watchdog:main_task", False), ("io:meter", True)]


def test_status_is_retained_online_then_offline_when_stopped(make_config, broker, rig) -> None:
    early = MqttProbe(broker.port, [STATUS_TOPIC])
    backhaul, _bus, _clock = rig.start(make_config(broker.port))
    assert early.wait_for(lambda: len(early.snapshot()) == 1)
    early.close()
    late = MqttProbe(broker.port, [STATUS_TOPIC])  # subscribes after the fact: sees the retained status
    try:
        assert late.wait_for(lambda: any(json.loads(m[1])["state"] == "online" for m in late.snapshot()))
        assert late.snapshot()[0][2] is True  # retained
        backhaul.stop()
        assert late.wait_for(lambda: json.loads(late.snapshot()[-1][1])["state"] == "offline")
        assert json.loads(late.snapshot()[-1][1])["reason"] == "stopped"
    finally:
        late.close()


def test_last_will_says_offline_when_the_process_dies(tmp_path: Path, broker: Mosquitto) -> None:
    site = write_site_config(tmp_path / "child", broker.port)
    watcher = MqttProbe(broker.port, [STATUS_TOPIC])
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.io.mqtt.backhaul_child", str(site), "0"],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.wait_for(lambda: any(b'"online"' in m[1] for m in watcher.snapshot()), 20)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert watcher.wait_for(lambda: b'"offline"' in watcher.snapshot()[-1][1], 10)
        assert json.loads(watcher.snapshot()[-1][1])["reason"] == "connection lost"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
        watcher.close()


def test_scan_side_never_waits_for_a_stalled_worker(make_config, broker, probe, rig) -> None:
    release = threading.Event()
    entered = threading.Event()

    def stalling_stats() -> dict[str, object]:
        entered.set()
        release.wait(30)  # the worker hangs here, as it would on a disk that stopped answering
        return {"stalled": True}

    backhaul, _bus, clock = rig.start(make_config(broker.port))
    backhaul._stats_provider = stalling_stats
    for k in range(101):  # window 0 and the first scan of window 1: window 0 goes to the worker
        clock.now = k * 10 * MS
        backhaul.write_outputs(clock.now, scan_values(k))
    assert entered.wait(10)  # the worker is now stuck inside the report of window 0
    finished = threading.Event()

    def scan_thread() -> None:
        for k in range(101, 2000):  # up to 19.99 s: windows 1 .. 18 close, 19 stays open
            clock.now = k * 10 * MS
            backhaul.write_outputs(clock.now, scan_values(k))
            backhaul.read_inputs(clock.now)
        finished.set()

    scanner = threading.Thread(target=scan_thread)
    scanner.start()
    scanner.join(30)
    try:
        assert finished.is_set(), "write_outputs blocked while the worker was stalled"
        dropped = backhaul.status().counters["dropped_windows"]
        # window 0's buffer went back to the pool before the stall; three more wait in the queue
        assert dropped == 19 - 4
    finally:
        release.set()
    assert probe.wait_for(lambda: len(probe.snapshot(REPORT_TOPIC)) == 4)  # windows 0..3 were queued
    clock.now = 20 * S  # closes window 19, into a buffer the worker has given back by now
    backhaul.write_outputs(clock.now, scan_values(0))
    # every window is either reported or counted as dropped, never both, never silently lost
    assert probe.wait_for(lambda: len(probe.snapshot(REPORT_TOPIC)) + dropped == 20), probe.json(REPORT_TOPIC)
    reports = probe.json(REPORT_TOPIC)
    assert [r["seq"] for r in reports] == list(range(1, len(reports) + 1))
    assert reports[-1]["backhaul"]["dropped_windows"] == dropped
    starts = [r["window"]["start_ns"] for r in reports]
    assert starts == sorted(starts) and starts[:3] == [0, S, 2 * S] and starts[-1] == 19 * S
