"""``plcrun sim``: run a program against a simulation scenario in virtual time and report.

The executor runs the scenario's duration as fast as the CPU allows (deterministic); a progress bar
goes to stderr; the report (frequency, site power and fleet SoC as an SVG picture, activation latency
in scans, time to full activation, energy, SoC floors and site limits, pass/fail per criterion) is
written to a folder and summarised on the terminal, or printed as JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .compiler.program import CompiledProgram
from .executor.clock import VirtualClock
from .executor.engine import Executor, ExecutorConfig
from .io.sim.evaluate import evaluate
from .io.sim.scenario import Scenario
from .io.sim.scenario_load import load_with_fleet_size
from .io.sim.svg_plot import write_svg
from .io.site_io import SiteIo, sim_io


def _progress(done: float, width: int = 40) -> None:
    if not sys.stderr.isatty() and round(done * 100) % 25:
        return  # in a log file, a line every quarter is enough
    filled = int(done * width)
    end = "" if sys.stderr.isatty() else "\n"
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done * 100:5.1f}%", end=end, file=sys.stderr, flush=True
    )


def run_simulation(
    program: CompiledProgram, scenario: Scenario, *, show_progress: bool
) -> tuple[Executor, SiteIo]:
    io = sim_io(program, scenario)
    executor = Executor(program, clock=VirtualClock(), drivers=io.drivers, config=ExecutorConfig())
    for path, value in io.initial_writes.items():
        executor.journal.write(path, value, source="scenario")
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
    return executor, io


def cmd_sim(
    program: CompiledProgram, scenario_name: str, evs: int | None, as_json: bool, out_dir: str | None
) -> int:
    scenario = load_with_fleet_size(scenario_name, evs)
    executor, io = run_simulation(program, scenario, show_progress=not as_json)
    for warning in io.warnings:
        print(f"plcrun: {warning}", file=sys.stderr)
    assert io.sim is not None
    history = io.sim.history()  # before shutdown: the safe state written at the end is not part of the run
    executor.shutdown()
    report = evaluate(history, scenario)
    faults = {name: sup.fault_message for name, sup in executor.supervisors.items() if sup.faults}
    folder = Path(out_dir or f"sim-report-{scenario.name}")
    folder.mkdir(parents=True, exist_ok=True)
    picture = folder / "report.svg"
    write_svg(history, picture, f"{Path(program.main_file).name}: {scenario.name}")
    data = report.to_json()
    data["faults"] = faults
    data["picture"] = str(picture)
    (folder / "report.json").write_text(json.dumps(data, indent=2, allow_nan=False, default=str))
    if as_json:
        print(json.dumps(data, allow_nan=False, default=str))
    else:
        print(report.summary())
        for task, message in faults.items():
            print(f"task {task} faulted: {message}")
        print(f"report: {folder / 'report.json'}, picture: {picture}")
    return 0 if report.passed and not faults else 1
