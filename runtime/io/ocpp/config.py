"""The ``[ocpp]`` table of the site configuration: which CSMS, how securely, which EVSEs, which ST variables.

``parse_ocpp_config(table, file, catalog)`` checks the whole table (collect-all: every problem is
reported with file, dotted key and problem) and every process-image path it implies against the
program's catalog, and returns a frozen ``OcppConfig``. docs/ocpp.md describes every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..config_errors import ConfigError
from ..config_reader import CollectAll, ConfigProblems, FailFast, TableReader, is_loopback
from ..credentials import OCPP_PASSWORD, find_credential
from ..mqtt.config import BufferConfig, TlsConfig, _parse_buffer, client_context, parse_tls
from ..site_config_types import unknown_variable

VERSIONS = ("2.1", "2.0.1")  # subprotocols ocpp2.1 / ocpp2.0.1
# EV_SESSION fields the driver reads (when the program has them) to report sessions to the CSMS
SESSION_FIELDS = (
    "connected",
    "bidirectional_allowed",
    "soc_pct",
    "p_present_w",
    "p_setpoint_w",
    "p_charge_max_w",
    "p_discharge_max_w",
    "e_target_wh",
    "e_min_wh",
    "e_max_wh",
    "e_v2x_min_wh",
    "e_v2x_max_wh",
    "departure_time",
)
# EV_SESSION fields the driver writes: the EVSE's composite-schedule limits
LIMIT_FIELDS = ("p_limit_charge_w", "p_limit_discharge_w")
# program variables the driver writes when the program has them (name -> default variable name)
STATION_VARIABLES = {
    "station_charge_limit": "ocpp_station_charge_limit_w",
    "station_discharge_limit": "ocpp_station_discharge_limit_w",
    "operation_mode": "ocpp_mode",
    "setpoint": "ocpp_setpoint_w",
    "curve_hz": "v2x_curve_hz",
    "curve_w": "v2x_curve_w",
    "curve_points": "v2x_curve_points",
    "baseline": "v2x_baseline_w",
    "update_threshold": "local_frequency_update_threshold_mhz",
}
_ID = re.compile(r"^[A-Za-z0-9._\-:*@+|]{1,48}$")  # identifierString of OCPP 2.x, 48 characters at most


class OcppConfigError(ConfigProblems):
    subject = "the [ocpp] table"


class _Problems(CollectAll):
    error_type = OcppConfigError


@dataclass(frozen=True)
class OcppConfig:
    file: str
    url: str  # ws(s)://host:port/path, the station id is appended
    host: str
    port: int
    station_id: str
    versions: tuple[str, ...]
    security_profile: int
    store: BufferConfig
    evses: int  # EVSE i is EV session <prefix>[i]
    prefix: str
    session_paths: Mapping[int, Mapping[str, str]]  # evse -> field -> path read from the program
    limit_paths: Mapping[int, Mapping[str, str]]  # evse -> limit field -> path written
    station_paths: Mapping[str, str]  # STATION_VARIABLES key -> path (curve_hz/curve_w: array base)
    curve_slots: int = 0  # elements of the curve arrays (1-based)
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    ca_file: Path | None = None  # security profile 2: the CSMS is verified, no client certificate
    vendor: str = "plcrun"
    model: str = "plcrun-gateway"
    serial_number: str | None = None
    firmware_version: str | None = None
    heartbeat_interval_s: int = 300
    boot_retry_s: int = 30
    sample_interval_s: int = 60  # SampledDataTxUpdatedInterval
    aligned_interval_s: int = 900  # AlignedDataInterval (periodic MeterValues); 0 = off
    snapshot_interval_s: float = 0.1  # how often the scan thread hands a session snapshot over
    response_timeout_s: float = 30.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    voltage_v: float = 230.0  # W = A x voltage_v x phases for profiles in amperes
    phases: int = 3
    max_power_w: float = 22000.0  # per EVSE, reported where no profile limits (GetCompositeSchedule)
    max_message_bytes: int = 256 * 1024
    transaction_attempts: int = 3  # TransactionEvent tries on a CallError before it is dropped

    def output_paths(self) -> frozenset[str]:
        return frozenset(p for fields in self.session_paths.values() for p in fields.values())

    def input_paths(self) -> frozenset[str]:
        paths = {p for fields in self.limit_paths.values() for p in fields.values()}
        for name, path in self.station_paths.items():
            if name in ("curve_hz", "curve_w"):
                paths.update(f"{path}[{i}]" for i in range(1, self.curve_slots + 1))
            else:
                paths.add(path)
        return frozenset(paths)

    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/" + self.station_id


def _lookup(catalog: Mapping[str, str], folded: Mapping[str, str], path: str) -> str | None:
    if path in catalog:
        return path
    return folded.get(path.casefold())


def _password(reader: TableReader) -> str | None:
    has_file, has_env = reader.has("password_file"), reader.has("password_env")
    if has_file and has_env:
        reader.problem("password_file", "give only one of password_file or password_env")
        return None
    if has_file:
        path = reader.existing_file("password_file", None, private=True)
        if path is None:
            return None
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    elif has_env:
        variable = reader.string("password_env", "")
        text = os.environ.get(variable, "")
        if not text:
            reader.problem("password_env", f"environment variable {variable} is not set")
            return None
    else:
        credential = find_credential(OCPP_PASSWORD)  # the unit's LoadCredentialEncrypted=ocpp-password
        if credential is None:
            return None
        text = credential.read_text(encoding="utf-8", errors="replace").strip()
    if not 16 <= len(text) <= 40:  # BasicAuthPassword: passwordString of 16..40 characters
        key = "password_file" if has_file else "password_env"
        reader.problem(key, f"the password must have 16 to 40 characters, it has {len(text)}")
        return None
    return text


def _sub_table(reader: TableReader, name: str, parse: object, problems: _Problems) -> object:
    """Parse ``[ocpp.<name>]`` with the shared fail-fast parser; its first problem joins the others."""
    table = reader.raw_table(name)
    if table is None:
        return None
    sub = TableReader(table, reader.key_of(name), FailFast(reader.file))
    try:
        return parse(sub)  # type: ignore[operator]
    except ConfigError as error:
        problems.add(error.key, error.problem)
        return None


def parse_ocpp_config(table: Mapping[str, object], file: str, catalog: Mapping[str, str]) -> OcppConfig:
    """Validate the ``[ocpp]`` table of ``file``; raise ``OcppConfigError`` listing every problem."""
    problems = _Problems(file)
    reader = TableReader(table, "ocpp", problems)
    url = reader.string("url", "ws://127.0.0.1:9000/ocpp", required=True)
    parts = urlsplit(url)
    host, port = parts.hostname or "", 0
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        reader.problem("url", f"{url!r} has an invalid port")
    if parts.scheme not in ("ws", "wss") or not host:
        reader.problem("url", f"{url!r} must be ws://host[:port]/path or wss://host[:port]/path")
    station_id = reader.string("station_id", "plcrun", required=True)
    if not _ID.match(station_id):
        reader.problem("station_id", f"{station_id!r}: 1-48 letters, digits and . _ - : * @ + |")
    versions = tuple(reader.string_list("versions", VERSIONS))
    for version in versions:
        if version not in VERSIONS:
            reader.problem("versions", f"{version!r} is not supported; choose from {', '.join(VERSIONS)}")
    if not versions or len(set(versions)) != len(versions):
        reader.problem("versions", "must list each OCPP version at most once, at least one")
    profile = reader.integer("security_profile", 2, minimum=1, maximum=3)
    password = _password(reader)
    tls: TlsConfig | None = None
    ca_file: Path | None = None
    if profile == 3:
        tls = _sub_table(reader, "tls", parse_tls, problems)  # type: ignore[assignment]
        if tls is None and not reader.has("tls"):
            reader.problem("tls", "security profile 3 needs [ocpp.tls] with ca_file, cert_file, key_file")
    elif profile == 2:
        ca_file = _sub_table(reader, "tls", _parse_ca, problems)  # type: ignore[assignment]
        if ca_file is None and not reader.has("tls"):
            reader.problem("tls", "security profile 2 needs [ocpp.tls] with ca_file (the CSMS's CA)")
    elif reader.has("tls"):
        reader.mark_used("tls")
        reader.problem("tls", "security profile 1 has no TLS; use security_profile = 2 or 3")
    if (
        profile in (1, 2)
        and password is None
        and not any(k.startswith("ocpp.password") for k in (e.key for e in problems.errors))
    ):
        reader.problem(
            "password_file",
            f"security profile {profile} needs password_file, password_env or the systemd credential "
            f"{OCPP_PASSWORD}",
        )
    if profile == 1 and host and not is_loopback(host):
        reader.problem(
            "url", f"plain ws:// to {host} is not allowed: use security_profile 2 or 3 (only loopback)"
        )
    if profile >= 2 and parts.scheme != "wss":
        reader.problem("url", f"security profile {profile} needs a wss:// URL")
    if profile == 1 and parts.scheme != "ws":
        reader.problem("url", "security profile 1 is plain ws:// (to a loopback host only)")
    store = _sub_table(reader, "store", lambda r: _parse_buffer(r, file), problems)
    if store is None and not reader.has("store"):
        reader.problem("store", "is required (directory and key of the encrypted transaction queue)")
    evses = reader.integer("evses", 1, minimum=1, maximum=1000, required=True)
    prefix = reader.string("evs", "main.evs")
    instance = prefix.split(".", 1)[0]
    values = {
        "vendor": reader.string("vendor", "plcrun"),
        "model": reader.string("model", "plcrun-gateway"),
        "serial_number": reader.string("serial_number", None),
        "firmware_version": reader.string("firmware_version", None),
        "heartbeat_interval_s": reader.integer("heartbeat_interval_s", 300, minimum=1, maximum=86400),
        "boot_retry_s": reader.integer("boot_retry_s", 30, minimum=1, maximum=3600),
        "sample_interval_s": reader.integer("sample_interval_s", 60, minimum=1, maximum=86400),
        "aligned_interval_s": reader.integer("aligned_interval_s", 900, minimum=0, maximum=86400),
        "snapshot_interval_s": reader.number("snapshot_interval_s", 0.1, minimum=0.01, maximum=10.0),
        "response_timeout_s": reader.number("response_timeout_s", 30.0, minimum=0.1, maximum=600.0),
        "reconnect_min_s": reader.number("reconnect_min_s", 1.0, minimum=0.01, maximum=600.0),
        "reconnect_max_s": reader.number("reconnect_max_s", 60.0, minimum=0.01, maximum=3600.0),
        "voltage_v": reader.number("voltage_v", 230.0, minimum=1.0, maximum=1000.0),
        "phases": reader.integer("phases", 3, minimum=1, maximum=3),
        "max_power_w": reader.number("max_power_w", 22000.0, minimum=1.0, maximum=1e7),
        "max_message_bytes": reader.integer("max_message_bytes", 256 * 1024, minimum=4096, maximum=1 << 24),
        "transaction_attempts": reader.integer("transaction_attempts", 3, minimum=1, maximum=100),
    }
    if values["reconnect_max_s"] < values["reconnect_min_s"]:  # type: ignore[operator]
        reader.problem("reconnect_max_s", "must not be below reconnect_min_s")
    names = reader.table_or_empty("variables")
    wanted = {
        name: names.string(name, f"{instance}.{default}") for name, default in STATION_VARIABLES.items()
    }
    names.finish()
    reader.finish()

    folded = {p.casefold(): p for p in catalog}
    session_paths: dict[int, dict[str, str]] = {}
    limit_paths: dict[int, dict[str, str]] = {}
    if not any(p.casefold().startswith(prefix.casefold() + "[") for p in catalog):
        problems.add("ocpp.evs", f"the program has no EV session array '{prefix}'")
    else:
        for evse in range(1, evses + 1):
            found = {f: _lookup(catalog, folded, f"{prefix}[{evse}].{f}") for f in SESSION_FIELDS}
            if found["connected"] is None:
                problems.add("ocpp.evses", unknown_variable(f"{prefix}[{evse}].connected", catalog))
                break
            session_paths[evse] = {f: p for f, p in found.items() if p is not None}
            limits = {f: _lookup(catalog, folded, f"{prefix}[{evse}].{f}") for f in LIMIT_FIELDS}
            limit_paths[evse] = {f: p for f, p in limits.items() if p is not None}
    station_paths: dict[str, str] = {}
    curve_slots = 0
    for name, path in wanted.items():
        explicit = names.has(name)
        probe = f"{path}[1]" if name in ("curve_hz", "curve_w") else path
        found_path = _lookup(catalog, folded, probe)
        if found_path is None:
            if explicit:
                problems.add(f"ocpp.variables.{name}", unknown_variable(probe, catalog))
            continue
        if name in ("curve_hz", "curve_w"):
            base = found_path[: -len("[1]")]
            slots = 1
            while _lookup(catalog, folded, f"{base}[{slots + 1}]") is not None and slots < 20:
                slots += 1
            curve_slots = slots if curve_slots == 0 else min(curve_slots, slots)
            station_paths[name] = base
        else:
            station_paths[name] = found_path
    if ("curve_hz" in station_paths) != ("curve_w" in station_paths):
        station_paths.pop("curve_hz", None)
        station_paths.pop("curve_w", None)
    problems.raise_if_any()
    assert store is not None
    return OcppConfig(
        file=file,
        url=url,
        host=host,
        port=port,
        station_id=station_id,
        versions=versions,
        security_profile=profile,
        store=store,  # type: ignore[arg-type]
        evses=evses,
        prefix=prefix,
        session_paths=session_paths,
        limit_paths=limit_paths,
        station_paths=station_paths,
        curve_slots=curve_slots,
        password=password,
        tls=tls,
        ca_file=ca_file,
        **values,  # type: ignore[arg-type]
    )


def _parse_ca(reader: TableReader) -> Path:
    """``[ocpp.tls]`` of security profile 2: the CA that signed the CSMS certificate."""
    ca_file: Path = reader.existing_file("ca_file")
    reader.finish()
    client_context(reader, ca_file)  # refuses a file without a usable CA before anything starts
    return ca_file
