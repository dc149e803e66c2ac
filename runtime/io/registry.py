"""The driver registry: which site-file tables exist, and which driver package turns each into drivers.

python-can's ``can.interfaces`` is the model: a table of built-in drivers (``BUILTIN``, name ->
``"module:attribute"``, imported only when used) plus the Python entry-point group
``plcrun.drivers`` through which other packages add theirs::

    # pyproject.toml of a third-party package
    [project.entry-points."plcrun.drivers"]
    acme = "acme_plcrun.site:DRIVER"

Each entry is a ``DriverType``: the top-level tables of the site file it owns, a ``check`` that
validates them (problems collect-all in ``SiteContext.problems``: file, dotted key, problem) *and*
their bindings against the program's variable catalog, and a ``build`` that turns the checked
configuration into drivers (and services that need the executor, like the SCADA server). Every
registered check runs before any build, and nothing starts before the executor does, so a bad site
file is reported completely before anything touches the network. docs/architecture.md, "Adding a
driver", walks through writing one.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from ..errors import PlcrunError
from ..executor.alarms import AlarmBus
from ..executor.clock import REAL_TIME, WorkerTime
from ..executor.driver_api import Driver
from ..state.program import CompiledProgram, PathError, ProgramState
from .config_reader import CollectAll, ProblemPolicy, TableReader, did_you_mean
from .site_config_types import located_direction, unknown_variable

log = logging.getLogger("plcrun.registry")

ENTRY_POINT_GROUP = "plcrun.drivers"

# the drivers shipped with plcrun; imported on first use
BUILTIN: dict[str, str] = {
    "modbus": "plcrun.io.modbus.site:DRIVER",
    "everest": "plcrun.io.everest.site:DRIVER",
    "mqtt": "plcrun.io.mqtt.site:DRIVER",
    "scada": "plcrun.io.scada_site:DRIVER",
    "sim": "plcrun.io.sim.site:DRIVER",
    "host": "plcrun.io.host.site:DRIVER",
    "ocpp": "plcrun.io.ocpp.site:DRIVER",
    "iso15118": "plcrun.io.iso15118.site:DRIVER",
}

# tables of the site file that belong to no driver (read by plcrun.io.site_config)
SITE_TABLES = ("site", "runtime", "parameters")


class RegistryError(PlcrunError):
    """A registered driver cannot be loaded, or two drivers claim the same table."""


class Service(Protocol):
    """Something that runs beside the executor and needs it (e.g. the SCADA server): started after
    the executor exists, stopped before it shuts down."""

    name: str

    def start(self, executor: Any) -> str:
        """Start; return one line for the operator (what listens where). Raise ``PlcrunError``."""
        ...

    def stop(self) -> None: ...


@dataclass
class SiteContext:
    """What a driver's ``check`` gets besides its tables: the file, the program's catalog (bindable
    path -> IEC type) and the collect-all problem list."""

    file: str
    catalog: Mapping[str, str]
    problems: ProblemPolicy
    program: CompiledProgram | None = None  # None when only the catalog is known (e.g. a syntax check)
    _folded: dict[str, str] | None = None

    def reader(self, tables: Mapping[str, Any], name: str) -> TableReader | None:
        """A reader over the top-level table ``name`` (None when the file has none)."""
        value = tables.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problems.add(name, "must be a table")
            return None
        return TableReader(value, name, self.problems)

    def variable(self, key: str, path: str, direction: str = "any") -> str | None:
        """The catalog's spelling of ``path`` (IEC names are case-insensitive), or None after
        reporting at ``key`` why it cannot be bound (``direction``: "in", "out" or "any")."""
        if self._folded is None:
            self._folded = {p.casefold(): p for p in self.catalog}
        found = path if path in self.catalog else self._folded.get(path.casefold())
        located = located_direction(path)
        if located == "memory" and direction != "any":
            self.problems.add(key, f"{path} is a memory address: drivers bind %I (inputs) or %Q (outputs)")
            return None
        if located is not None and direction != "any" and located != direction:
            kind = "an input (%I)" if located == "in" else "an output (%Q)"
            self.problems.add(key, f"{path} is {kind}; this binding needs the other direction")
            return None
        if found is None:
            self.problems.add(key, unknown_variable(path, self.catalog))
        return found


@dataclass
class BuildContext:
    """What a driver's ``build`` gets: the program, the alarm bus, the statistics provider (for
    reports), the gateway's id, whether the run is in real time, and the time the device threads
    wait on (``REAL_TIME``; tests give a ``ManualTime`` to run a whole site in virtual time)."""

    file: str
    program: CompiledProgram
    alarms: AlarmBus
    stats: Callable[[], Mapping[str, Any]] = dict
    gateway_id: str = "gateway"
    realtime: bool = True
    worker_time: WorkerTime = REAL_TIME


@dataclass
class Wiring:
    """What drivers contribute to a run."""

    drivers: list[Driver] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    initial_writes: dict[str, object] = field(default_factory=dict)  # written before the first scan
    required_inputs: set[str] = field(default_factory=set)
    descriptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, other: Wiring) -> None:
        self.drivers.extend(other.drivers)
        self.services.extend(other.services)
        self.initial_writes.update(other.initial_writes)
        self.required_inputs |= other.required_inputs
        self.descriptions.extend(other.descriptions)
        self.warnings.extend(other.warnings)


C = TypeVar("C")


@dataclass(frozen=True)
class DriverType(Generic[C]):
    """One registered driver: ``check(tables, site)`` validates the tables it owns (those of
    ``tables`` present in the file) and returns its checked configuration, or None when there is
    nothing to build or it reported problems; ``build(config, context)`` returns the wiring."""

    name: str
    tables: tuple[str, ...]
    check: Callable[[Mapping[str, Any], SiteContext], C | None]
    build: Callable[[C, BuildContext], Wiring]
    summary: str = ""


def _load(name: str, target: str) -> DriverType[Any]:
    module_name, _, attribute = target.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise RegistryError(f"driver '{name}' ({target}) cannot be loaded: {error}") from None
    if callable(value) and not isinstance(value, DriverType):
        value = value()  # an entry point may name a function returning the DriverType
    if not isinstance(value, DriverType):
        raise RegistryError(f"driver '{name}' ({target}) is not a plcrun.io.registry.DriverType")
    return value


def entry_point_targets() -> dict[str, str]:
    """Drivers other packages registered in the ``plcrun.drivers`` entry-point group."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def registered(extra: Mapping[str, str] | None = None) -> dict[str, DriverType[Any]]:
    """Every driver: the built-ins, then the entry points (a name may not be taken twice unless it
    points to the same object, as the built-ins' own declarations in pyproject.toml do)."""
    targets = dict(BUILTIN)
    for name, target in {**entry_point_targets(), **(extra or {})}.items():
        if name in targets and targets[name] != target:
            raise RegistryError(f"driver name '{name}' is taken twice: {targets[name]} and {target}")
        targets[name] = target
    drivers = {name: _load(name, target) for name, target in targets.items()}
    owner: dict[str, str] = {}
    for driver in drivers.values():
        for table in driver.tables:
            if table in owner or table in SITE_TABLES:
                raise RegistryError(
                    f"table [{table}] is claimed by driver '{driver.name}' and '{owner.get(table, 'site')}'"
                )
            owner[table] = driver.name
    return drivers


