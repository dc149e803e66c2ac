"""The ``[mqtt]`` table of the site configuration: what the backhaul publishes, where, and how securely.

``parse_mqtt_config(table, file)`` turns the TOML table into a frozen ``BackhaulConfig`` or raises
``ConfigError(file, "mqtt.<key>", problem)``. Everything a grid engineer changes (variables to report,
window period, topics, command bindings) lives here, so adding a reported variable needs no code.
See docs/mqtt.md for the full list of keys.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config_errors import ConfigError
from ..config_reader import FailFast, ProblemPolicy, TableReader, is_loopback
from ..credentials import MQTT_BUFFER_KEY, find_credential

STAT_NAMES = ("min", "max", "mean", "last", "energy")
REDUCE_NAMES = ("sum", "mean", "min", "max", "count_nonzero")
BUFFER_KEY_BYTES = 32  # AES-256

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*(\[\d+(,\d+)*\])?"
_PATH = re.compile(rf"^({_SEGMENT}(\.{_SEGMENT})*|%[IQM][XBWDL]?\d+(\.\d+)*)$")
_RANGE = re.compile(r"\[(\d+)\.\.(\d+)\]")
_MAX_RANGE = 1000


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS: the broker is verified against ``ca_file`` (with hostname check), the gateway
    presents ``cert_file``/``key_file``."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    min_version: str = "1.2"  # "1.2" or "1.3"; OpenSSL negotiates 1.3 whenever the broker offers it


@dataclass(frozen=True)
class TopicConfig:
    """Topic templates; ``{gateway_id}`` is replaced by the gateway id, ``{name}`` by a command name."""

    report: str = "plcrun/{gateway_id}/report"
    alarm: str = "plcrun/{gateway_id}/alarm"
    status: str = "plcrun/{gateway_id}/status"
    command: str = "plcrun/{gateway_id}/command/{name}"

    def resolve(self, gateway_id: str) -> ResolvedTopics:
        return ResolvedTopics(
            report=self.report.replace("{gateway_id}", gateway_id),
            alarm=self.alarm.replace("{gateway_id}", gateway_id),
            status=self.status.replace("{gateway_id}", gateway_id),
            command=self.command.replace("{gateway_id}", gateway_id),
        )


@dataclass(frozen=True)
class ResolvedTopics:
    report: str
    alarm: str
    status: str
    command: str  # still contains {name}

    def command_topic(self, name: str) -> str:
        return self.command.replace("{name}", name)


@dataclass(frozen=True)
class ReportVariable:
    """One reported quantity: a process-image path (or a range of paths reduced to one number per
    scan) and the statistics computed over each window."""

    name: str
    paths: tuple[str, ...]
    stats: tuple[str, ...]
    reduce: str = "sum"  # only used when ``paths`` has more than one entry


@dataclass(frozen=True)
class ReportConfig:
    period_s: float = 1.0
    variables: tuple[ReportVariable, ...] = ()
    max_scans_per_window: int = 2000
    include_scan_stats: bool = True
    include_alarms: bool = True

    @property
    def period_ns(self) -> int:
        return round(self.period_s * 1e9)


@dataclass(frozen=True)
class BufferConfig:
    """The encrypted store-and-forward buffer. ``key`` is the AES-256 key (never printed)."""

    directory: Path
    key: bytes = field(repr=False)
    max_bytes: int = 64 * 1024 * 1024
    fsync: str = "always"  # "always": fsync every commit (survives power loss); "never": OS flush only


@dataclass(frozen=True)
class CurveCommand:
    """A frequency-watt curve (OCPP 2.1 ``v2xFreqWattCurve`` style) bound to ST arrays."""

    name: str
    frequency_path: str  # array base path, elements frequency_path[array_start ..]
    power_path: str
    count_path: str
    baseline_path: str
    array_start: int = 1
    array_length: int = 20
    frequency_min_hz: float = 45.0
    frequency_max_hz: float = 65.0
    power_limit_w: float = 1e6
    stale_s: float | None = None  # the cloud refreshes the command at least this often (else STALE)

    def frequency_paths(self) -> tuple[str, ...]:
        return tuple(f"{self.frequency_path}[{self.array_start + i}]" for i in range(self.array_length))

    def power_paths(self) -> tuple[str, ...]:
        return tuple(f"{self.power_path}[{self.array_start + i}]" for i in range(self.array_length))

    def input_paths(self) -> tuple[str, ...]:
        return (*self.frequency_paths(), *self.power_paths(), self.count_path, self.baseline_path)


@dataclass(frozen=True)
class ValueCommand:
    """A single value (``kind`` "bool" or "number") bound to one process-image path."""

    name: str
    kind: str
    path: str
    minimum: float = float("-inf")
    maximum: float = float("inf")
    stale_s: float | None = None  # the cloud refreshes the command at least this often (else STALE)

    def input_paths(self) -> tuple[str, ...]:
        return (self.path,)


CommandBinding = CurveCommand | ValueCommand


@dataclass(frozen=True)
class BackhaulConfig:
    host: str
    port: int
    buffer: BufferConfig
    tls: TlsConfig | None = None
    client_id: str = "plcrun-{gateway_id}"
    keepalive_s: int = 30
    qos: int = 1
    max_inflight: int = 20
    connect_timeout_s: float = 5.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 30.0
    stop_timeout_s: float = 2.0
    topics: TopicConfig = TopicConfig()
    report: ReportConfig = ReportConfig()
    commands: tuple[CommandBinding, ...] = ()
    source_file: str = ""

    def output_paths(self) -> frozenset[str]:
        return frozenset(path for variable in self.report.variables for path in variable.paths)

    def input_paths(self) -> frozenset[str]:
        return frozenset(path for command in self.commands for path in command.input_paths())


def _check_path(reader: TableReader, key: str, path: str) -> str:
    if not _PATH.match(path):
        reader.fail(key, f"{path!r} is not a process-image path (e.g. main.grid_hz or main.evs[3].soc_pct)")
    return path


def expand_path(reader: TableReader, key: str, text: str) -> tuple[str, ...]:
    """``main.evs[1..3].p_w`` → three paths; a path without a range → itself."""
    ranges = _RANGE.findall(text)
    if not ranges:
        return (_check_path(reader, key, text),)
    if len(ranges) > 1:
        reader.fail(key, f"{text!r}: only one [first..last] range is allowed per path")
    first, last = int(ranges[0][0]), int(ranges[0][1])
    if last < first or last - first + 1 > _MAX_RANGE:
        reader.fail(key, f"{text!r}: range must go upwards and hold at most {_MAX_RANGE} elements")
    paths = tuple(_RANGE.sub(f"[{i}]", text) for i in range(first, last + 1))
    for path in paths:
        _check_path(reader, key, path)
    return paths


def client_context(reader: TableReader, ca_file: Path) -> ssl.SSLContext:
    """A TLS client context that trusts ``ca_file``; a file with no usable PEM CA certificate is a
    problem of the table's ``ca_file`` key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (ssl.SSLError, ValueError) as error:
        reader.fail("ca_file", f"{ca_file} holds no usable PEM CA certificate ({error})")
    return context


