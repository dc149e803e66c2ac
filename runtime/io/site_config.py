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

The ``[site]`` table is the site's own (name, description, required inputs), as are ``[runtime]``
(real-time requirement, scan CPU, how the scan thread waits) and ``[parameters]`` (program parameters by path, checked against
the program by ``site_parameters``). Every other top-level table belongs to a driver of the registry (``plcrun.io.registry``: ``[devices]``/``[bindings]`` to
Modbus, ``[everest]``, ``[mqtt]``, ``[server]`` to the SCADA server, ``[sim]``, and whatever other
packages register, e.g. ``[host]``); each driver checks its tables and their bindings against a catalog of the
compiled program (every bindable process-image path with its IEC type). All problems of all tables
are collected and raised together as one ``SiteConfigError`` (a ``ConfigError``) whose ``problems``
name file, dotted key and problem. docs/site-config.md describes every key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..executor.clock import MAX_WAIT_SETTING_NS
from ..state.program import CompiledProgram
from .config_errors import ConfigError
from .config_reader import TableReader
from .modbus.model import DeviceSpec
from .modbus.site import Binding, ModbusSite
from .registry import SITE_TABLES, DriverType, SiteContext, check_tables, registered
from .site_config_reader import Problems, SiteConfigError

MAX_WAIT_US = MAX_WAIT_SETTING_NS // 1000

__all__ = [
    "Binding",
    "RuntimeOptions",
    "SiteConfig",
    "SiteConfigError",
    "load_site_config",
    "parse_site_config",
]


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """The ``[runtime]`` table: how the process runs on the gateway (docs/deployment.md)."""

    require_realtime: bool = False  # refuse to start without SCHED_FIFO
    scan_cpu: int | None = None  # pin the scan thread to this CPU (the isolated core)
    wake_tolerance_us: int | None = None  # lateness accepted at p99 before spinning (None: plcrun's default)
    spin_budget_us: int | None = None  # the most the scan thread spins before a release (None: 1 ms)


@dataclass(frozen=True)
class SiteConfig:
    file: str
    name: str
    checked: Mapping[str, Any] = field(default_factory=dict)  # driver name -> its checked configuration
    required_inputs: tuple[str, ...] = ()  # inputs whose bad quality puts the outputs to safe values
    runtime: RuntimeOptions = RuntimeOptions()
    parameters: Mapping[str, Any] | None = None  # [parameters] as written (site_parameters checks it)

    @property
    def devices(self) -> Mapping[str, DeviceSpec]:
        modbus = self.checked.get("modbus")
        return modbus.devices if isinstance(modbus, ModbusSite) else {}

    @property
    def bindings(self) -> Mapping[str, Binding]:
        """Modbus bindings: process-image path -> device point."""
        modbus = self.checked.get("modbus")
        return modbus.bindings if isinstance(modbus, ModbusSite) else {}

    def input_paths(self) -> frozenset[str]:
        return frozenset(p for p, b in self.bindings.items() if b.direction == "in")

    def output_paths(self) -> frozenset[str]:
        return frozenset(p for p, b in self.bindings.items() if b.direction == "out")


def load_site_config(
    path: str,
    catalog: Mapping[str, str],
    drivers: Mapping[str, DriverType[Any]] | None = None,
    program: CompiledProgram | None = None,
) -> SiteConfig:
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
    return parse_site_config(data, path, catalog, drivers, program)


def parse_site_config(
    data: Mapping[str, Any],
    file: str,
    catalog: Mapping[str, str],
    drivers: Mapping[str, DriverType[Any]] | None = None,
    program: CompiledProgram | None = None,
) -> SiteConfig:
    """Check an already parsed TOML document (``file`` is only used in messages) with every
    registered driver (or ``drivers``); ``program``, when given, lets drivers check more than the
    catalog (the simulation's conventions)."""
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
    parameters = root.raw_table("parameters")
    checked = check_tables(
        {k: v for k, v in data.items() if k not in SITE_TABLES},
        SiteContext(file, catalog, problems, program),
        registered() if drivers is None else drivers,
    )
    problems.raise_if_any()
    return SiteConfig(file, name, checked, tuple(required), runtime, parameters)


def _parse_runtime(reader: TableReader | None) -> RuntimeOptions:
    if reader is None:
        return RuntimeOptions()
    options = RuntimeOptions(
        require_realtime=reader.boolean("require_realtime", False),
        scan_cpu=reader.integer("scan_cpu", None, minimum=0, maximum=4095),
        wake_tolerance_us=reader.integer(
            "wake_tolerance_us", None, minimum=0, maximum=MAX_WAIT_US, unit="µs"
        ),
        spin_budget_us=reader.integer("spin_budget_us", None, minimum=0, maximum=MAX_WAIT_US, unit="µs"),
    )
    reader.finish()
    return options
