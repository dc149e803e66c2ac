"""The rest of the station's behaviour against a CSMS on 127.0.0.1 (OCPP 2.1): charging needs from the
session record, TriggerMessage, remote stop and start, profile reports, and profiles that stay valid
offline (for their maxOfflineDuration) and across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import SiteFactory
from ocpp.v21 import call
from rig import Site, make_config

from tests.support.csms import Csms


def station_max(pid: int, limit: float, **extra: Any) -> Any:
    schedule = {
        "id": 1,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
    }
    profile = {
        "id": pid,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [schedule],
        **extra,
    }
    return call.SetChargingProfile(evse_id=0, charging_profile=profile)


def test_charging_needs_come_from_the_session_record(csms21: Csms, start_site: SiteFactory) -> None:
    site = start_site(csms21.url)
    csms21.wait_for("StatusNotification", count=2)
    site.session(
        1,
        connected=True,
        bidirectional_allowed=True,
        soc_pct=55.0,
        e_target_wh=20000.0,
        e_min_wh=5000.0,
        e_max_wh=30000.0,
        e_v2x_min_wh=-8000.0,
        e_v2x_max_wh=25000.0,
        p_charge_max_w=11000.0,
        p_discharge_max_w=10000.0,
        departure_time=1_800_000_000,
    )
    site.scan_until(lambda: bool(csms21.of("NotifyEVChargingNeeds")))
    needs = csms21.of("NotifyEVChargingNeeds")[0]
    assert needs["evseId"] == 1
    v2x = needs["chargingNeeds"]["v2xChargingParameters"]
    assert v2x["evTargetEnergyRequest"] == 20000.0 and v2x["evMinV2XEnergyRequest"] == -8000.0
    assert v2x["maxDischargePower"] == 10000.0
    assert needs["chargingNeeds"]["requestedEnergyTransfer"] == "AC_BPT"
    assert needs["chargingNeeds"]["departureTime"].startswith("2027-01-15T08:00:00")
    site.scan_for(0.5, real_pause_s=0.002)
    assert len(csms21.of("NotifyEVChargingNeeds")) == 1  # sent again only when the requests change
    site.session(1, e_target_wh=15000.0)
    site.scan_until(lambda: len(csms21.of("NotifyEVChargingNeeds")) == 2)


def test_trigger_messages_and_a_remote_stop_and_start(csms21: Csms, start_site: SiteFactory) -> None:
    site = start_site(csms21.url)
    csms21.wait_for("StatusNotification", count=2)
    site.session(2, connected=True, p_present_w=4000.0, soc_pct=30.0, p_setpoint_w=4000.0)
    site.scan_until(lambda: bool(csms21.of("TransactionEvent")))
    tx = csms21.of("TransactionEvent")[0]["transactionInfo"]["transactionId"]
    assert (
        csms21.request(call.TriggerMessage(requested_message="MeterValues", evse={"id": 2})).status
        == "Accepted"
    )
    meter = csms21.wait_for("MeterValues")[0]
    assert meter["evseId"] == 2 and meter["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    assert csms21.request(call.TriggerMessage(requested_message="Heartbeat")).status == "Accepted"
    csms21.wait_for("Heartbeat")
    assert (
        csms21.request(call.TriggerMessage(requested_message="LogStatusNotification")).status
        == "NotImplemented"
    )

    assert csms21.request(call.RequestStopTransaction(transaction_id=tx)).status == "Accepted"
    site.scan_until(lambda: site.inputs.get("main.evs[2].p_limit_charge_w") == 0.0)
    ended = csms21.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")[0]
    assert ended["triggerReason"] == "RemoteStop" and ended["transactionInfo"]["stoppedReason"] == "Remote"
    assert site.inputs["main.evs[2].p_limit_discharge_w"] == 0.0  # held at 0 W while plugged in
    assert csms21.request(call.RequestStopTransaction(transaction_id="no-such-tx")).status == "Rejected"

    started = csms21.request(
        call.RequestStartTransaction(id_token={"idToken": "A1", "type": "Central"}, remote_start_id=7)
    )
    assert started.status == "Accepted"
    again = csms21.wait_for("TransactionEvent", lambda e: e["triggerReason"] == "RemoteStart")[0]
    assert again["transactionInfo"]["remoteStartId"] == 7 and again["seqNo"] == 0
    site.scan_until(lambda: site.inputs.get("main.evs[2].p_limit_charge_w") == 1.0e9)
    # no car without a transaction left: a remote start is refused
    refused = csms21.request(
        call.RequestStartTransaction(id_token={"idToken": "A1", "type": "Central"}, remote_start_id=8)
    )
    assert refused.status == "Rejected"


def test_profile_reports(csms21: Csms, start_site: SiteFactory) -> None:
    start_site(csms21.url)
    csms21.wait_for("StatusNotification", count=2)
    assert csms21.request(call.GetChargingProfiles(request_id=1, charging_profile={})).status == "NoProfiles"
    assert csms21.request(station_max(5, 9000.0)).status == "Accepted"
    answer = csms21.request(
        call.GetChargingProfiles(
            request_id=2, charging_profile={"chargingProfilePurpose": "ChargingStationMaxProfile"}
        )
    )
    assert answer.status == "Accepted"
    report = csms21.wait_for("ReportChargingProfiles")[0]
    assert report["requestId"] == 2 and report["evseId"] == 0
    assert report["chargingProfile"][0]["id"] == 5
    assert (
        csms21.request(
            station_max(6, 9000.0).__class__(evse_id=9, charging_profile=station_max(6, 1.0).charging_profile)
        ).status
        == "Rejected"
    )


def test_profiles_stay_valid_offline_for_their_duration_and_across_a_restart(tmp_path: Path) -> None:
    with Csms(versions=("2.1",)) as csms:
        site = Site(make_config(tmp_path, csms.url))
        try:
            csms.wait_for("StatusNotification", count=2)
            assert csms.request(station_max(1, 7000.0)).status == "Accepted"
            assert (
                csms.request(station_max(2, 5000.0, stackLevel=1, maxOfflineDuration=60)).status == "Accepted"
            )
            site.scan_until(lambda: site.inputs.get("main.ocpp_station_charge_limit_w") == 5000.0)
            csms.stop()
            site.scan_until(lambda: not site.driver.status().connected)
            # the station learns the time from the scans' snapshots, which may lag the scans by a few
            # virtual seconds on a loaded machine: the margins below are wide for that
            site.scan_for(30.0)
            assert site.inputs["main.ocpp_station_charge_limit_w"] == 5000.0  # still valid offline
            site.scan_for(40.0)  # past maxOfflineDuration: stack level 1 lapses, level 0 leads
            assert site.inputs["main.ocpp_station_charge_limit_w"] == 7000.0
            stopped_at = site.driver.wall()
        finally:
            site.close()
        # plcrun restarts 5 s later, the CSMS still down: the stored profiles apply before any CSMS
        # answers, and the offline count goes on from before the restart (level 1 has lapsed)
        restarted = Site(make_config(tmp_path, csms.url), wall_start=stopped_at + 5.0)
        try:
            restarted.scan_until(lambda: restarted.inputs.get("main.ocpp_station_charge_limit_w") is not None)
            assert restarted.inputs["main.ocpp_station_charge_limit_w"] == 7000.0
        finally:
            restarted.close()


def test_variables_choose_the_measurands_and_reach_the_program(csms21: Csms, start_site: SiteFactory) -> None:
    site = start_site(csms21.url)
    csms21.wait_for("StatusNotification", count=2)

    def set_variable(component: str, name: str, value: str) -> str:
        data = [{"attributeValue": value, "component": {"name": component}, "variable": {"name": name}}]
        answer = csms21.request(call.SetVariables(set_variable_data=data))
        return str(answer.set_variable_result[0]["attribute_status"])

    assert set_variable("SampledDataCtrlr", "TxStartedMeasurands", "SoC,Power.Active.Import") == "Accepted"
    assert set_variable("SampledDataCtrlr", "TxStartedMeasurands", "Voltage.Bogus") == "Rejected"
    assert set_variable("SmartChargingCtrlr", "Enabled", "false") == "Rejected"  # read-only
    assert set_variable("V2XChargingCtrlr", "LocalFrequencyUpdateThreshold", "20") == "Accepted"
    site.scan_until(lambda: site.inputs.get("main.local_frequency_update_threshold_mhz") == 20.0)
    site.session(1, connected=True, p_present_w=3000.0, soc_pct=61.0)
    site.scan_until(lambda: bool(csms21.of("TransactionEvent")))
    started = csms21.of("TransactionEvent")[0]
    measured = {v["measurand"]: v["value"] for v in started["meterValue"][0]["sampledValue"]}
    assert measured == {"Power.Active.Import": 3000.0, "SoC": 61.0}
