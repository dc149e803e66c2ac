"""A site's I/O for a compiled program (``SiteIo``): the drivers of a site file or the built-in
simulation, both through the driver registry (``plcrun.io.registry``), plus the site's parameters
and runtime options. ``plcrun.site.SiteRuntime`` turns it into a running site.

The simulation binds itself to the program by convention (documented in programs/README.md): the
first program instance with an ``ARRAY OF EV_SESSION`` gets the fleet, and its variables
``grid_hz``, ``grid_v`` and ``site_w`` (or a ``METER_READING`` structure) get the meter. A scenario's
``[service]`` and ``[site]`` tables are written into the program's parameter variables of the same
names before the first scan.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..compiler import st_types as T
from ..executor.alarms import AlarmBus
from ..executor.clock import REAL_TIME, WorkerTime
from ..executor.driver_api import Driver
from ..state.program import CompiledProgram
from .config_errors import ConfigError
from .config_reader import did_you_mean
from .conventions import (
    EV_COUNT_NAMES,
    EV_STRUCT,
    FREQUENCY_NAMES,
    METER_STRUCT,
    SITE_POWER_NAMES,
    VOLTAGE_NAMES,
)
from .sim.driver import SimDriver
from .sim.scenario import Scenario
from .site_config import RuntimeOptions

if TYPE_CHECKING:
    from .registry import DriverType, Service

log = logging.getLogger("plcrun.site")

METER_NAMES = {"frequency_hz": FREQUENCY_NAMES, "voltage_v": VOLTAGE_NAMES, "power_w": SITE_POWER_NAMES}


@dataclass
class SiteVariables:
    """Where a program keeps the meter and the EV sessions (found by convention)."""

    instance: str
    meter_paths: dict[str, str] = field(default_factory=dict)
    ev_prefix: str | None = None
    ev_slots: int = 0
    ev_count_path: str | None = None


@dataclass
class SiteIo:
    drivers: list[Driver] = field(default_factory=list)
    initial_writes: dict[str, object] = field(default_factory=dict)
    required_inputs: set[str] = field(default_factory=set)
    sim: SimDriver | None = None
    services: list[Service] = field(default_factory=list)  # started once the executor exists
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)  # the site file's [runtime] table
    config_file: str = ""
    parameter_entries: dict[str, object] = field(default_factory=dict)  # the site file's [parameters]
    parameters: dict[str, object] = field(default_factory=dict)  # checked: path -> value

    def fed_inputs(self) -> set[str]:
        """Every path a driver writes into the program (a parameter there would be overwritten)."""
        return {p for d in self.drivers for p in d.input_paths()}

    def set_parameters(self, program: CompiledProgram, set_options: list[str]) -> None:
        """Check the site file's [parameters] and the ``--set`` options against the program (the
        command line wins); raises SiteConfigError listing every problem. Parameters replace the
        scenario's writes of the same paths."""
        from .site_config_reader import SiteConfigError
        from .site_parameters import TABLE, check_parameters, set_option_entries

        entries, problems = set_option_entries(set_options)
        sources = [(self.config_file, TABLE, self.parameter_entries), ("--set", "--set", entries)]
        values, wrong = check_parameters(program, sources, self.fed_inputs())
        problems.extend(wrong)
        if problems:
            raise SiteConfigError(self.config_file or "--set", problems)
        self.parameters = values
        for path in values:
            self.initial_writes.pop(path, None)

    def add_simulation(self, program: CompiledProgram, scenario: Scenario, *, realtime: bool) -> None:
        """A mixed site: the simulation feeds what the devices do not (a real meter with simulated
        cars, or the reverse). The site file's own initial values win over the scenario's."""
        sim = sim_io(program, scenario, realtime=realtime, fed=self.fed_inputs())
        self.drivers.extend(sim.drivers)
        self.sim = sim.sim
        self.initial_writes = {**sim.initial_writes, **self.initial_writes}
        self.description = f"{self.description}; {sim.description}"
        self.warnings.extend(sim.warnings)


def _slot_of(prefix: str, path: str) -> re.Match[str] | None:
    return re.match(re.escape(prefix) + r"\[(\d+)\]\.", path)


def find_site_variables(program: CompiledProgram) -> SiteVariables | None:
    for inst in program.instances:
        variables = inst.pou.variables
        found = SiteVariables(inst.name.lower())
        for var in variables.values():
            t = T.underlying(var.type)
            if isinstance(t, T.ArrayType) and isinstance(t.element, T.StructType) and len(t.dims) == 1:
                if t.element.name.upper() == EV_STRUCT and found.ev_prefix is None:
                    found.ev_prefix = f"{found.instance}.{var.name.lower()}"
                    found.ev_slots = t.dims[0][1] - t.dims[0][0] + 1
            if isinstance(t, T.StructType) and t.name.upper() == METER_STRUCT and not found.meter_paths:
                base = f"{found.instance}.{var.name.lower()}"
                found.meter_paths = {
                    f.lower(): f"{base}.{f.lower()}" for f in ("frequency_hz", "voltage_v", "power_w")
                }
        if not found.meter_paths:
            for channel, names in METER_NAMES.items():
                for name in names:
                    if name.upper() in variables:
                        found.meter_paths[channel] = f"{found.instance}.{name}"
                        break
        for name in EV_COUNT_NAMES:
            if name.upper() in variables:
                found.ev_count_path = f"{found.instance}.{name}"
                break
        if found.ev_prefix or found.meter_paths:
            return found
    return None


