"""EVerest API messages: checking what arrives (``e2m``) and building what plcrun sends (``m2e``).

The checks are written from the published EVerest API definitions (evse_manager_consumer_API:
``SessionInfo``, ``EVInfo``, ``Powermeter``, ``SupportedEnergyTransferModeList``;
external_energy_limits_consumer_API: ``ExternalLimits``). Each ``*_facts`` function returns the facts
a message carries and, per fact, why it could not be used. Signs: P > 0 charges the car (import),
P < 0 discharges it, as in EVerest's ``total_power_W`` and ``latest_total_w``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from ..json_input import JsonRejected, loads_bounded
from .config import EVSE_STATES

MAX_MESSAGE_BYTES = 64 * 1024

Facts = dict[str, object]
Problems = dict[str, str]

_EV_NUMBERS = {  # EVInfo key -> fact
    "maximum_power_limit": "car_charge_max_w",
    "maximum_discharge_power_limit": "car_discharge_max_w",  # not in EVInfo 1.0; used when present
    "remaining_energy_needed": "remaining_wh",
    "battery_capacity": "capacity_wh",
}


def decode_json(payload: bytes) -> tuple[Any, str | None]:
    """The JSON value of a payload, or why it is not JSON plcrun accepts (too large, nested too
    deep, numbers out of range: ``json_input``)."""
    try:
        return loads_bounded(payload, max_bytes=MAX_MESSAGE_BYTES), None
    except JsonRejected as error:
        return None, str(error)


def _number(doc: Mapping[str, Any], key: str) -> float | str | None:
    """The finite number under ``key``, None when absent, or a reason when unusable."""
    if key not in doc:
        return None
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} must be a number, not {json.dumps(value)[:40]}"
    if not math.isfinite(value):
        return f"{key} must be finite"
    return float(value)


def session_facts(doc: object) -> tuple[Facts, Problems]:
    """``state`` and ``latest_total_w`` of ``e2m/session_info`` (both required by the schema)."""
    if not isinstance(doc, dict):
        return {}, {
            "state": "session_info must be a JSON object",
            "present_w": "session_info must be a JSON object",
        }
    facts: Facts = {}
    problems: Problems = {}
    state = doc.get("state")
    if not isinstance(state, str) or state not in EVSE_STATES:
        problems["state"] = f"state {json.dumps(state)[:40]} is not an EVerest session state"
    else:
        facts["state"] = state
    power = _number(doc, "latest_total_w")
    if power is None:
        problems["present_w"] = "latest_total_w is missing"
    elif isinstance(power, str):
        problems["present_w"] = power
    else:
        facts["present_w"] = power
    return facts, problems


def ev_facts(doc: object) -> tuple[Facts, Problems]:
    """The facts of ``e2m/ev_info`` (every key is optional: an absent one is simply not a fact)."""
    if not isinstance(doc, dict):
        reason = "ev_info must be a JSON object"
        return {}, dict.fromkeys(("soc", "departure", *_EV_NUMBERS.values()), reason)
    facts: Facts = {}
    problems: Problems = {}
    soc = _number(doc, "soc")
    if isinstance(soc, str):
        problems["soc"] = soc
    elif soc is not None:
        if 0.0 <= soc <= 100.0:
            facts["soc"] = soc
        else:
            problems["soc"] = f"soc {soc:g} is outside 0..100 %"
    for key, fact in _EV_NUMBERS.items():
        value = _number(doc, key)
        if isinstance(value, str):
            problems[fact] = value
        elif value is not None:
            facts[fact] = abs(value)  # limits and energies are magnitudes
    if "departure_time" in doc:
        departure = parse_time(doc["departure_time"])
        if departure is None:
            problems["departure"] = (
                f"departure_time {json.dumps(doc['departure_time'])[:40]} is not an RFC 3339 time"
            )
        else:
            facts["departure"] = departure
    return facts, problems


def powermeter_facts(doc: object) -> tuple[Facts, Problems]:
    """``power_W.total`` of ``e2m/powermeter`` (optional in the schema: absent is not a problem)."""
    if not isinstance(doc, dict):
        return {}, {"present_w": "powermeter must be a JSON object"}
    power = doc.get("power_W")
    if power is None:
        return {}, {}
    if not isinstance(power, dict):
        return {}, {"present_w": "power_W must be an object with 'total'"}
    total = _number(power, "total")
    if isinstance(total, str):
        return {}, {"present_w": f"power_W.{total}"}
    return ({"present_w": total} if total is not None else {}), {}


def modes_facts(doc: object) -> tuple[Facts, Problems]:
    """``e2m/supported_energy_transfer_modes``: bidirectional when a ``*_BPT`` mode is offered."""
    if not isinstance(doc, list) or not all(isinstance(mode, str) for mode in doc):
        return {}, {"bpt": "supported_energy_transfer_modes must be a list of strings"}
    return {"bpt": any(mode.endswith("_BPT") for mode in doc)}, {}


def parse_time(value: object) -> int | None:
    """Seconds since the epoch of an RFC 3339 date-time (``2025-04-28T16:00:00Z``), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())


def iso_utc(wall_time_s: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2025-04-28T16:00:00.123Z``."""
    moment = dt.datetime.fromtimestamp(wall_time_s, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def limits_document(
    power_w: float, priority: int, wall_time_s: float, source: str = "plcrun"
) -> dict[str, Any]:
    """``m2e/set_external_limits`` for one EVSE: the setpoint, and import/export limits that allow
    exactly that much (so an EVerest without setpoint support cannot exceed it either)."""
    stamp = iso_utc(wall_time_s)
    import_w = max(power_w, 0.0)
    export_w = max(-power_w, 0.0)

    def entry(limit_w: float) -> dict[str, Any]:
        limit = {"total_power_W": {"value": limit_w, "source": source}}
        return {"timestamp": stamp, "limits_to_root": limit, "limits_to_leaves": limit}

    return {
        "schedule_import": [entry(import_w)],
        "schedule_export": [entry(export_w)],
        "schedule_setpoints": [
            {
                "timestamp": stamp,
                "setpoint": {"total_power_W": power_w, "priority": priority, "source": source},
            }
        ],
    }