def known_tables(drivers: Iterable[DriverType[Any]]) -> list[str]:
    return sorted({*SITE_TABLES, *(t for d in drivers for t in d.tables)})


def check_tables(
    data: Mapping[str, Any], site: SiteContext, drivers: Mapping[str, DriverType[Any]]
) -> dict[str, Any]:
    """Run every driver's check over the tables it owns; unknown top-level tables are problems.
    Returns driver name -> checked configuration (drivers without tables in the file are left out)."""
    known = known_tables(drivers.values())
    for name in data:
        if name not in known:
            site.problems.add(name, f"unknown key '{name}'{did_you_mean(name, known)}")
    checked: dict[str, Any] = {}
    for driver in drivers.values():
        owned = {table: data[table] for table in driver.tables if table in data}
        if not owned:
            continue
        try:
            config = driver.check(owned, site)
        except PlcrunError as error:  # a fail-fast reader (or a stop() of a collect-all one) ended the table
            _record(site.problems, error)
            continue
        if config is not None:
            checked[driver.name] = config
    return checked


def _record(problems: ProblemPolicy, error: PlcrunError) -> None:
    """Keep the problems an exception out of a check carries (unless the policy already holds them)."""
    inner = getattr(error, "problems", None)
    for one in inner if isinstance(inner, list) else [error]:
        key, problem = getattr(one, "key", None) or "", getattr(one, "problem", None) or str(one)
        if not any((e.key, e.problem) == (key, problem) for e in problems.errors):
            problems.add(key, problem)


def collect(site: SiteContext, parse: Callable[[ProblemPolicy], C]) -> C | None:
    """Run a table parser written for a ``TableReader`` under a collect-all policy of its own and
    move what it found into ``site.problems``; the parsed value, or None when there were problems."""
    policy = CollectAll(site.file)
    try:
        value: C | None = parse(policy)
    except PlcrunError as error:
        _record(policy, error)
        value = None
    for one in policy.errors:
        _record(site.problems, one)
    return None if policy.errors else value


def build_wiring(
    checked: Mapping[str, Any], context: BuildContext, drivers: Mapping[str, DriverType[Any]]
) -> Wiring:
    """Build every checked driver (nothing starts here), then check that every path a driver
    binds exists in the program exactly as the process image will resolve it."""
    wiring = Wiring()
    for name, config in checked.items():
        wiring.add(drivers[name].build(config, context))
    state = context.program.new_state()
    problems = [p for driver in wiring.drivers for p in unbound_paths(driver, state)]
    if problems:
        raise RegistryError(f"{context.file}: " + "; ".join(problems))
    return wiring


def unbound_paths(driver: Driver, state: ProgramState) -> list[str]:
    """Paths of ``driver`` the program does not have (a driver's check should have said so first)."""
    found = []
    for path in sorted(driver.input_paths() | driver.output_paths()):
        try:
            state.accessor(path)
        except PathError as error:
            found.append(f"driver '{driver.name}': {error}")
    return found
