"""The site configuration file: which devices exist and which ST variables their points feed.

``plcrun run programs/freq_response.st --config site.toml`` reads a TOML file like::

    [devices.site-meter]
    host = "127.0.0.1"
    port = 15020
    profile = "sunspec"
    poll_groups = { fast = 10 }

    [devices.site-meter.points.grid_hz]
    sunspec = "213.Hz"
    bind = "main.grid_hz"
    poll = "fast"

    [bindings]
    "main.site_w" = "site-meter.213.W"

The file is checked completely before anything starts, against a catalog of the compiled program
(every bindable process-image path with its IEC type). All problems are collected and raised together
as one ``SiteConfigError`` (a ``ConfigError``) whose ``problems`` name file, dotted key and problem.
The ``[mqtt]``, ``[sim]``, ``[server]``, ``[everest]`` and ``[parameters]`` tables belong to other parts of plcrun and are handed on
as raw dictionaries. docs/site-config.md describes every key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config_errors import ConfigError
from .config_reader import TableReader, did_you_mean, join_key
from .modbus.model import DEFAULT_SUNSPEC_BASES, DeviceSpec, Direction, PointSpec
from .site_config_modbus import DeviceDraft, finish_device, parse_device, parse_sunspec_ref, sunspec_point
from .site_config_reader import Problems, SiteConfigError
from .site_config_types import binding_problem, located_direction, unknown_variable

__all__ = [
    "RAW_TABLES",
    "Binding",
    "RuntimeOptions",
    "SiteConfig",
    "SiteConfigError",
    "load_site_config",
    "parse_site_config",
]

# tables other parts of plcrun read; kept unchecked in SiteConfig.raw
RAW_TABLES: tuple[str, ...] = ("mqtt", "sim", "server", "everest", "host", "parameters", "ocpp")


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """The ``[runtime]`` table: how the process runs on the gateway (docs/deployment.md)."""

    require_realtime: bool = False  # refuse to start without SCHED_FIFO
    scan_cpu: int | None = None  # pin the scan thread to this CPU (the isolated core)


@dataclass(frozen=True, slots=True)
class Binding:
    """One process-image path and the device point behind it."""

    path: str
    device: str
    point: str
    direction: Direction
    st_type: str


@dataclass(frozen=True)
class SiteConfig:
    file: str
    name: str
    devices: Mapping[str, DeviceSpec]
    bindings: Mapping[str, Binding]  # process-image path -> device point
    raw: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    required_inputs: tuple[str, ...] = ()  # inputs whose bad quality puts the outputs to safe values
    runtime: RuntimeOptions = RuntimeOptions()

    @property
    def mqtt(self) -> dict[str, Any] | None:
        return self.raw.get("mqtt")

    @property
    def sim(self) -> dict[str, Any] | None:
        return self.raw.get("sim")

    @property
    def everest(self) -> dict[str, Any] | None:
        """EV sessions over MQTT in EVerest's shape (checked by plcrun.io.everest)."""
        return self.raw.get("everest")

    @property
    def host(self) -> dict[str, Any] | None:
        """The gateway's own inputs: CPU temperature (checked by plcrun.io.host)."""
        return self.raw.get("host")

    @property
    def ocpp(self) -> dict[str, Any] | None:
        """The CSMS link (checked by plcrun.io.ocpp)."""
        return self.raw.get("ocpp")

    @property
    def server(self) -> dict[str, Any] | None:
        """The SCADA-facing Modbus server table (handed on unchecked for now)."""
        return self.raw.get("server")

    @property
    def parameters(self) -> dict[str, Any] | None:
        """Program parameters by path (checked against the program by plcrun.io.site_parameters)."""
        return self.raw.get("parameters")

    def input_paths(self) -> frozenset[str]:
        return frozenset(p for p, b in self.bindings.items() if b.direction == "in")

    def output_paths(self) -> frozenset[str]:
        return frozenset(p for p, b in self.bindings.items() if b.direction == "out")


