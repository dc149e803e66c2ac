"""Transaction events across a CSMS outage and a kill -9: queued in the encrypted store with their
seqNo, delivered after reconnect once each and in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SiteFactory

from tests.support.csms import Csms

HERE = Path(__file__).parent


def check_order(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Each transaction's seqNo run 0, 1, 2, ... with no gap and no repeat; returns them."""
    seqs: dict[str, list[int]] = {}
    for event in events:
        seqs.setdefault(event["transactionInfo"]["transactionId"], []).append(event["seqNo"])
    for tx, numbers in seqs.items():
        assert numbers == list(range(len(numbers))), f"{tx}: {numbers}"
    return seqs


def test_a_csms_outage_queues_events_and_delivers_them_in_order(csms: Csms, start_site: SiteFactory) -> None:
    site = start_site(csms.url)
    csms.wait_for("StatusNotification", count=2)
    site.session(1, connected=True, p_present_w=7000.0, soc_pct=50.0)
    # answered (a request in flight when the link drops is sent again: the CSMS sees its seqNo twice)
    site.scan_until(lambda: site.driver.status().counters.get("delivered") == 1)
    csms.stop()
    site.scan_until(lambda: not site.driver.status().connected)
    site.session(2, connected=True, p_present_w=3000.0, soc_pct=20.0)
    site.scan_for(2.0, real_pause_s=0.002)
    site.session(1, connected=False, p_present_w=0.0)
    site.scan_for(2.0, real_pause_s=0.002)
    site.session(2, connected=False, p_present_w=0.0)
    site.scan_until(lambda: site.driver.status().counters.get("queue_pending") == 3)
    assert len(csms.of("TransactionEvent")) == 1  # nothing got through while the CSMS was away
    csms.start()
    site.scan_until(lambda: len(csms.of("TransactionEvent")) >= 4, timeout=30)
    site.scan_for(1.0, real_pause_s=0.002)
    events = csms.of("TransactionEvent")
    assert len(events) == 4, [
        (e["eventType"], e["triggerReason"], e["evse"]["id"], e["seqNo"]) for e in events
    ]
    assert [e["eventType"] for e in events] == ["Started", "Started", "Ended", "Ended"]
    assert [e["evse"]["id"] for e in events] == [1, 2, 1, 2]
    assert [bool(e.get("offline")) for e in events] == [False, True, True, True]
    assert check_order(events)
    assert csms.connections == 2 and len(csms.of("BootNotification")) == 2
    assert site.driver.status().counters["queue_pending"] == 0


@pytest.mark.slow
def test_kill_9_loses_no_queued_event_and_repeats_none(tmp_path: Path) -> None:
    with Csms(versions=("2.0.1",)) as csms:
        csms.stop()  # down from the start: everything is queued
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.Popen(
            [sys.executable, str(HERE / "station_child.py"), csms.url, str(tmp_path), "1"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "READY"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        csms.start()
        second = subprocess.run(
            [sys.executable, str(HERE / "station_child.py"), csms.url, str(tmp_path), "2"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert second.stdout.split() == ["DELIVERED", "DONE"], second.stderr[-2000:]
        events = csms.of("TransactionEvent")
    assert [(e["eventType"], e["evse"]["id"], e["seqNo"]) for e in events] == [
        ("Started", 1, 0),
        ("Started", 2, 0),
        ("Ended", 1, 1),
        ("Ended", 2, 1),
    ]
    assert all(e.get("offline") for e in events[:3]) and not events[3].get("offline")
    seqs = check_order(events)
    assert len(seqs) == 2
    ended = {v["measurand"]: v["value"] for v in events[2]["meterValue"][0]["sampledValue"]}
    assert ended["Energy.Active.Import.Register"] > 0


def test_a_killed_station_process_is_started_again_and_delivers_its_queue(
    csms21: Csms, start_site: SiteFactory
) -> None:
    site = start_site(csms21.url)
    csms21.wait_for("StatusNotification", count=2)
    csms21.stop()
    site.scan_until(lambda: not site.driver.status().connected)
    site.session(1, connected=True, p_present_w=2000.0, soc_pct=40.0)
    site.scan_until(lambda: site.driver.status().counters.get("queue_pending") == 1)
    os.kill(site.driver._process.pid, signal.SIGKILL)  # the station process only; plcrun goes on
    site.scan_until(lambda: site.driver.status().counters.get("station_restarts") == 1)
    assert "ocpp:link" in {a.key for a in site.alarms.active()}
    csms21.start()
    site.scan_until(lambda: len(csms21.of("TransactionEvent")) >= 1, timeout=30)
    site.scan_for(0.5, real_pause_s=0.002)
    events = csms21.of("TransactionEvent")
    assert [(e["eventType"], e["seqNo"], e.get("offline")) for e in events] == [("Started", 0, True)]
    assert len(csms21.of("BootNotification")) == 2  # once per station process
