"""CSMS → station requests this station implements. Every other action of the negotiated version is
answered ``NotImplemented`` by ``rpc.Rpc`` (and an unknown one ``NotSupported``), so no request of the
CSMS goes unanswered (the ``ocpp`` package leaves 2.1 requests without a handler unanswered)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from .rpc import Handler
from .schedule import ProfileError, composite_periods, format_time, parse_profile

_TRIGGERS = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent")


def _rejected(reason: str, text: str = "") -> dict[str, Any]:
    info: dict[str, Any] = {"reasonCode": reason}
    if text:
        info["additionalInfo"] = text[:1024]
    return {"status": "Rejected", "statusInfo": info}


def _later(coroutine: Any) -> None:
    """Run after the answer went out (an answer must precede what it announces)."""
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, lambda: asyncio.ensure_future(coroutine))


def make_handlers(st: Any) -> dict[str, Handler]:
    """Handlers bound to ``st`` (a ``station.Station``; typed loosely to keep the imports one-way)."""
    config = st.config

    async def set_charging_profile(p: Mapping[str, Any]) -> dict[str, Any]:
        evse = int(p["evseId"])
        if evse > config.evses:
            return _rejected("UnknownEVSE", f"this station has EVSEs 1..{config.evses}")
        try:
            profile = parse_profile(evse, p["chargingProfile"], st.wall(), config.voltage_v, config.phases)
        except ProfileError as error:
            return _rejected("InvalidSchedule", str(error))
        if profile.transaction_id is not None:
            open_tx = st.tracker.open_transactions().get(evse)
            if open_tx is None or open_tx[0] != profile.transaction_id:
                return _rejected("TxNotFound", "no such transaction on this EVSE")
        st.profiles.install(profile)
        st.counters["profiles_set"] = st.counters.get("profiles_set", 0) + 1
        st.rebuild_plan()
        st.save_state()
        return {"status": "Accepted"}

    async def clear_charging_profile(p: Mapping[str, Any]) -> dict[str, Any]:
        criteria = p.get("chargingProfileCriteria", {})
        removed = st.profiles.clear(
            p.get("chargingProfileId"),
            criteria.get("evseId"),
            criteria.get("chargingProfilePurpose"),
            criteria.get("stackLevel"),
        )
        if not removed:
            return {"status": "Unknown"}
        st.rebuild_plan()
        st.save_state()
        return {"status": "Accepted"}

    async def get_charging_profiles(p: Mapping[str, Any]) -> dict[str, Any]:
        wanted = p["chargingProfile"]
        ids = wanted.get("chargingProfileId")
        sources = wanted.get("chargingLimitSource")
        found = [
            profile
            for profile in st.profiles.profiles.values()
            if ("evseId" not in p or profile.evse_id == p["evseId"])
            and (ids is None or profile.id in ids)
            and wanted.get("chargingProfilePurpose") in (None, profile.purpose)
            and wanted.get("stackLevel") in (None, profile.stack_level)
            and (sources is None or "CSO" in sources)
        ]
        if not found:
            return {"status": "NoProfiles"}
        by_evse: dict[int, list[Mapping[str, Any]]] = {}
        for profile in found:
            by_evse.setdefault(profile.evse_id, []).append(profile.raw)

        async def report() -> None:
            items = sorted(by_evse.items())
            for index, (evse, raws) in enumerate(items):
                payload = {
                    "requestId": p["requestId"],
                    "chargingLimitSource": "CSO",
                    "evseId": evse,
                    "chargingProfile": list(raws),
                    "tbc": index < len(items) - 1,
                }
                st.send_live("ReportChargingProfiles", payload)

        _later(report())
        return {"status": "Accepted"}

    async def get_composite_schedule(p: Mapping[str, Any]) -> dict[str, Any]:
        evse = int(p["evseId"])
        if evse > config.evses:
            return _rejected("UnknownEVSE")
        unit = p.get("chargingRateUnit", "W")
        now = float(round(st.wall()))
        duration = int(p["duration"])
        segments = st.profiles.segments(evse, now, now + duration, st.context())
        max_w = config.max_power_w * (config.evses if evse == 0 else 1)
        version = st.rpc.version if st.rpc is not None else "2.0.1"
        periods = composite_periods(
            segments, now, unit, config.voltage_v, config.phases, max_w, version == "2.1"
        )
        schedule = {
            "evseId": evse,
            "duration": duration,
            "scheduleStart": format_time(now),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }
        return {"status": "Accepted", "schedule": schedule}

    async def get_variables(p: Mapping[str, Any]) -> dict[str, Any]:
        return {"getVariableResult": [st.model.get(item) for item in p["getVariableData"]]}

    async def set_variables(p: Mapping[str, Any]) -> dict[str, Any]:
        return {"setVariableResult": [st.model.set(item) for item in p["setVariableData"]]}

    async def reset(p: Mapping[str, Any]) -> dict[str, Any]:
        if p.get("evseId"):
            return _rejected("UnsupportedRequest", "only the whole station can be reset")
        st.counters["resets"] = st.counters.get("resets", 0) + 1

        async def restart() -> None:  # a new connection and BootNotification; the sessions go on
            st.request_reconnect("RemoteReset")

        _later(restart())
        return {"status": "Accepted"}

    async def trigger_message(p: Mapping[str, Any]) -> dict[str, Any]:
        what = p["requestedMessage"]
        evse = p.get("evse", {}).get("id")
        if what not in _TRIGGERS:
            return {"status": "NotImplemented"}
        if evse is not None and not 1 <= evse <= config.evses:
            return _rejected("UnknownEVSE")
        rpc = st.rpc

        async def send() -> None:
            now = st.wall()
            evses = [evse] if evse else list(range(1, config.evses + 1))
            if what == "Heartbeat" and rpc is not None:
                await st.heartbeat(rpc)
            elif what == "BootNotification":
                st.request_reconnect("Triggered")
            elif what == "StatusNotification":
                for e in evses:
                    st.send_live(what, st.tracker.status(e, now))
            elif what == "MeterValues":
                for e in evses:
                    st.send_live(
                        what, {"evseId": e, "meterValue": [st.tracker.meter_value(e, now, "Trigger")]}
                    )
            else:
                for e in evses:
                    if st.tracker.states[e].transaction_id is not None:
                        st.enqueue(what, st.tracker.update(e, now, "Trigger", "Trigger"))

        _later(send())
        return {"status": "Accepted"}

    async def request_start(p: Mapping[str, Any]) -> dict[str, Any]:
        evse = p.get("evseId")
        candidates = [evse] if evse else list(range(1, config.evses + 1))
        for e in candidates:
            state = st.tracker.states.get(e)
            session = st.tracker.sessions.get(e)
            if state is None or session is None or not session.connected or state.transaction_id is not None:
                continue
            # the session source cannot start a car; a car still plugged in after a remote stop can resume
            state.stopped = False
            payload = st.tracker.start(e, st.wall(), "RemoteStart", remote_start_id=p["remoteStartId"])
            st.enqueue("TransactionEvent", payload)
            if "chargingProfile" in p:
                raw = dict(p["chargingProfile"], transactionId=state.transaction_id)
                with contextlib.suppress(ProfileError):
                    st.profiles.install(parse_profile(e, raw, st.wall(), config.voltage_v, config.phases))
            st.save_state()
            st.rebuild_plan()
            return {"status": "Accepted", "transactionId": state.transaction_id}
        return _rejected(
            "NoCar", "no plugged-in car without a transaction: the chargers start sessions themselves"
        )

    async def request_stop(p: Mapping[str, Any]) -> dict[str, Any]:
        for evse, (tx, _start) in st.tracker.open_transactions().items():
            if tx == p["transactionId"]:
                state = st.tracker.states[evse]
                payload = st.tracker.end(evse, st.wall(), "RemoteStop", "Remote")
                state.stopped = True  # 0 W until the car is unplugged
                st.enqueue("TransactionEvent", payload)
                st.profiles.drop_transaction(tx)
                st.save_state()
                st.rebuild_plan()
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    return {
        "SetChargingProfile": set_charging_profile,
        "ClearChargingProfile": clear_charging_profile,
        "GetChargingProfiles": get_charging_profiles,
        "GetCompositeSchedule": get_composite_schedule,
        "GetVariables": get_variables,
        "SetVariables": set_variables,
        "Reset": reset,
        "TriggerMessage": trigger_message,
        "RequestStartTransaction": request_start,
        "RequestStopTransaction": request_stop,
    }