def parse_tls(reader: TableReader) -> TlsConfig:
    """The [tls] table of an MQTT connection: CA, client certificate and key (0600), TLS version."""
    ca_file = reader.existing_file("ca_file")
    cert_file = reader.existing_file("cert_file")
    key_file = reader.existing_file("key_file", private=True)
    min_version = reader.string("min_version", "1.2", choices=("1.2", "1.3"))
    reader.finish()
    context = client_context(reader, ca_file)
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as error:
        reader.fail(
            "cert_file", f"{cert_file} and {key_file} are not a matching PEM certificate and key ({error})"
        )
    return TlsConfig(ca_file, cert_file, key_file, min_version)


def _parse_topics(reader: TableReader | None) -> TopicConfig:
    if reader is None:
        return TopicConfig()
    defaults = TopicConfig()
    values: dict[str, str] = {}
    for name in ("report", "alarm", "status", "command"):
        topic = reader.string(name, getattr(defaults, name))
        if "+" in topic or "#" in topic or "\0" in topic:
            reader.fail(name, f"{topic!r}: a topic must not contain the wildcards + or #")
        if len(topic.encode()) > 1024:
            reader.fail(name, "topic is longer than 1024 bytes")
        placeholders = set(re.findall(r"\{([^}]*)\}", topic))
        allowed = {"gateway_id", "name"} if name == "command" else {"gateway_id"}
        if placeholders - allowed:
            reader.fail(name, f"{topic!r}: unknown placeholder(s) {sorted(placeholders - allowed)}")
        if name == "command" and "name" not in placeholders:
            reader.fail(name, f"{topic!r} must contain {{name}} (one topic per command)")
        values[name] = topic
    reader.finish()
    return TopicConfig(**values)