def scenario_parameters(
    program: CompiledProgram, site: SiteVariables, scenario: Scenario
) -> tuple[dict[str, object], list[str]]:
    """Program parameter values taken from a scenario's [service] and [site] tables."""
    variables = {p.path: p for p in program.variables()}
    writes: dict[str, object] = {}
    skipped: list[str] = []

    def put(name: str, value: object) -> None:
        path = f"{site.instance}.{name.lower()}"
        if path in variables or program.leaf(path) is not None:
            writes[path] = value
        else:
            skipped.append(name)

    service = scenario.service
    service_var = variables.get(f"{site.instance}.service")
    enum = service_enum(program, site)
    if service.name and service.name != "none" and service_var is not None and enum is not None:
        writes[service_var.path] = service_names(enum).get(service.name.lower(), service.name)
    for key, value in service.params.items():
        if key == "v2x_freq_watt_curve" and isinstance(value, list):
            points = [p for p in value if isinstance(p, list | tuple) and len(p) == 2]
            for i, (hz, watts) in enumerate(points, start=1):
                put(f"v2x_curve_hz[{i}]", hz)
                put(f"v2x_curve_w[{i}]", watts)
            put("v2x_curve_points", len(points))
        elif isinstance(value, list):
            for i, item in enumerate(value, start=1):
                put(f"{key}[{i}]", item)
        else:
            put(key, value)
    if scenario.site.import_limit_w is not None:
        put("import_limit_w", scenario.site.import_limit_w)
    if scenario.site.export_limit_w is not None:
        put("export_limit_w", scenario.site.export_limit_w)
    if f"{site.instance}.v_nominal_v" in variables:
        put("v_nominal_v", scenario.nominal_voltage_v)
    if f"{site.instance}.f_nominal_hz" in variables and "f_nominal_hz" not in service.params:
        put("f_nominal_hz", scenario.nominal_hz)
    if site.ev_count_path is not None:
        writes[site.ev_count_path] = scenario.n_evs
    return writes, skipped


def check_sim_fits(program: CompiledProgram, scenario: Scenario) -> SiteVariables:
    """The program's meter and EV-session variables for the simulation (ConfigError if it has none,
    or too few EV sessions for the scenario's fleet)."""
    site = find_site_variables(program)
    if site is None:
        raise ConfigError(
            scenario.source,
            "",
            "the program has no meter or EV session variables to simulate "
            "(grid_hz / site_w, or an ARRAY OF EV_SESSION; see programs/README.md)",
        )
    if site.ev_prefix and scenario.n_evs > site.ev_slots:
        raise ConfigError(
            scenario.source,
            "fleet.n_evs",
            f"{scenario.n_evs} cars do not fit the program's {site.ev_slots} EV sessions ({site.ev_prefix})",
        )
    check_service(program, site, scenario)
    return site


def service_enum(program: CompiledProgram, site: SiteVariables) -> T.EnumType | None:
    """The enumeration of the program's ``service`` variable (GRID_SERVICE in the shipped programs):
    the one source of the service names a scenario may choose (``SVC_<NAME>``)."""
    for inst in program.instances:
        if inst.name.lower() == site.instance:
            var = inst.pou.variables.get("SERVICE")
            t = T.underlying(var.type) if var is not None else None
            return t if isinstance(t, T.EnumType) else None
    return None


def service_names(enum: T.EnumType) -> dict[str, str]:
    """Scenario spelling (``fcr_d``) -> enumeration value (``SVC_FCR_D``)."""
    return {key[4:].lower(): enum.spelling.get(key, key) for key in enum.values if key.startswith("SVC_")}


def check_service(program: CompiledProgram, site: SiteVariables, scenario: Scenario) -> None:
    """A scenario's ``[service] name`` must be a value of the program's service enumeration."""
    name = scenario.service.name
    enum = service_enum(program, site)
    if not name or name == "none" or enum is None:
        return
    names = service_names(enum)
    if name.lower() not in names:
        raise ConfigError(
            scenario.source,
            "service.name",
            f"unknown service '{name}': the program's {enum.name} has {', '.join(sorted(names))}"
            f"{did_you_mean(name.lower(), list(names))}",
        )


