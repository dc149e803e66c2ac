"""The ``[iso15118]`` table of the site configuration: the SECC environment, the PKI, and one
``[iso15118.evse.<id>]`` table per charge point (its network interface and EV slot).

``parse_iso15118_config(table, file, catalog)`` checks the table and every process-image path it implies
(``<prefix>[<slot>].<field>``) against the program's catalog and returns a frozen ``Iso15118Config``, or
raises ``ConfigError(file, "iso15118.<key>", problem)``. docs/iso15118.md describes every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config_errors import ConfigError
from ..config_reader import FailFast, ProblemPolicy, TableReader
from ..ev_session import SETPOINT_FIELD
from ..site_config_types import session_field_paths, unknown_variable
from .wire import EV_FIELDS

DEFAULT_PYTHON = "/opt/plcrun-iso15118/bin/python"
PYTHON_ENV = "PLCRUN_ISO15118_PYTHON"  # overrides the default SECC interpreter
PROTOCOLS = ("ISO_15118_20_DC", "ISO_15118_20_AC", "ISO_15118_2", "DIN_SPEC_70121")
AUTH_MODES = ("EIM", "PNC")
CONTROL_MODES = {"scheduled": 1, "dynamic": 2}
_BOOL = ("BOOL",)
_REAL = ("REAL", "LREAL")
_INT = ("SINT", "INT", "DINT", "LINT", "USINT", "UINT", "UDINT", "ULINT")
_NUMERIC = (*_INT, "REAL", "LREAL")
# the IEC types each EV_SESSION field may be bound to
FIELD_TYPES: dict[str, tuple[str, ...]] = {
    field: _BOOL
    if field in ("connected", "bidirectional_allowed")
    else ("LINT", "ULINT", "DINT", "UDINT")
    if field == "departure_time"
    else _INT
    if field in ("protocol", "energy_mode", "control_mode", "auth_mode")
    else _REAL
    for field in EV_FIELDS  # the EV_SESSION input fields an SECC can fill (all of them)
}
_IFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")  # a Linux interface name
_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class EvseConfig:
    """One charge point: the SECC on ``interface`` fills EV slot ``<prefix>[slot]``."""

    id: str
    interface: str
    slot: int
    inputs: Mapping[str, str]  # field -> process-image path
    output: str | None  # path of p_setpoint_w
    stop: str | None  # BOOL path: TRUE ends the session
    renegotiate: str | None  # BOOL path: a rising edge asks the car to renegotiate
    pause: str | None  # BOOL path: TRUE holds the session with no energy flowing
    protocols: tuple[str, ...]
    auth_modes: tuple[str, ...]
    control_mode: int
    tls: bool
    max_charge_w: float
    max_discharge_w: float
    max_current_a: float
    max_voltage_v: float
    min_voltage_v: float
    nominal_voltage_v: float

    def worker_table(self) -> dict[str, object]:
        """What the SECC process needs of this EVSE (its config file's ``evses`` entry)."""
        return {
            "id": self.id,
            "iface": self.interface,
            "tls": self.tls,
            "protocols": list(self.protocols),
            "auth_modes": list(self.auth_modes),
            "control_mode": self.control_mode,
            "max_charge_w": self.max_charge_w,
            "max_discharge_w": self.max_discharge_w,
            "max_current_a": self.max_current_a,
            "max_voltage_v": self.max_voltage_v,
            "min_voltage_v": self.min_voltage_v,
            "nominal_voltage_v": self.nominal_voltage_v,
        }


@dataclass(frozen=True)
class Iso15118Config:
    file: str
    python: str
    pki_path: str
    tls_1_3: bool
    prefix: str
    evses: tuple[EvseConfig, ...]
    log_level: str = "WARNING"
    stale_after_s: float = 2.0
    recheck_s: float = 3600.0
    restart_s: float = 5.0
    nice: int = -10

    def worker_config(self) -> dict[str, object]:
        return {
            "pki_path": self.pki_path,
            "tls_1_3": self.tls_1_3,
            "log_level": self.log_level,
            "recheck_s": self.recheck_s,
            "nice": self.nice,
            "evses": [evse.worker_table() for evse in self.evses],
        }


def parse_iso15118_config(
    table: Mapping[str, object],
    file: str,
    catalog: Mapping[str, str],
    problems: ProblemPolicy | None = None,
) -> Iso15118Config:
    """Validate the ``[iso15118]`` table of ``file`` against the program's ``catalog`` (fail-fast
    unless ``problems`` collects)."""
    reader = TableReader(table, "iso15118", problems or FailFast(file))
    python = reader.string("python", os.environ.get(PYTHON_ENV, DEFAULT_PYTHON))
    if not Path(python).is_file():
        reader.fail(
            "python",
            f"{python} does not exist: create the SECC environment (docs/iso15118.md, "
            f"'.ci/run' makes {DEFAULT_PYTHON}) or set {PYTHON_ENV}",
        )
    pki_path = reader.string("pki_path", "")
    tls_1_3 = reader.boolean("tls_1_3", False)
    log_level = reader.string("log_level", "WARNING").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        reader.fail("log_level", f"{log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    prefix = reader.string("prefix")
    stale_after_s = reader.number("stale_after_s", 2.0, minimum=0.5, maximum=60.0)
    recheck_s = reader.number("recheck_s", 3600.0, minimum=1.0, maximum=86400.0)
    restart_s = reader.number("restart_s", 5.0, minimum=0.1, maximum=600.0)
    nice = reader.integer("nice", -10, minimum=-20, maximum=19)
    evse_reader = reader.table("evse")
    if evse_reader is None:
        reader.fail("evse", "is required: one [iso15118.evse.<id>] table per charge point")
    evses = tuple(
        _parse_evse(name, sub, prefix, catalog, reader.key_of("prefix"))
        for name, sub in evse_reader.sub_tables()
    )
    if not evses:
        reader.fail("evse", "names no charge point: add [iso15118.evse.<id>] with interface and slot")
    if any(evse.tls for evse in evses) and not pki_path:
        reader.fail("pki_path", "is required when an EVSE has tls = true")
    reader.finish()
    _check_unique(evses, file)
    return Iso15118Config(
        file=file,
        python=python,
        pki_path=pki_path,
        tls_1_3=tls_1_3,
        prefix=prefix,
        evses=evses,
        log_level=log_level,
        stale_after_s=stale_after_s,
        recheck_s=recheck_s,
        restart_s=restart_s,
        nice=nice,
    )


def _parse_evse(
    name: str, reader: TableReader, prefix: str, catalog: Mapping[str, str], prefix_key: str
) -> EvseConfig:
    if not _ID.match(name):
        raise ConfigError(reader.file, reader.key, f"EVSE id {name!r}: letters, digits, '-' and '_' only")
    interface = reader.string("interface")
    if not _IFACE.match(interface):
        reader.fail("interface", f"{interface!r} is not a network interface name")
    slot = reader.integer("slot", minimum=0, maximum=1_000_000)
    protocols = tuple(reader.string_list("protocols", ("ISO_15118_20_DC", "ISO_15118_2")))
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            reader.fail("protocols", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
    auth_modes = tuple(mode.upper() for mode in reader.string_list("auth_modes", ("EIM",)))
    for mode in auth_modes:
        if mode not in AUTH_MODES:
            reader.fail("auth_modes", f"{mode!r} is not EIM or PNC")
    control = reader.string("control_mode", "dynamic")
    if control not in CONTROL_MODES:
        reader.fail("control_mode", f"{control!r} is not 'dynamic' or 'scheduled'")
    tls = reader.boolean("tls", False)
    if "PNC" in auth_modes and not tls:
        reader.fail("auth_modes", "Plug & Charge (PNC) needs tls = true")
    max_charge_w = reader.number("max_charge_w", 11000.0, minimum=0.0, maximum=1e6)
    max_discharge_w = reader.number("max_discharge_w", 0.0, minimum=0.0, maximum=1e6)
    max_current_a = reader.number("max_current_a", 32.0, minimum=0.1, maximum=1000.0)
    max_voltage_v = reader.number("max_voltage_v", 500.0, minimum=1.0, maximum=1500.0)
    min_voltage_v = reader.number("min_voltage_v", 150.0, minimum=0.0, maximum=max_voltage_v)
    nominal_voltage_v = reader.number("nominal_voltage_v", 400.0, minimum=1.0, maximum=1500.0)
    fields = list(reader.string_list("fields", (*FIELD_TYPES, SETPOINT_FIELD)))
    for field in fields:
        if field not in FIELD_TYPES and field != SETPOINT_FIELD:
            reader.fail("fields", f"{field!r} is not a field the driver fills ({', '.join(FIELD_TYPES)})")
    stop = _bool_path(reader, "stop", catalog)
    renegotiate = _bool_path(reader, "renegotiate", catalog)
    pause = _bool_path(reader, "pause", catalog)
    reader.finish()
    allowed = {field: _NUMERIC if field == SETPOINT_FIELD else FIELD_TYPES[field] for field in fields}
    paths = session_field_paths(reader, fields, prefix, slot, catalog, prefix_key, allowed)
    return EvseConfig(
        id=name,
        interface=interface,
        slot=slot,
        inputs={f: p for f, p in paths.items() if f != SETPOINT_FIELD},
        output=paths.get(SETPOINT_FIELD),
        stop=stop,
        renegotiate=renegotiate,
        pause=pause,
        protocols=protocols,
        auth_modes=auth_modes,
        control_mode=CONTROL_MODES[control],
        tls=tls,
        max_charge_w=max_charge_w,
        max_discharge_w=max_discharge_w,
        max_current_a=max_current_a,
        max_voltage_v=max_voltage_v,
        min_voltage_v=min_voltage_v,
        nominal_voltage_v=nominal_voltage_v,
    )


def _lookup(wanted: str, catalog: Mapping[str, str]) -> str | None:
    if wanted in catalog:
        return wanted
    folded = wanted.casefold()
    return next((path for path in catalog if path.casefold() == folded), None)


def _bool_path(reader: TableReader, name: str, catalog: Mapping[str, str]) -> str | None:
    wanted = reader.string(name, None)
    if wanted is None:
        return None
    path = _lookup(wanted, catalog)
    if path is None:
        reader.fail(name, unknown_variable(wanted, catalog))
    if catalog[path].strip().upper() != "BOOL":
        reader.fail(name, f"{path} is {catalog[path]}, but {name} needs BOOL")
    return path


def _check_unique(evses: tuple[EvseConfig, ...], file: str) -> None:
    slots: dict[int, str] = {}
    interfaces: dict[str, str] = {}
    for evse in evses:
        if evse.slot in slots:
            raise ConfigError(
                file,
                f"iso15118.evse.{evse.id}.slot",
                f"slot {evse.slot} is already used by {slots[evse.slot]}",
            )
        if evse.interface in interfaces:
            raise ConfigError(
                file,
                f"iso15118.evse.{evse.id}.interface",
                f"{evse.interface} already carries {interfaces[evse.interface]}: one SECC per interface",
            )
        slots[evse.slot] = evse.id
        interfaces[evse.interface] = evse.id
