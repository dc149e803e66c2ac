"""EV sessions of the site program as OCPP transactions: status, TransactionEvent and MeterValues payloads.

A transaction starts when an EVSE's ``connected`` rises (TxStartPoint ``EVConnected``) and ends when it
falls (or on RequestStopTransaction). The scan thread integrates energy charged and discharged per
EVSE from the signed ``p_present_w`` (P > 0 charges) in executor time; the tracker adds what each
snapshot brings to registers that only grow and survive restarts (part of the persisted state). ``seqNo``
starts at 0 for every transaction and counts each of its events.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from .schedule import format_time

MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Power.Active.Export",
    "SoC",
)
_UNITS = {"Energy": "Wh", "Power": "W", "SoC": "Percent"}


@dataclass
class Session:
    """One EVSE's view of its EV session (fields of EV_SESSION, None when the program lacks one)."""

    connected: bool = False
    bidirectional_allowed: bool | None = None
    soc_pct: float | None = None
    p_present_w: float | None = None
    p_setpoint_w: float | None = None
    p_charge_max_w: float | None = None
    p_discharge_max_w: float | None = None
    e_target_wh: float | None = None
    e_min_wh: float | None = None
    e_max_wh: float | None = None
    e_v2x_min_wh: float | None = None
    e_v2x_max_wh: float | None = None
    departure_time: int | None = None
    # energy integrated on the scan thread since the driver started (Wh, only grows)
    charged_wh: float = 0.0
    discharged_wh: float = 0.0


@dataclass
class EvseState:
    """Persisted per EVSE: meter registers and the open transaction."""

    charged_wh: float = 0.0
    discharged_wh: float = 0.0
    transaction_id: str | None = None
    started_at: float = 0.0
    seq_no: int = 0
    charging_state: str = "Idle"
    stopped: bool = False  # stopped remotely while still plugged in: no new transaction until unplugged
    remote_start_id: int | None = None