def _parse_variable(reader: TableReader, names: set[str]) -> ReportVariable:
    name = reader.string("name")
    if not _NAME.match(name):
        reader.fail("name", f"{name!r} must be an identifier (letters, digits, _)")
    if name in names:
        reader.fail("name", f"{name!r} is reported twice")
    names.add(name)
    paths = expand_path(reader, "path", reader.string("path"))
    stats = reader.string_list("stats", ("min", "max", "mean", "last"))
    if not stats:
        reader.fail("stats", "must name at least one statistic")
    for stat_name in stats:
        if stat_name not in STAT_NAMES:
            reader.fail("stats", f"unknown statistic {stat_name!r}; choose from {', '.join(STAT_NAMES)}")
    if len(set(stats)) != len(stats):
        reader.fail("stats", "lists a statistic twice")
    reduce = reader.string("reduce", "sum", choices=REDUCE_NAMES)
    reader.finish()
    return ReportVariable(name, paths, tuple(stats), reduce)


def _parse_report(reader: TableReader | None) -> ReportConfig:
    if reader is None:
        return ReportConfig()
    period_s = reader.number("period_s", 1.0, minimum=0.01, maximum=3600.0)
    default_capacity = max(16, round(period_s * 2000))  # room for 0.5 ms scans
    capacity = reader.integer("max_scans_per_window", default_capacity, minimum=2, maximum=10_000_000)
    include_scan_stats = reader.boolean("include_scan_stats", True)
    include_alarms = reader.boolean("include_alarms", True)
    names: set[str] = set()
    variables = tuple(_parse_variable(item, names) for item in reader.tables("variables"))
    reader.finish()
    return ReportConfig(period_s, variables, capacity, include_scan_stats, include_alarms)


