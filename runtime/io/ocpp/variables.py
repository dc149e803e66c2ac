"""The station's device-model variables that GetVariables/SetVariables reach (component.variable).

Only the Actual attribute exists. Writable values are checked and kept in the station state (they
survive restarts); unknown components and variables are answered as the specification asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .transactions import MEASURANDS


def _int(low: int, high: int) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        try:
            value = int(text)
        except ValueError:
            return None
        return str(value) if low <= value <= high else None

    return check


def _number(low: float, high: float) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        try:
            value = float(text)
        except ValueError:
            return None
        return f"{value:g}" if low <= value <= high else None

    return check


def _measurands(text: str) -> str | None:
    items = [item.strip() for item in text.split(",") if item.strip()]
    return ",".join(items) if all(item in MEASURANDS for item in items) else None


@dataclass(frozen=True)
class Variable:
    component: str
    name: str
    check: Callable[[str], str | None] | None  # None: read-only


VARIABLES = {
    (v.component, v.name): v
    for v in (
        Variable("OCPPCommCtrlr", "HeartbeatInterval", _int(1, 86400)),
        Variable("OCPPCommCtrlr", "MessageTimeout", _int(1, 600)),
        Variable("SampledDataCtrlr", "TxUpdatedInterval", _int(1, 86400)),
        Variable("SampledDataCtrlr", "TxUpdatedMeasurands", _measurands),
        Variable("SampledDataCtrlr", "TxStartedMeasurands", _measurands),
        Variable("SampledDataCtrlr", "TxEndedMeasurands", _measurands),
        Variable("AlignedDataCtrlr", "Interval", _int(0, 86400)),
        Variable("AlignedDataCtrlr", "Measurands", _measurands),
        Variable("V2XChargingCtrlr", "LocalFrequencyUpdateThreshold", _number(0.0, 10000.0)),
        Variable("SmartChargingCtrlr", "Enabled", None),
        Variable("SmartChargingCtrlr", "RateUnit", None),
        Variable("TxCtrlr", "TxStartPoint", None),
        Variable("TxCtrlr", "TxStopPoint", None),
        Variable("SecurityCtrlr", "SecurityProfile", None),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", None),
    )
}


class DeviceModel:
    """Current values (strings, as on the wire); ``on_change`` hears every accepted write."""

    def __init__(self, values: Mapping[str, str], on_change: Callable[[str, str, str], None]) -> None:
        self.values = dict(values)
        self._on_change = on_change

    def get(self, item: Mapping[str, Any]) -> dict[str, Any]:
        result, key = _address(item)
        if key is None:
            return result
        return {**result, "attributeStatus": "Accepted", "attributeValue": self.values.get(_join(key), "")}

    def set(self, item: Mapping[str, Any]) -> dict[str, Any]:
        result, key = _address(item)
        if key is None:
            return result
        spec = VARIABLES[key]
        if spec.check is None:
            return {
                **result,
                "attributeStatus": "Rejected",
                "attributeStatusInfo": {"reasonCode": "ReadOnly"},
            }
        value = spec.check(str(item["attributeValue"]))
        if value is None:
            return {
                **result,
                "attributeStatus": "Rejected",
                "attributeStatusInfo": {"reasonCode": "InvalidValue"},
            }
        self.values[_join(key)] = value
        self._on_change(key[0], key[1], value)
        return {**result, "attributeStatus": "Accepted"}

    def number(self, component: str, name: str, default: float) -> float:
        try:
            return float(self.values.get(f"{component}.{name}", default))
        except ValueError:
            return default


def _join(key: tuple[str, str]) -> str:
    return f"{key[0]}.{key[1]}"


def _address(item: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The answer's component/variable part and the known variable a Get/Set item names, or the
    finished answer (NotSupportedAttributeType, UnknownComponent, UnknownVariable) and None."""
    component, variable = item["component"], item["variable"]
    result: dict[str, Any] = {"component": component, "variable": variable}
    if item.get("attributeType", "Actual") != "Actual":
        return {**result, "attributeStatus": "NotSupportedAttributeType"}, None
    key = (component["name"], variable["name"])
    if not any(c == key[0] for c, _n in VARIABLES):
        return {**result, "attributeStatus": "UnknownComponent"}, None
    if key not in VARIABLES or "instance" in variable:
        return {**result, "attributeStatus": "UnknownVariable"}, None
    return result, key
