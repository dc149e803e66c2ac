"""Boot, heartbeat, status and transactions against a real CSMS on 127.0.0.1 (OCPP 2.0.1 and 2.1)."""

from __future__ import annotations

from typing import Any

from conftest import SiteFactory
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from tests.support.csms import Csms


def calls(csms: Csms) -> Any:
    return call21 if csms.versions == ("2.1",) else call201


def test_boot_heartbeat_and_status_for_every_evse(csms: Csms, start_site: SiteFactory) -> None:
    csms.boot_interval = 1
    site = start_site(csms.url)
    boot = csms.wait_for("BootNotification")[0]
    assert boot["reason"] == "PowerUp"
    assert boot["chargingStation"]["vendorName"] == "plcrun"
    assert csms.station_ids == ["CS-0001"]
    statuses = csms.wait_for("StatusNotification", count=2)
    assert sorted(s["evseId"] for s in statuses) == [1, 2]
    assert all(s["connectorStatus"] == "Available" for s in statuses)
    csms.wait_for("Heartbeat", count=2, timeout=10)
    assert site.driver.status().connected


def test_boot_is_repeated_at_the_interval_the_csms_gives(csms: Csms, start_site: SiteFactory) -> None:
    csms.boot_status, csms.boot_interval = "Pending", 1
    start_site(csms.url)
    csms.wait_for("BootNotification", count=2, timeout=10)
    assert csms.of("StatusNotification") == []  # nothing else before Accepted
    csms.boot_status = "Accepted"
    csms.wait_for("StatusNotification", count=2, timeout=10)


def test_a_transaction_with_meter_values(csms: Csms, start_site: SiteFactory) -> None:
    site = start_site(csms.url)
    csms.wait_for("StatusNotification", count=2)
    site.session(1, connected=True, p_present_w=7200.0, soc_pct=40.0, p_setpoint_w=7200.0)
    site.scan_until(lambda: bool(csms.of("TransactionEvent")))
    started = csms.of("TransactionEvent")[0]
    assert started["eventType"] == "Started" and started["seqNo"] == 0
    assert started["triggerReason"] == "CablePluggedIn"
    assert started["evse"] == {"id": 1, "connectorId": 1}
    tx = started["transactionInfo"]["transactionId"]
    csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    # the CSMS asks for meter values every second of (virtual) time
    C = calls(csms)
    answer = csms.request(
        C.SetVariables(
            set_variable_data=[
                {
                    "attributeValue": "1",
                    "component": {"name": "SampledDataCtrlr"},
                    "variable": {"name": "TxUpdatedInterval"},
                }
            ]
        )
    )
    assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
    site.scan_until(lambda: len(csms.of("TransactionEvent")) >= 3)
    site.session(1, connected=False, p_present_w=0.0)
    site.scan_until(lambda: any(e["eventType"] == "Ended" for e in csms.of("TransactionEvent")))
    events = csms.of("TransactionEvent")
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert {e["transactionInfo"]["transactionId"] for e in events} == {tx}
    updates = [e for e in events if e["eventType"] == "Updated"]
    assert any(e["triggerReason"] == "MeterValuePeriodic" for e in updates)
    ended = events[-1]
    assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    sampled = {v["measurand"]: v for v in ended["meterValue"][0]["sampledValue"]}
    seconds = site.scans * 0.01
    energy = sampled["Energy.Active.Import.Register"]["value"]
    assert 0 < energy <= 7200.0 * seconds / 3600.0 + 1e-6
    assert sampled["Energy.Active.Export.Register"]["value"] == 0.0
    periodic = {v["measurand"]: v["value"] for v in updates[0]["meterValue"][0]["sampledValue"]}
    assert periodic["Power.Active.Import"] == 7200.0 and periodic["SoC"] == 40.0
    # energy only grows: every event's import register is at least the one before
    registers = [
        next(
            v["value"]
            for v in e["meterValue"][0]["sampledValue"]
            if v["measurand"].startswith("Energy.Active.Import")
        )
        for e in events
    ]
    assert registers == sorted(registers)


def test_discharging_counts_as_exported_energy(csms21: Csms, start_site: SiteFactory) -> None:
    site = start_site(csms21.url)
    csms21.wait_for("StatusNotification", count=2)
    site.session(2, connected=True, p_present_w=-3600.0, soc_pct=80.0, bidirectional_allowed=True)
    site.scan_for(1.0)
    site.scan_until(lambda: bool(csms21.of("TransactionEvent")))
    site.scan_for(36.0)  # 36 s at -3600 W = 36 Wh exported
    site.session(2, connected=False)
    site.scan_until(lambda: any(e["eventType"] == "Ended" for e in csms21.of("TransactionEvent")))
    ended = csms21.of("TransactionEvent")[-1]
    sampled = {v["measurand"]: v["value"] for v in ended["meterValue"][0]["sampledValue"]}
    assert 35.0 <= sampled["Energy.Active.Export.Register"] <= 38.0
    assert sampled["Energy.Active.Import.Register"] == 0.0