def sim_io(
    program: CompiledProgram,
    scenario: Scenario,
    *,
    realtime: bool = False,
    fed: Collection[str] = (),
) -> SiteIo:
    """The built-in simulation bound to the program by convention. In ``realtime`` the simulation's
    history keeps one scenario length (the scans never wait on a growing history). ``fed``: paths
    that devices already feed (a mixed site): the simulation leaves those meter channels alone and
    puts its cars in the EV sessions after the last one a device fills."""
    site = check_sim_fits(program, scenario)
    meter_paths = {channel: path for channel, path in site.meter_paths.items() if path not in fed}
    first = 1
    if site.ev_prefix:
        taken = [int(m.group(1)) for p in fed if (m := _slot_of(site.ev_prefix, p)) is not None]
        first = max(taken, default=0) + 1
        if first - 1 + scenario.n_evs > site.ev_slots:
            raise ConfigError(
                scenario.source,
                "fleet.n_evs",
                f"{scenario.n_evs} simulated cars after the {first - 1} sessions the devices fill do not fit "
                f"the program's {site.ev_slots} EV sessions ({site.ev_prefix})",
            )
    driver = SimDriver(
        scenario,
        meter_paths,
        site.ev_prefix,
        scenario.n_evs if site.ev_prefix else None,
        first_index=first,
        max_history_rows=scenario.n_steps + 1 if realtime else None,
        realtime=realtime,
    )
    writes, skipped = scenario_parameters(program, site, scenario)
    if site.ev_count_path is not None and site.ev_count_path in writes:
        writes[site.ev_count_path] = first - 1 + scenario.n_evs
    io = SiteIo([driver], writes, sim=driver)
    io.description = f"simulation '{scenario.name}' ({scenario.n_evs} EVs) bound to {site.instance}"
    if fed:
        cars = f"cars in sessions {first}..{first - 1 + scenario.n_evs}" if site.ev_prefix else "no cars"
        meter = ", ".join(sorted(meter_paths)) or "no meter channel"
        io.description = f"simulation '{scenario.name}' for what the devices do not feed: {meter}; {cars}"
    io.warnings = [f"scenario parameter '{name}' has no program variable; ignored" for name in skipped]
    return io


def config_io(
    program: CompiledProgram,
    path: str,
    alarms: AlarmBus,
    stats_provider: Callable[[], Mapping[str, Any]],
    gateway_id: str,
    *,
    realtime: bool = True,
    drivers: Mapping[str, DriverType[Any]] | None = None,
    worker_time: WorkerTime = REAL_TIME,
) -> SiteIo:
    """Drivers of a site configuration file, through the driver registry (every table and binding
    checked first; SiteConfigError lists every problem). ``worker_time``: what the device threads
    wait on (see ``BuildContext``)."""
    from .registry import BuildContext, build_wiring, registered
    from .site_config import load_site_config
    from .site_parameters import flatten

    registry = registered() if drivers is None else drivers
    site = load_site_config(path, program.catalog(), registry, program)
    context = BuildContext(path, program, alarms, stats_provider, gateway_id, realtime, worker_time)
    wiring = build_wiring(site.checked, context, registry)
    io = SiteIo(
        drivers=wiring.drivers,
        initial_writes=wiring.initial_writes,
        required_inputs=wiring.required_inputs | set(site.required_inputs),
        services=wiring.services,
        description="; ".join([f"site '{site.name}' from {path}", *wiring.descriptions]),
        warnings=wiring.warnings,
        runtime=site.runtime,
        config_file=path,
    )
    io.parameter_entries = flatten(dict(site.parameters or {}))
    return io


def simulation_io(
    program: CompiledProgram,
    scenario: str | None,
    evs: int | None,
    *,
    realtime: bool = True,
    drivers: Mapping[str, DriverType[Any]] | None = None,
) -> SiteIo:
    """The built-in simulation through the registry's ``sim`` driver, as if a site file said
    ``[sim] scenario = ..., evs = ...``."""
    from .registry import BuildContext, SiteContext, build_wiring, check_tables, registered
    from .site_config_reader import Problems

    registry = registered() if drivers is None else drivers
    table: dict[str, Any] = {"scenario": scenario or "quiet_grid"}
    if evs is not None:
        table["evs"] = evs
    source = scenario or "quiet_grid"
    problems = Problems(source)
    checked = check_tables(
        {"sim": table}, SiteContext(source, program.catalog(), problems, program), registry
    )
    problems.raise_if_any()
    wiring = build_wiring(checked, BuildContext(source, program, AlarmBus(), realtime=realtime), registry)
    return SiteIo(
        drivers=wiring.drivers,
        sim=next((d for d in wiring.drivers if isinstance(d, SimDriver)), None),
        initial_writes=wiring.initial_writes,
        required_inputs=wiring.required_inputs,
        services=wiring.services,
        description="; ".join(wiring.descriptions),
        warnings=wiring.warnings,
    )
