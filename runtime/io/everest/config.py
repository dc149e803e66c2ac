"""The ``[everest]`` table of the site configuration: which broker, which EVSE modules, which EV slots.

``parse_everest_config(table, file, catalog)`` checks the table and every process-image path it implies
(``<prefix>[<slot>].<field>``) against the program's catalog and returns a frozen ``EverestConfig``, or
raises ``ConfigError(file, "everest.<key>", problem)``. docs/everest.md describes every key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..config_errors import ConfigError
from ..config_reader import FailFast, ProblemPolicy, TableReader
from ..mqtt.config import TlsConfig, parse_broker
from ..site_config_types import session_field_paths

# EV_SESSION fields the driver fills, and the IEC types each may be bound to
INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "connected": ("BOOL",),
    "bidirectional_allowed": ("BOOL",),
    "soc_pct": ("REAL", "LREAL"),
    "min_soc_pct": ("REAL", "LREAL"),
    "departure_time": ("LINT", "ULINT", "DINT", "UDINT"),
    "p_charge_max_w": ("REAL", "LREAL"),
    "p_discharge_max_w": ("REAL", "LREAL"),
    "e_target_wh": ("REAL", "LREAL"),
    "e_min_wh": ("REAL", "LREAL"),
    "e_max_wh": ("REAL", "LREAL"),
    "p_present_w": ("REAL", "LREAL"),
}
OUTPUT_FIELD = "p_setpoint_w"
_NEEDS_MIN_SOC = ("min_soc_pct", "e_min_wh")
_NUMERIC = ("SINT", "INT", "DINT", "LINT", "USINT", "UINT", "UDINT", "ULINT", "REAL", "LREAL")

# session states (EvseStateEnum) in which a car is plugged in and energy can flow
CONNECTED_STATES = (
    "Preparing",
    "AuthRequired",
    "WaitingForEnergy",
    "ChargingPausedEV",
    "ChargingPausedEVSE",
    "Charging",
)
EVSE_STATES = (
    "Unknown", "Unplugged", "Disabled", "Preparing", "Reserved", "AuthRequired", "WaitingForEnergy",
    "ChargingPausedEV", "ChargingPausedEVSE", "Charging", "AuthTimeout", "Finished", "FinishedEVSE",
    "FinishedEV",
)  # fmt: skip
LIMITS_VALID_S = 10.0  # EVerest stops the power flow when limits are not refreshed within this
_TOPIC_WORD = re.compile(r"^[^/+#\s]+$")


@dataclass(frozen=True)
class EvseConfig:
    """One EVSE: its EVerest module ids and the EV slot (``<prefix>[slot]``) it fills."""

    module: str  # evse_manager_consumer API module id
    slot: int
    limits_module: str | None  # external_energy_limits_consumer API module id; None: no setpoints
    inputs: Mapping[str, str]  # field -> process-image path
    output: str | None  # path of p_setpoint_w, when setpoints are published
    allow_discharge: bool = False
    max_discharge_w: float = 0.0
    min_soc_pct: float | None = None
    age_path: str | None = None  # <prefix>[slot].setpoint_age: kept at the age of the last published setpoint


@dataclass(frozen=True)
class EverestConfig:
    file: str
    host: str
    port: int
    tls: TlsConfig | None
    client_id: str
    keepalive_s: int
    api_type: str
    limits_api_type: str
    prefix: str
    evses: tuple[EvseConfig, ...]
    stale_after_s: float = 3.0
    refresh_s: float = 2.0
    min_interval_s: float = 0.1
    priority: int = 100
    qos: int = 0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0
    connected_states: tuple[str, ...] = CONNECTED_STATES
    connect_timeout_s: float = 5.0  # TCP, TLS, CONNACK and SUBACK of one connection attempt
    stop_timeout_s: float = 1.0

    def topic(self, module: str, direction: str, message: str, api_type: str | None = None) -> str:
        """``everest_api/1/<api_type>/<module>/<e2m|m2e>/<message>``."""
        return f"everest_api/1/{api_type or self.api_type}/{module}/{direction}/{message}"


def parse_everest_config(
    table: Mapping[str, object],
    file: str,
    catalog: Mapping[str, str],
    problems: ProblemPolicy | None = None,
) -> EverestConfig:
    """Validate the ``[everest]`` table of ``file`` against the program's ``catalog`` (fail-fast,
    or collecting into ``problems``)."""
    reader = TableReader(table, "everest", problems or FailFast(file))
    host, tls, port = parse_broker(reader, "127.0.0.1")
    client_id = reader.string("client_id", "plcrun-everest")
    keepalive_s = reader.integer("keepalive_s", 10, minimum=2, maximum=600)
    api_type = _topic_word(reader, "api_type", "evse_manager_consumer")
    limits_api_type = _topic_word(reader, "limits_api_type", "external_energy_limits_consumer")
    prefix = reader.string("prefix")
    stale_after_s = reader.number("stale_after_s", 3.0, minimum=0.1, maximum=600.0)
    refresh_s = reader.number("refresh_s", 2.0, minimum=0.1, maximum=600.0)
    if refresh_s >= LIMITS_VALID_S:
        reader.fail(
            "refresh_s",
            f"must be below {LIMITS_VALID_S:g} s: EVerest stops the power flow when limits are not "
            f"refreshed within {LIMITS_VALID_S:g} s (got {refresh_s:g})",
        )
    min_interval_s = reader.number("min_interval_s", min(0.1, refresh_s), minimum=0.0, maximum=refresh_s)
    priority = reader.integer("priority", 100, minimum=0, maximum=1000)
    qos = reader.integer("qos", 0, minimum=0, maximum=1)
    reconnect_min_s = reader.number("reconnect_min_s", 0.2, minimum=0.01, maximum=60.0)
    reconnect_max_s = reader.number("reconnect_max_s", 5.0, minimum=reconnect_min_s, maximum=600.0)
    connected_states = reader.string_list("connected_states", CONNECTED_STATES)
    for state in connected_states:
        if state not in EVSE_STATES:
            reader.fail(
                "connected_states", f"{state!r} is not an EVerest session state ({', '.join(EVSE_STATES)})"
            )
    evse_reader = reader.table("evse")
    if evse_reader is None:
        reader.fail("evse", "is required: one [everest.evse.<module id>] table per EVSE")
    evses = tuple(
        _parse_evse(module, sub, prefix, catalog, reader.key_of("prefix"))
        for module, sub in evse_reader.sub_tables()
    )
    if not evses:
        reader.fail("evse", "names no EVSE: add [everest.evse.<module id>] with slot = <index>")
    _check_unique(evses, file)
    reader.finish()
    return EverestConfig(
        file=file,
        host=host,
        port=port,
        tls=tls,
        client_id=client_id,
        keepalive_s=keepalive_s,
        api_type=api_type,
        limits_api_type=limits_api_type,
        prefix=prefix,
        evses=evses,
        stale_after_s=stale_after_s,
        refresh_s=refresh_s,
        min_interval_s=min_interval_s,
        priority=priority,
        qos=qos,
        reconnect_min_s=reconnect_min_s,
        reconnect_max_s=reconnect_max_s,
        connected_states=tuple(connected_states),
    )


def _topic_word(reader: TableReader, name: str, default: str) -> str:
    value: str = reader.string(name, default)
    if not _TOPIC_WORD.match(value):
        reader.fail(name, f"{value!r} cannot be part of an MQTT topic (no '/', '+', '#' or spaces)")
    return value


def _parse_evse(
    module: str, reader: TableReader, prefix: str, catalog: Mapping[str, str], prefix_key: str
) -> EvseConfig:
    if not _TOPIC_WORD.match(module):
        raise ConfigError(reader.file, reader.key, f"module id {module!r} cannot be part of an MQTT topic")
    slot: int = reader.integer("slot", minimum=0, maximum=1_000_000)
    limits_module = reader.string("limits_module", None)
    if limits_module is not None and not _TOPIC_WORD.match(limits_module):
        reader.fail("limits_module", f"{limits_module!r} cannot be part of an MQTT topic")
    allow_discharge: bool = reader.boolean("allow_discharge", False)
    max_discharge_w: float = reader.number("max_discharge_w", 0.0, minimum=0.0, maximum=1e7)
    min_soc_pct: float | None = reader.number("min_soc_pct", None, minimum=0.0, maximum=100.0)
    default_fields = [f for f in INPUT_FIELDS if min_soc_pct is not None or f not in _NEEDS_MIN_SOC]
    if limits_module is not None:
        default_fields.append(OUTPUT_FIELD)
    fields = list(reader.string_list("fields", tuple(default_fields)))
    for field in fields:
        if field not in INPUT_FIELDS and field != OUTPUT_FIELD:
            reader.fail(
                "fields",
                f"{field!r} is not a field the driver fills ({', '.join([*INPUT_FIELDS, OUTPUT_FIELD])})",
            )
        if field in _NEEDS_MIN_SOC and min_soc_pct is None:
            reader.fail("fields", f"{field!r} needs min_soc_pct (the V2X floor of this EVSE)")
    if OUTPUT_FIELD in fields and limits_module is None:
        reader.fail("fields", f"{OUTPUT_FIELD} is published through limits_module: set it")
    reader.finish()
    folded = {path.casefold(): path for path in catalog}
    allowed = {field: _NUMERIC if field == OUTPUT_FIELD else INPUT_FIELDS[field] for field in fields}
    paths = session_field_paths(reader, fields, prefix, slot, catalog, prefix_key, allowed)
    output = paths.pop(OUTPUT_FIELD, None)
    age_wanted = f"{prefix}[{slot}].setpoint_age"
    age_path = (catalog.get(age_wanted) and age_wanted) or folded.get(age_wanted.casefold())
    if age_path is not None and catalog[age_path].strip().upper() != "TIME":
        age_path = None
    return EvseConfig(
        module=module,
        slot=slot,
        limits_module=limits_module,
        inputs=paths,
        output=output,
        allow_discharge=allow_discharge,
        max_discharge_w=max_discharge_w,
        min_soc_pct=min_soc_pct,
        age_path=age_path if output is not None and limits_module is not None else None,
    )


def _check_unique(evses: tuple[EvseConfig, ...], file: str) -> None:
    slots: dict[int, str] = {}
    limits: dict[str, str] = {}
    for evse in evses:
        if evse.slot in slots:
            raise ConfigError(
                file,
                f"everest.evse.{evse.module}.slot",
                f"slot {evse.slot} is already used by {slots[evse.slot]}",
            )
        slots[evse.slot] = evse.module
        if evse.limits_module is not None:
            if evse.limits_module in limits:
                raise ConfigError(
                    file,
                    f"everest.evse.{evse.module}.limits_module",
                    f"{evse.limits_module} already takes the setpoints of {limits[evse.limits_module]}",
                )
            limits[evse.limits_module] = evse.module
