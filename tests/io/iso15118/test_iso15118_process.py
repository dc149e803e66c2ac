"""The driver and its SECC process (a misbehaving stand-in here, no namespace needed): garbage from the
process is dropped with an alarm, a good report reaches the program, a process that dies is an alarm
and COMM_LOST, and it is restarted; setpoints go out as checked lines."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Quality
from plcrun.io.iso15118 import Iso15118Driver, parse_iso15118_config

from tests.io.iso15118.test_iso15118_config import CATALOG

FAKE = Path(__file__).with_name("fake_secc.py")


def wait(what: str, condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_garbage_death_and_restart_of_the_secc_process(tmp_path: Path) -> None:
    sent_log = tmp_path / "sent.jsonl"
    table = {
        "python": sys.executable,
        "prefix": "main.evs",
        "restart_s": 0.3,
        "evse": {"cp1": {"interface": "veth-cp1", "slot": 1, "stop": "main.stop[1]"}},
    }
    config = parse_iso15118_config(table, "site.toml", CATALOG)
    # the stand-in writes what it receives to its "pki_path"
    object.__setattr__(config, "pki_path", str(sent_log))
    alarms = AlarmBus()
    driver = Iso15118Driver(config, alarms, worker=FAKE)
    clock = VirtualClock()
    seen: dict[str, object] = {}
    qualities: list[Quality] = []

    def scan() -> None:
        samples = driver.read_inputs(clock.now_ns())
        for path, sample in samples.items():
            seen[path] = sample.value
            if path == "main.evs[1].soc_pct":
                qualities.append(sample.quality)
        driver.write_outputs(clock.now_ns(), {"main.evs[1].p_setpoint_w": -7000.0, "main.stop[1]": True})

    driver.start(clock)
    try:
        wait("the good report", lambda: (scan(), seen.get("main.evs[1].soc_pct") == 42.0)[1])
        assert seen["main.evs[1].connected"] is True and seen["main.evs[1].p_present_w"] == -3000.0
        active = {a.key: a.message for a in alarms.active()}
        assert "iso15118:bad-message" in active
        assert driver.status().counters["bad_messages"] >= 3  # not JSON, too long, soc 250
        wait("the process alarm", lambda: (scan(), "iso15118:process" in {a.key for a in alarms.active()})[1])
        assert "exit code 3" in next(a.message for a in alarms.active() if a.key == "iso15118:process")
        assert Quality.COMM_LOST in qualities
        wait("the restart", lambda: driver.process.starts >= 2 and driver.status().connected)
        wait("GOOD again", lambda: (scan(), qualities[-1] is Quality.GOOD)[1])
        lines = [json.loads(line) for line in sent_log.read_text().splitlines()]
        assert {"t": "setpoint", "evse": "cp1", "w": -7000.0, "command": "stop"} in lines
    finally:
        driver.stop()
    assert driver.process.pid is not None