def parse_buffer_key(text: bytes) -> bytes | None:
    """A 32-byte key given as 64 hexadecimal characters (whitespace ignored) or as 32 raw bytes."""
    stripped = text.strip()
    if len(stripped) == 2 * BUFFER_KEY_BYTES:
        try:
            return bytes.fromhex(stripped.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(text) == BUFFER_KEY_BYTES:
        return text
    return None


def _parse_buffer(reader: TableReader | None, file: str) -> BufferConfig:
    if reader is None:
        raise ConfigError(
            file, "mqtt.buffer", "is required (directory and key of the store-and-forward buffer)"
        )
    directory = reader.path("directory")
    if directory.exists() and not directory.is_dir():
        reader.fail("directory", f"{directory} exists and is not a folder")
    existing = directory if directory.exists() else directory.parent
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        reader.fail("directory", f"{existing} is not writable")
    max_bytes = reader.integer("max_bytes", 64 * 1024 * 1024, minimum=64 * 1024, maximum=1 << 40)
    fsync = reader.string("fsync", "always", choices=("always", "never"))
    has_file, has_env = reader.has("key_file"), reader.has("key_env")
    default_credential = find_credential(MQTT_BUFFER_KEY)
    if (has_file and has_env) or not (has_file or has_env or default_credential):
        reader.fail(
            "key_file",
            "give exactly one of key_file (a mode 0600 file or credential:NAME) or key_env (a variable "
            f"name), or the systemd credential {MQTT_BUFFER_KEY}",
        )
    key: bytes | None
    if not (has_file or has_env) and default_credential is not None:
        key = parse_buffer_key(default_credential.read_bytes())
        if key is None:
            reader.fail(
                "key_file", f"credential {MQTT_BUFFER_KEY} must hold 64 hex characters or 32 raw bytes"
            )
    elif has_file:
        key_path = reader.existing_file("key_file", private=True)
        key = parse_buffer_key(key_path.read_bytes())
        if key is None:
            reader.fail("key_file", f"{key_path} must hold 64 hex characters or 32 raw bytes (a 256-bit key)")
    else:
        variable = reader.string("key_env")
        value = os.environ.get(variable)
        if value is None:
            reader.fail("key_env", f"environment variable {variable} is not set")
        key = parse_buffer_key(value.encode())
        if key is None:
            reader.fail(
                "key_env", f"environment variable {variable} must hold 64 hex characters (a 256-bit key)"
            )
    reader.finish()
    return BufferConfig(directory, key, max_bytes, fsync)


def _parse_command(name: str, reader: TableReader) -> CommandBinding:
    if not _NAME.match(name):
        raise ConfigError(reader.file, reader.key, f"command name {name!r} must be an identifier")
    kind = reader.string("kind", choices=("frequency_watt_curve", "bool", "number"))
    command: CommandBinding
    stale_s = reader.number("stale_s", None, minimum=0.01, maximum=86_400.0)
    if kind == "frequency_watt_curve":
        command = CurveCommand(
            name=name,
            frequency_path=_check_path(reader, "frequency_path", reader.string("frequency_path")),
            power_path=_check_path(reader, "power_path", reader.string("power_path")),
            count_path=_check_path(reader, "count_path", reader.string("count_path")),
            baseline_path=_check_path(reader, "baseline_path", reader.string("baseline_path")),
            array_start=reader.integer("array_start", 1, minimum=0, maximum=1_000_000),
            array_length=reader.integer("array_length", 20, minimum=1, maximum=20),
            frequency_min_hz=reader.number("frequency_min_hz", 45.0, minimum=0.0, maximum=1000.0),
            frequency_max_hz=reader.number("frequency_max_hz", 65.0, minimum=0.0, maximum=1000.0),
            power_limit_w=reader.number("power_limit_w", 1e6, minimum=0.0, maximum=1e12),
            stale_s=stale_s,
        )
        if command.frequency_min_hz >= command.frequency_max_hz:
            reader.fail("frequency_max_hz", "must be above frequency_min_hz")
    else:
        path = _check_path(reader, "path", reader.string("path"))
        if kind == "number":
            minimum = reader.number("min", float("-inf"), minimum=float("-inf"), maximum=float("inf"))
            maximum = reader.number("max", float("inf"), minimum=float("-inf"), maximum=float("inf"))
            if minimum > maximum:
                reader.fail("max", "must not be below min")
            command = ValueCommand(name, kind, path, minimum, maximum, stale_s)
        else:
            command = ValueCommand(name, kind, path, stale_s=stale_s)
    reader.finish()
    return command


def _parse_commands(reader: TableReader | None) -> tuple[CommandBinding, ...]:
    if reader is None:
        return ()
    commands = tuple(_parse_command(name, sub) for name, sub in reader.sub_tables())
    seen: dict[str, str] = {}
    for command in commands:
        for path in command.input_paths():
            if path in seen:
                raise ConfigError(
                    reader.file, reader.key_of(command.name), f"{path} is already bound by {seen[path]}"
                )
            seen[path] = command.name
    return commands


def parse_broker(reader: TableReader, default_host: str | None = None) -> tuple[str, TlsConfig | None, int]:
    """``host``, ``[<table>.tls]`` and ``port`` of an MQTT connection; plain TCP only to loopback."""
    host = reader.string("host") if default_host is None else reader.string("host", default_host)
    tls_reader = reader.table("tls")
    tls = parse_tls(tls_reader) if tls_reader is not None else None
    if tls is None and not is_loopback(host):
        reader.fail(
            "host",
            f"plain MQTT to {host} is not allowed: add [{reader.key}.tls] (only loopback may be plain)",
        )
    port = reader.integer("port", 8883 if tls else 1883, minimum=1, maximum=65535)
    return host, tls, port


def parse_mqtt_config(
    table: Mapping[str, object], file: str, problems: ProblemPolicy | None = None
) -> BackhaulConfig:
    """Validate the ``[mqtt]`` table of ``file``; raise ``ConfigError`` naming the first bad entry
    (or, with a collect-all ``problems`` policy, collect what can be collected)."""
    reader = TableReader(table, "mqtt", problems or FailFast(file))
    host, tls, port = parse_broker(reader)
    client_id = reader.string("client_id", "plcrun-{gateway_id}")
    keepalive_s = reader.integer("keepalive_s", 30, minimum=5, maximum=3600)
    qos = reader.integer("qos", 1, minimum=0, maximum=2)
    max_inflight = reader.integer("max_inflight", 20, minimum=1, maximum=1000)
    connect_timeout_s = reader.number("connect_timeout_s", 5.0, minimum=0.1, maximum=120.0)
    reconnect_min_s = reader.number("reconnect_min_s", 0.2, minimum=0.01, maximum=600.0)
    reconnect_max_s = reader.number("reconnect_max_s", 30.0, minimum=0.01, maximum=3600.0)
    if reconnect_max_s < reconnect_min_s:
        reader.fail("reconnect_max_s", "must not be below reconnect_min_s")
    stop_timeout_s = reader.number("stop_timeout_s", 2.0, minimum=0.0, maximum=60.0)
    topics = _parse_topics(reader.table("topics"))
    report = _parse_report(reader.table("report"))
    buffer = _parse_buffer(reader.table("buffer"), file)
    commands = _parse_commands(reader.table("commands"))
    reader.finish()
    return BackhaulConfig(
        host=host,
        port=port,
        buffer=buffer,
        tls=tls,
        client_id=client_id,
        keepalive_s=keepalive_s,
        qos=qos,
        max_inflight=max_inflight,
        connect_timeout_s=connect_timeout_s,
        reconnect_min_s=reconnect_min_s,
        reconnect_max_s=reconnect_max_s,
        stop_timeout_s=stop_timeout_s,
        topics=topics,
        report=report,
        commands=commands,
        source_file=file,
    )
