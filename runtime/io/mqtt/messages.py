"""The JSON documents the backhaul publishes (schema version 1, described in docs/mqtt.md).

Every report and alarm carries the gateway id, the buffer's stream id and a sequence number; the
document is built once, stored encrypted, and published byte for byte the same however often it is
re-sent, so its timestamps are those of the moment it was made.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ...executor.alarms import Alarm

SCHEMA_VERSION = 1
REPORT_SCHEMA = "plcrun.backhaul.report"
ALARM_SCHEMA = "plcrun.backhaul.alarm"
STATUS_SCHEMA = "plcrun.backhaul.status"


def _finite(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def encode(document: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; unknown objects become strings, non-finite numbers null."""
    try:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(document), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode()


def _header(schema: str, kind: str, gateway_id: str, stream: str, seq: int, time: float) -> dict[str, Any]:
    return {
        "schema": schema,
        "schema_version": SCHEMA_VERSION,
        "type": kind,
        "gateway_id": gateway_id,
        "stream": stream,
        "seq": seq,
        "time": time,
    }


def report_document(
    *,
    gateway_id: str,
    stream: str,
    seq: int,
    time: float,
    window: Mapping[str, Any],
    values: Mapping[str, Any],
    scan_stats: Mapping[str, Any] | None,
    alarms: list[Alarm] | None,
    backhaul: Mapping[str, Any],
) -> dict[str, Any]:
    document = _header(REPORT_SCHEMA, "report", gateway_id, stream, seq, time)
    document["window"] = dict(window)
    document["values"] = dict(values)
    if scan_stats is not None:
        document["scan_stats"] = dict(scan_stats)
    if alarms is not None:
        document["alarms"] = [alarm.to_json() for alarm in alarms]
    document["backhaul"] = dict(backhaul)
    return document


def alarm_document(*, gateway_id: str, stream: str, seq: int, alarm: Alarm) -> dict[str, Any]:
    document = _header(ALARM_SCHEMA, "alarm", gateway_id, stream, seq, alarm.wall_time)
    document["alarm"] = alarm.to_json()
    return document


def status_document(*, gateway_id: str, state: str, time: float, reason: str = "") -> dict[str, Any]:
    return {
        "schema": STATUS_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "type": "status",
        "gateway_id": gateway_id,
        "state": state,
        "time": time,
        "reason": reason,
    }