@dataclass
class Tracker:
    """All EVSEs. ``observe`` turns a snapshot into the events it implies (network thread only)."""

    evses: int
    states: dict[int, EvseState] = field(default_factory=dict)
    sessions: dict[int, Session] = field(default_factory=dict)
    last_t: float | None = None
    known: bool = False  # a snapshot has been seen since start
    measurands: dict[str, tuple[str, ...]] = field(
        default_factory=dict
    )  # context -> reported (all if absent)

    def __post_init__(self) -> None:
        for evse in range(1, self.evses + 1):
            self.states.setdefault(evse, EvseState())
            self.sessions.setdefault(evse, Session())

    # ---- persistence ----
    def to_json(self) -> dict[str, Any]:
        return {str(evse): asdict(state) for evse, state in self.states.items()}

    def load_json(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            evse = int(key)
            if 1 <= evse <= self.evses and isinstance(value, dict):
                allowed = {k: v for k, v in value.items() if k in EvseState.__dataclass_fields__}
                self.states[evse] = EvseState(**allowed)

    def open_transactions(self) -> dict[int, tuple[str, float]]:
        return {
            evse: (s.transaction_id, s.started_at)
            for evse, s in self.states.items()
            if s.transaction_id is not None
        }

    # ---- events ----
    def observe(self, t: float, sessions: dict[int, Session]) -> list[tuple[str, dict[str, Any]]]:
        """New snapshot at wall time ``t``: integrate energy, return (action, payload) events."""
        events: list[tuple[str, dict[str, Any]]] = []
        self.last_t = t
        for evse, session in sessions.items():
            state = self.states.get(evse)
            if state is None:
                continue
            previous = self.sessions.get(evse, Session())
            if self.known:  # the registers grow by what the scan thread integrated since last time
                state.charged_wh += max(session.charged_wh - previous.charged_wh, 0.0)
                state.discharged_wh += max(session.discharged_wh - previous.discharged_wh, 0.0)
            self.sessions[evse] = session
            first = not self.known
            if first or session.connected != previous.connected:
                events.append(("StatusNotification", self.status(evse, t)))
            if session.connected and state.transaction_id is None and not state.stopped:
                events.append(("TransactionEvent", self.start(evse, t, "CablePluggedIn")))
            elif not session.connected and state.transaction_id is not None:
                reason = "PowerLoss" if first else "EVDisconnected"
                trigger = "AbnormalCondition" if first else "EVCommunicationLost"
                events.append(("TransactionEvent", self.end(evse, t, trigger, reason)))
            elif state.transaction_id is not None:
                charging = self.charging_state(session)
                if charging != state.charging_state:
                    state.charging_state = charging
                    events.append(("TransactionEvent", self.update(evse, t, "ChargingStateChanged")))
            if not session.connected:
                state.stopped = False
        self.known = True
        return events

    @staticmethod
    def charging_state(session: Session) -> str:
        if not session.connected:
            return "Idle"
        power = session.p_present_w
        if power is not None and math.isfinite(power) and abs(power) >= 1.0:
            return "Charging"  # energy flows (either way: OCPP 2.x has no separate discharging state)
        setpoint = session.p_setpoint_w
        if setpoint is not None and abs(setpoint) >= 1.0:
            return "SuspendedEV"  # asked for power, the car takes none
        return "SuspendedEVSE"

    def status(self, evse: int, t: float) -> dict[str, Any]:
        connected = self.sessions[evse].connected
        return {
            "timestamp": format_time(t),
            "connectorStatus": "Occupied" if connected else "Available",
            "evseId": evse,
            "connectorId": 1,
        }

    def meter_value(self, evse: int, t: float, context: str) -> dict[str, Any]:
        state, session = self.states[evse], self.sessions[evse]
        values: dict[str, float] = {
            "Energy.Active.Import.Register": state.charged_wh,
            "Energy.Active.Export.Register": state.discharged_wh,
        }
        power = session.p_present_w
        if power is not None and math.isfinite(power):
            values["Power.Active.Import"] = max(power, 0.0)
            values["Power.Active.Export"] = max(-power, 0.0)
        if session.soc_pct is not None and math.isfinite(session.soc_pct):
            values["SoC"] = min(max(session.soc_pct, 0.0), 100.0)
        wanted = self.measurands.get(context)
        if wanted is not None:
            chosen = {name: value for name, value in values.items() if name in wanted}
            values = chosen or {"Energy.Active.Import.Register": state.charged_wh}  # at least one value
        sampled = [
            {
                "value": round(value, 3),
                "measurand": name,
                "context": context,
                "unitOfMeasure": {"unit": _UNITS[name.split(".")[0]]},
            }
            for name, value in values.items()
        ]
        return {"timestamp": format_time(t), "sampledValue": sampled}

    def _event(
        self, evse: int, t: float, event_type: str, trigger: str, context: str, **info: Any
    ) -> dict[str, Any]:
        state = self.states[evse]
        assert state.transaction_id is not None
        transaction: dict[str, Any] = {"transactionId": state.transaction_id, **info}
        transaction.setdefault("chargingState", state.charging_state)
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": format_time(t),
            "triggerReason": trigger,
            "seqNo": state.seq_no,
            "transactionInfo": transaction,
            "evse": {"id": evse, "connectorId": 1},
            "meterValue": [self.meter_value(evse, t, context)],
        }
        state.seq_no += 1
        return payload

    def start(self, evse: int, t: float, trigger: str, remote_start_id: int | None = None) -> dict[str, Any]:
        state = self.states[evse]
        state.transaction_id = str(uuid.uuid4())
        state.started_at = t
        state.seq_no = 0
        state.charging_state = self.charging_state(self.sessions[evse])
        payload = self._event(evse, t, "Started", trigger, "Transaction.Begin")
        if remote_start_id is not None:
            payload["transactionInfo"]["remoteStartId"] = remote_start_id
        return payload

    def update(self, evse: int, t: float, trigger: str, context: str = "Sample.Periodic") -> dict[str, Any]:
        return self._event(evse, t, "Updated", trigger, context)

    def end(self, evse: int, t: float, trigger: str, reason: str) -> dict[str, Any]:
        state = self.states[evse]
        payload = self._event(
            evse, t, "Ended", trigger, "Transaction.End", stoppedReason=reason, chargingState="Idle"
        )
        state.transaction_id = None
        state.charging_state = "Idle"
        return payload

    def periodic_updates(self, t: float) -> list[tuple[str, dict[str, Any]]]:
        """Updated events with meter values for every open transaction (TxUpdatedInterval)."""
        return [
            ("TransactionEvent", self.update(evse, t, "MeterValuePeriodic"))
            for evse, state in self.states.items()
            if state.transaction_id is not None
        ]

    def aligned_meter_values(self, t: float) -> list[tuple[str, dict[str, Any]]]:
        """MeterValues (clock-aligned, outside transactions' own events) for every EVSE."""
        return [
            ("MeterValues", {"evseId": evse, "meterValue": [self.meter_value(evse, t, "Sample.Clock")]})
            for evse in self.states
        ]
