"""``plcrun sim``: run a program against a simulation scenario in virtual time and report.

The site is built by the composition root (``plcrun.site.SiteRuntime``, on a ``VirtualClock``, with
the scenario bound as the registry's ``sim`` driver binds it); the executor runs the scenario's duration as fast as the CPU allows (deterministic); a progress bar
goes to stderr; the report (plcrun.io.sim.report_files: JSON, the time series and the cars as CSV,
the picture, an HTML page) is written to a folder and summarised on the terminal, or printed as JSON
with ``--json``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compiler import st_types as T
from .executor.clock import VirtualClock
from .executor.scheduler import ScanRecord
from .io.sim.evaluate import SimReport, evaluate
from .io.sim.report_files import write_report
from .io.sim.scenario import Scenario
from .io.sim.scenario_load import load_with_fleet_size
from .io.site_io import find_site_variables
from .site import SiteRuntime
from .state.program import CompiledProgram, to_json


def _progress(done: float, width: int = 40) -> None:
    if not sys.stderr.isatty() and round(done * 100) % 25:
        return  # in a log file, a line every quarter is enough
    filled = int(done * width)
    end = "" if sys.stderr.isatty() else "\n"
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done * 100:5.1f}%", end=end, file=sys.stderr, flush=True
    )


def run_simulation(
    program: CompiledProgram,
    scenario: Scenario,
    *,
    show_progress: bool,
    status: list[str] | None = None,
    set_options: list[str] | None = None,
) -> SiteRuntime:
    """Build the simulated site (``SiteRuntime`` on a ``VirtualClock``), start it and run the
    scenario; the caller stops it. ``status``: filled with the program's ``status`` after every
    scan, when it has one (for the report's availability). ``set_options``: ``PATH=VALUE``
    parameters, checked against the program (SiteConfigError) and written at start after the
    scenario's own values."""
    site = SiteRuntime.build(
        program,
        scenario=scenario,
        set_options=set_options,
        clock=VirtualClock(),
        warn=lambda warning: print(f"plcrun: {warning}", file=sys.stderr),
    )
    executor = site.executor
    variables = find_site_variables(program)
    status_path = f"{variables.instance}.status" if variables is not None else ""
    raw_status: list[Any] = []
    if status is not None and program.leaf(status_path) is not None:
        bound: list[Any] = [None, None]  # the state the scans run on (a restart makes a new one), its getter

        def record_on_time(_task: str, _release_ns: int) -> None:
            state = executor.state
            if bound[0] is not state:
                bound[0], bound[1] = state, state.accessor(status_path).get
            raw_status.append(bound[1]())

        def record(_scan: ScanRecord) -> None:
            record_on_time(_scan.task, _scan.start_ns)

        # the raw value per scan (a path lookup and a JSON conversion per scan cost ~3 µs at 10 EVs);
        # named once at the end
        executor.scheduler.add_scan_observer(record, record_on_time)
    site.start()
    ran = False
    try:
        total = scenario.duration_ns
        chunks = 50
        for k in range(chunks):
            executor.run(
                duration_ns=total // chunks if k < chunks - 1 else total - (total // chunks) * (chunks - 1)
            )
            if show_progress:
                _progress((k + 1) / chunks)
        if show_progress:
            print(file=sys.stderr)
        if status is not None and raw_status:
            status.extend(_status_names(raw_status, executor.state.accessor(status_path).type))
        ran = True
    finally:
        if not ran:  # a fault of the simulation itself, Ctrl-C: outputs safe, nothing left running
            site.stop()
    return site


def _status_names(values: list[Any], status_type: T.Type) -> list[str]:
    """The recorded status values as the report shows them (an enumeration's name), each distinct
    value converted once when the type is an enumeration or an integer (whose equal values print
    alike; a REAL's 0.0 and -0.0 would not)."""
    u = T.underlying(status_type)
    if isinstance(u, T.EnumType) or (isinstance(u, T.ElementaryType) and u.kind in ("int", "bits")):
        names: dict[Any, str] = {}
        return [names[v] if v in names else names.setdefault(v, str(to_json(v, status_type))) for v in values]
    return [str(to_json(v, status_type)) for v in values]


@dataclass
class SimOutcome:
    """One finished scenario run: its report (checks, metrics) and what the report folder holds."""

    scenario: Scenario
    report: SimReport
    faults: dict[str, str]
    data: dict[str, Any]
    wall_s: float

    @property
    def passed(self) -> bool:
        return self.report.passed and not self.faults


def simulate(
    program: CompiledProgram,
    scenario: Scenario,
    folder: Path,
    *,
    show_progress: bool = False,
    set_options: list[str] | None = None,
) -> SimOutcome:
    """Run one scenario and write its report folder: what ``plcrun sim`` does for one run, and what
    each run of a sweep does (cli_sweep.py), so the two cannot differ."""
    start = time.perf_counter()
    status: list[str] = []
    site = run_simulation(
        program, scenario, show_progress=show_progress, status=status, set_options=set_options
    )
    wall_s = time.perf_counter() - start
    with site:  # stopped at the end of the block: outputs to their safe values
        assert site.io.sim is not None
        # before the stop: the safe state written at the end is not part of the run
        history = site.io.sim.history()
    report = evaluate(history, scenario, status or None)
    faults = site.faulted
    title = f"{Path(program.main_file).name}: {scenario.name}"
    data = write_report(folder, title, scenario, history, report, status, faults)
    return SimOutcome(scenario, report, faults, data, wall_s)


def cmd_sim(
    program: CompiledProgram,
    scenario_name: str,
    evs: int | None,
    as_json: bool,
    out_dir: str | None,
    set_options: list[str] | None = None,
) -> int:
    scenario = load_with_fleet_size(scenario_name, evs)
    folder = Path(out_dir or f"sim-report-{scenario.name}")
    outcome = simulate(program, scenario, folder, show_progress=not as_json, set_options=set_options)
    data = outcome.data
    if as_json:
        print(json.dumps(data, allow_nan=False, default=str))
    else:
        print(outcome.report.summary())
        for task, message in outcome.faults.items():
            print(f"task {task} faulted: {message}")
        print(f"report: {data['html']}, picture: {data['picture']}, time series: {data['series_csv']}")
    return 0 if outcome.passed else 1
