"""The composition root: one object that builds and runs a site (``SiteRuntime``).

``SiteRuntime.build(program, ...)`` checks the I/O completely (a site file through every registered
driver, or the built-in simulation through the same registry, or no I/O at all), builds the drivers
and services, the executor on the given clock (real time by default, ``VirtualClock`` for
deterministic runs), and writes the drivers' initial values. Nothing has started yet. Then:

* ``start()``: RETAIN values restored, drivers started (by the executor), services (SCADA server)
  and the dashboard started; ``stop()`` undoes it in reverse order (dashboard and services first,
  then the executor: outputs to safe values, retain saved, drivers stopped). Also a context manager.
* ``run_cycles(n)``: n scans of every task in virtual time (``plcrun run --cycles``);
  ``run_realtime(duration_s)``: the long-running process (``plcrun run``), with signals, status
  lines and online change.

The command line, the tests and the benches build sites this way; ``cli.py`` only parses
arguments and prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from .compiler.api import compile_file
from .compiler.native import enable_native
from .dashboard.server import DashboardServer
from .errors import UsageError
from .executor.alarms import AlarmBus
from .executor.clock import (
    DEFAULT_SPIN_NS,
    PRODUCT_WAKE_TOLERANCE_NS,
    REAL_TIME,
    Clock,
    MonotonicClock,
    VirtualClock,
    WorkerTime,
)
from .executor.config import ExecutorConfig
from .executor.engine import Executor
from .executor.rt_setup import RtConfig
from .executor.runner import RealtimeSession
from .executor.threads import use_small_stacks
from .io.registry import DriverType, Service
from .io.sim.scenario import Scenario
from .io.sim.scenario_load import load_with_fleet_size
from .io.site_io import SiteIo, config_io, find_site_variables, sim_io, simulation_io
from .state.program import CompiledProgram

log = logging.getLogger("plcrun.site")


@dataclass(frozen=True)
class DashboardOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None


def reload_program(source: Path, native: bool) -> CompiledProgram:
    """The program file compiled again for an online change; with ``native`` also built natively
    (the running program keeps scanning meanwhile: the build runs in other processes)."""
    program = compile_file(source)
    if native:
        reason = enable_native(program)
        if reason:
            log.warning("online change: native build not used (%s); the new program runs interpreted", reason)
    return program


class SiteRuntime:
    """A program with its executor, drivers, services and dashboard; see the module docstring."""

    def __init__(
        self,
        program: CompiledProgram,
        executor: Executor,
        io: SiteIo,
        *,
        dashboard: DashboardOptions | None = None,
    ) -> None:
        self.program = program
        self.executor = executor
        self.io = io
        self.dashboard_options = dashboard
        self.dashboard: DashboardServer | None = None
        self.started: list[str] = []  # one line per started service, for the operator
        self._running: list[Service] = []
        self._is_started = False

    # ------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        program: CompiledProgram,
        *,
        config: str | None = None,
        scenario: str | Scenario | None = None,
        evs: int | None = None,
        io: bool = True,
        set_options: list[str] | None = None,
        clock: Clock | None = None,
        executor_config: ExecutorConfig | None = None,
        dashboard: DashboardOptions | None = None,
        gateway_id: str = "gateway",
        drivers: Mapping[str, DriverType[Any]] | None = None,
        warn: Callable[[str], None] | None = None,
        worker_time: WorkerTime = REAL_TIME,
    ) -> SiteRuntime:
        """The site of ``config`` (a site file; with ``scenario`` too, the simulation feeds what its
        devices do not), else the simulation (``scenario``, default quiet_grid, when the program has
        simulation variables), else no I/O; ``io=False`` forces no I/O. ``scenario`` is a name (or
        TOML file) resized to ``evs`` cars, or a loaded ``Scenario`` (``plcrun sim`` and its
        sweeps); either way ``io.sim`` is the simulation driver, whose history the simulation
        report reads. ``set_options`` are ``PATH=VALUE`` parameters (``--set``, winning over the
        site file's ``[parameters]``). ``warn`` reports the I/O's warnings (default: the log).
        ``worker_time``: what the site file's device threads wait on (tests: a ``ManualTime``
        stepped with a ``VirtualClock`` runs a whole site in virtual time).
        Raises ``ConfigError`` (every problem of the file) before anything is built."""
        clock = clock or MonotonicClock()
        realtime = not isinstance(clock, VirtualClock)
        alarms = AlarmBus()
        holder: list[Executor] = []

        def stats() -> Mapping[str, Any]:
            return holder[0].scheduler.stats.to_json() if holder else {}

        if config is not None:
            site_io = config_io(
                program,
                config,
                alarms,
                stats,
                gateway_id,
                realtime=realtime,
                drivers=drivers,
                worker_time=worker_time,
            )
            if scenario is not None:  # a mixed site: the simulation feeds what the devices do not
                loaded = scenario if isinstance(scenario, Scenario) else load_with_fleet_size(scenario, evs)
                site_io.add_simulation(program, loaded, realtime=realtime)
        elif io and isinstance(scenario, Scenario):  # loaded: bound as the registry's sim driver does
            site_io = sim_io(program, scenario, realtime=realtime)
        elif io and (scenario is not None or find_site_variables(program) is not None):
            name = scenario if isinstance(scenario, str) else None
            site_io = simulation_io(program, name, evs, realtime=realtime, drivers=drivers)
        else:
            site_io = SiteIo(description="no I/O")
        site_io.set_parameters(program, set_options or [])
        executor_config = executor_config or ExecutorConfig()
        executor_config.required_inputs |= site_io.required_inputs
        # the drivers' start-up values (a scenario's service and site limits) are parameters too:
        # written at start after RETAIN and again after an online change, never through the journal
        # (which records what operators and the cloud wrote); [parameters] and --set win
        executor_config.parameters = {
            **site_io.initial_writes,
            **executor_config.parameters,
            **site_io.parameters,
        }
        executor = Executor(
            program, clock=clock, drivers=site_io.drivers, config=executor_config, alarms=alarms
        )
        holder.append(executor)
        for warning in site_io.warnings:
            if warn is not None:
                warn(warning)
            else:
                log.warning("%s", warning)
        return cls(program, executor, site_io, dashboard=dashboard)

    @property
    def description(self) -> str:
        return str(self.io.description)

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Executor (retain, drivers), then the services and the dashboard; on a failure, what was
        started is stopped again and the error raised."""
        if self._is_started:
            return
        self._is_started = True
        complete = False
        try:
            self.executor.start()
            for service in self.io.services:
                self.started.append(service.start(self.executor))
                self._running.append(service)
            if self.dashboard_options is not None:
                self.dashboard = _start_dashboard(self.executor, self.dashboard_options)
                self.started.append(f"dashboard on {self.dashboard.url}")
            complete = True
        finally:
            if not complete:  # whatever stopped the start (a PlcrunError, Ctrl-C): undo what ran
                self.stop()

    def stop(self) -> None:
        """Dashboard and services first (they read the executor), then the executor's shutdown."""
        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None
        while self._running:
            service = self._running.pop()
            try:
                service.stop()
            except Exception:  # one failing service must not keep the others (or the outputs) running
                log.exception("service %s failed to stop", service.name)
        if self._is_started:
            self._is_started = False
            self.executor.shutdown()

    def __enter__(self) -> SiteRuntime:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ running
    def run_cycles(self, cycles: int) -> None:
        """``cycles`` scans of every task on the executor's (virtual) clock: scan k of a task is
        released at k times its interval, so a 10 ms and a 100 ms task both run ``cycles`` times
        (a task that has run its scans waits for the others)."""
        self.start()
        if cycles > 0:
            self.executor.run(scans_per_task=cycles)

    def run_realtime(
        self,
        duration_s: float | None = None,
        *,
        status_every_s: float = 10.0,
        status_out: TextIO | None = None,
        watch: bool = False,
        scan_cpu: int | None = None,
        require_realtime: bool = False,
        wake_tolerance_us: int | None = None,
        spin_budget_us: int | None = None,
        on_started: Callable[[], None] | None = None,
        native: bool = False,
    ) -> None:
        """Run until ``duration_s`` passed or a signal stops it (main thread: SIGINT/SIGTERM stop at
        a scan boundary, SIGHUP reloads the program file). ``scan_cpu``/``require_realtime`` and the
        waiting mode (``wake_tolerance_us``, default ``PRODUCT_WAKE_TOLERANCE_NS``; ``spin_budget_us``,
        default 1 ms) add to the site file's ``[runtime]`` table (the arguments win). ``native``: a
        reloaded program is built natively too, on the reload's thread, before it is swapped in."""
        use_small_stacks()  # before the session's threads start: with locked memory every stack is resident
        self.set_wait(wake_tolerance_us, spin_budget_us)
        source = Path(self.program.main_file)
        cpu = scan_cpu if scan_cpu is not None else self.io.runtime.scan_cpu
        kwargs: dict[str, Any] = {} if status_out is None else {"status_out": status_out}
        session = RealtimeSession(
            self.executor,
            status_every_s=status_every_s,
            reload=lambda: reload_program(source, native),
            watch=source if watch else None,
            on_started=on_started,
            rt_config=RtConfig(cpus=None if cpu is None else frozenset({cpu})),
            require_realtime=require_realtime or self.io.runtime.require_realtime,
            **kwargs,
        )
        try:
            self.start()
            session.run(duration_s)
        finally:
            self.stop()

    def set_wait(self, wake_tolerance_us: int | None = None, spin_budget_us: int | None = None) -> None:
        """The scan thread's waiting mode on a real clock: the arguments, else the site file's
        ``[runtime]``, else plcrun's defaults (a clock built with a fixed spin is left alone unless a
        value is given; a virtual clock never waits)."""
        clock = self.executor.clock
        options = self.io.runtime
        tolerance = _first(wake_tolerance_us, options.wake_tolerance_us)
        budget = _first(spin_budget_us, options.spin_budget_us)
        if not isinstance(clock, MonotonicClock) or (
            clock.tracker is None and tolerance is None and budget is None
        ):
            return
        clock.set_wait(
            PRODUCT_WAKE_TOLERANCE_NS if tolerance is None else tolerance * 1000,
            DEFAULT_SPIN_NS if budget is None else budget * 1000,
        )
        log.info("waiting for releases: %s", clock.describe())

    @property
    def faulted(self) -> dict[str, str]:
        """Task -> fault message, for every task that faulted during the run."""
        return {name: sup.fault_message for name, sup in self.executor.supervisors.items() if sup.faults}


@dataclass(frozen=True)
class CycleResult:
    values: dict[str, Any]  # every variable at the end of the last scan (``Executor.snapshot()``)
    faults: dict[str, str]  # task -> fault message


def run_cycles(
    program: CompiledProgram, cycles: int, executor_config: ExecutorConfig | None = None
) -> CycleResult:
    """``cycles`` scans per task on the executor in virtual time without I/O (``plcrun run
    --cycles``, the conformance tests): the values before shutdown and the faults."""
    site = SiteRuntime.build(program, io=False, clock=VirtualClock(), executor_config=executor_config)
    with site:
        site.run_cycles(cycles)
        return CycleResult(site.executor.snapshot(), site.faulted)


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _start_dashboard(executor: Executor, options: DashboardOptions) -> DashboardServer:
    try:
        dashboard = DashboardServer(executor, host=options.host, port=options.port, token=options.token)
        dashboard.start()
    except OSError as error:
        raise UsageError(
            f"dashboard: cannot listen on {options.host}:{options.port}: {error.strerror}; "
            "choose another --dashboard-port or use --no-dashboard"
        ) from None
    except ValueError as error:
        raise UsageError(f"dashboard: {error}") from None
    return dashboard