def load_site_config(path: str, catalog: Mapping[str, str]) -> SiteConfig:
    """Read and check a site configuration file; raises ``SiteConfigError`` listing every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteConfigError(
            path, [ConfigError(path, "", f"cannot read the file: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise SiteConfigError(path, [ConfigError(path, "", f"not UTF-8 text: {exc.reason}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteConfigError(path, [ConfigError(path, "", f"not valid TOML: {exc}")]) from None
    return parse_site_config(data, path, catalog)


def parse_site_config(data: Mapping[str, Any], file: str, catalog: Mapping[str, str]) -> SiteConfig:
    """Check an already parsed TOML document (``file`` is only used in messages)."""
    problems = Problems(file)
    root = TableReader(data, "", problems)
    site = root.table("site")
    name = ""
    required: list[str] = []
    if site is not None:
        name = site.string("name", "", allow_empty=True)
        site.string("description", None, allow_empty=True)
        required = site.string_list("required_inputs", [])
        folded = {p.casefold(): p for p in catalog}
        for path in required:
            if path.casefold() not in folded:
                site.problem("required_inputs", f"'{path}' is not a variable of the program")
        site.finish()
    runtime = _parse_runtime(root.table("runtime"))
    raw = {table: value for table in RAW_TABLES if (value := root.raw_table(table)) is not None}

    drafts: dict[str, DeviceDraft] = {}
    devices = root.table("devices")
    if devices is not None:
        for device_name, value in devices.items():
            if not isinstance(value, dict):
                devices.problem(device_name, "must be a table describing the device")
                continue
            draft = parse_device(
                device_name, TableReader(value, devices.key_of(device_name), problems), problems
            )
            if draft is not None:
                drafts[device_name] = draft

    bindings = root.table("bindings")
    if bindings is not None:
        for path, target in bindings.items():
            _bind_by_name(path, target, bindings.key_of(path), drafts, bindings)
    root.finish()

    resolved = _check_bindings(drafts, catalog, problems)
    specs = {name: finish_device(draft, problems) for name, draft in drafts.items()}
    problems.raise_if_any()
    return SiteConfig(file, name, specs, resolved, raw, tuple(required), runtime)


def _parse_runtime(reader: TableReader | None) -> RuntimeOptions:
    if reader is None:
        return RuntimeOptions()
    options = RuntimeOptions(
        require_realtime=reader.boolean("require_realtime", False),
        scan_cpu=reader.integer("scan_cpu", None, minimum=0, maximum=4095),
    )
    reader.finish()
    return options


def _bind_by_name(
    path: str, target: object, key: str, drafts: dict[str, DeviceDraft], r: TableReader
) -> None:
    """``"main.x" = "device.point"``: bind a named point, or a SunSpec point such as ``site-meter.213.Hz``."""
    if not isinstance(target, str) or "." not in target:
        r.problem(path, "must be a string '<device>.<point>', e.g. 'site-meter.213.Hz' or 'charger-1.state'")
        return
    device_name, _, point_name = target.partition(".")
    draft = drafts.get(device_name)
    if draft is None:
        r.problem(path, f"unknown device '{device_name}'{did_you_mean(device_name, list(drafts))}")
        return
    point = draft.point(point_name)
    if point is None and point_name[:1].isdigit():
        ref, why = parse_sunspec_ref(point_name)
        if ref is None:
            r.problem(path, why)
            return
        point = sunspec_point(point_name, key, ref)
        if draft.spec.sunspec_bases is None:
            draft.spec = replace(draft.spec, sunspec_bases=DEFAULT_SUNSPEC_BASES)
        draft.points.append(point)
    if point is None:
        names = [p.name for p in draft.points]
        r.problem(
            path, f"device '{device_name}' has no point '{point_name}'{did_you_mean(point_name, names)}"
        )
        return
    if point.path is not None:
        r.problem(path, f"point '{target}' is already bound to '{point.path}' ({_binding_key(point)})")
        return
    index = draft.points.index(point)
    draft.points[index] = replace(point, path=path, key=key)


def _binding_key(point: PointSpec) -> str:
    """The key that bound the point: ``...points.x.bind``, a profile's ``...ev`` or a ``bindings`` entry."""
    if point.key.startswith("bindings.") or point.key.endswith(".ev"):
        return point.key
    return join_key(point.key, "bind")


def _catalog_lookup(path: str, catalog: Mapping[str, str], folded: dict[str, str]) -> str | None:
    """The catalog's spelling of ``path`` (IEC identifiers are case-insensitive)."""
    if path in catalog:
        return path
    return folded.get(path.casefold())


def _check_bindings(
    drafts: dict[str, DeviceDraft], catalog: Mapping[str, str], problems: Problems
) -> dict[str, Binding]:
    folded = {p.casefold(): p for p in catalog}
    bound: dict[str, tuple[Binding, str]] = {}
    for device_name, draft in drafts.items():
        for index, point in enumerate(draft.points):
            if point.path is None:
                continue
            key = _binding_key(point)
            if located_direction(point.path) == "memory":
                problems.add(
                    key, f"{point.path} is a memory address: devices bind %I (inputs) or %Q (outputs)"
                )
                continue
            path = _catalog_lookup(point.path, catalog, folded)
            if path is None:
                problems.add(key, unknown_variable(point.path, catalog))
                continue
            st_type = catalog[path]
            why = binding_problem(point, path, st_type)
            if why is not None:
                problems.add(key, why)
                continue
            if path in bound:
                other, other_key = bound[path]
                problems.add(
                    key,
                    f"'{path}' is bound twice: already to point '{other.point}' of device '{other.device}' "
                    f"({other_key})",
                )
                continue
            binding = Binding(path, device_name, point.name, point.direction, st_type.strip().upper())
            bound[path] = (binding, key)
            draft.points[index] = replace(point, path=path, st_type=binding.st_type)
    return {path: binding for path, (binding, _key) in bound.items()}
