"""``plcrun sim`` with several runs: scenarios x fleet sizes x parameter values, in parallel.

Every combination of the ``--scenario`` names, the ``--evs`` sizes and the ``--sweep PATH=V1,V2``
values is one run. Runs go to a pool of worker processes (one per core by default, ``--jobs``),
each of which compiles the program once and then runs its share with ``cli_sim.simulate``, the
function a single ``plcrun sim`` uses, so a run's report is the one the single command would write
(virtual time, no shared state: the results do not depend on the order or the number of workers;
tests/cli/test_sim_sweep.py checks that). Each run writes its report folder under ``--out``; the
parent shows a progress bar (runs finished / all) and prints one summary table, also written as CSV
with every metric of every run. Everything is checked before the first run starts: scenario names
and files, fleet sizes, parameter paths and values.
"""

from __future__ import annotations

import csv
import itertools
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cli_sim import simulate
from .errors import UsageError
from .io.sim.scenario_load import load_with_fleet_size
from .io.site_io import sim_io
from .io.site_parameters import set_option_entries


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: where it stands in the table, what it runs, where its report goes."""

    index: int
    scenario: str
    evs: int | None
    sets: tuple[str, ...]
    folder: str

    @property
    def label(self) -> str:
        return " ".join(self.sets)


@dataclass
class RunRow:
    spec: RunSpec
    scenario: str = ""
    n_evs: int = 0
    passed: bool = False
    checks: int = 0
    failed: list[str] = field(default_factory=list)
    faults: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    simulated_s: float = 0.0
    wall_s: float = 0.0
    error: str = ""


def parse_sweep(options: list[str]) -> list[list[str]]:
    """``PATH=V1,V2,...`` -> [["PATH=V1", "PATH=V2", ...], ...] (values split on commas outside
    brackets and quotes, each later read like a TOML value by --set's rules)."""
    axes = []
    for option in options:
        path, sep, text = option.partition("=")
        if not sep or not path.strip() or not text.strip():
            raise UsageError(f"--sweep {option}: write PATH=V1,V2,... e.g. --sweep main.droop_pct=4,5")
        values = _split_values(text)
        if any(not v for v in values):
            raise UsageError(f"--sweep {option}: an empty value")
        axes.append([f"{path.strip()}={value}" for value in values])
    return axes


def _split_values(text: str) -> list[str]:
    values, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    return values


def plan(
    scenarios: list[str], sizes: list[int | None], set_options: list[str], sweep: list[str], out: Path
) -> list[RunSpec]:
    axes = parse_sweep(sweep)
    specs = []
    combos = itertools.product(scenarios, sizes, itertools.product(*axes) if axes else [()])
    for index, (scenario, evs, swept) in enumerate(combos):
        sets = tuple(set_options) + tuple(swept)
        name = Path(scenario).stem if scenario.endswith(".toml") else scenario
        parts = [f"{index + 1:03d}", name] + ([f"{evs}evs"] if evs is not None else [])
        parts += [re.sub(r"[^A-Za-z0-9_.=-]+", "_", s) for s in swept]
        specs.append(RunSpec(index, scenario, evs, sets, str(out / "-".join(parts))))
    return specs


_program: Any = None


def _init_worker(program_file: str, native: bool = False) -> None:
    global _program
    from .compiler.api import compile_file
    from .compiler.native import enable_native

    _program = compile_file(program_file)
    if native:  # the parent's build is in the cache: loaded, not built again
        enable_native(_program)


def run_one(spec: RunSpec, program: Any = None) -> RunRow:
    """One run of the sweep (in a worker: with the program the worker compiled)."""
    program = program if program is not None else _program
    row = RunRow(spec)
    try:
        scenario = load_with_fleet_size(spec.scenario, spec.evs)
        outcome = simulate(program, scenario, Path(spec.folder), set_options=list(spec.sets))
    except Exception as error:  # one failing run is a row, not the end of the sweep
        row.error = f"{type(error).__name__}: {error}"
        return row
    report = outcome.report
    row.scenario = scenario.name
    row.n_evs = scenario.n_evs
    row.passed = outcome.passed
    row.checks = len(report.checks)
    row.failed = [check.name for check in report.checks if not check.passed]
    row.faults = outcome.faults
    row.metrics = dict(report.to_json()["metrics"])  # type: ignore[call-overload]
    row.simulated_s = scenario.duration_ns / 1e9
    row.wall_s = outcome.wall_s
    return row


def check_before_start(program: Any, specs: list[RunSpec]) -> None:
    """Every scenario, fleet size and parameter checked in this process before any run starts."""
    seen: set[tuple[str, int | None, tuple[str, ...]]] = set()
    for spec in specs:
        key = (spec.scenario, spec.evs, spec.sets)
        if key in seen:
            continue
        seen.add(key)
        scenario = load_with_fleet_size(spec.scenario, spec.evs)
        _entries, problems = set_option_entries(list(spec.sets))
        if problems:
            raise UsageError(str(problems[0]))
        sim_io(program, scenario).set_parameters(program, list(spec.sets))


def _progress(done: int, total: int, started: float, width: int = 30) -> None:
    if not sys.stderr.isatty() and done not in (total, 1) and done % max(1, total // 4):
        return
    filled = int(width * done / total)
    end = "" if sys.stderr.isatty() else "\n"
    elapsed = time.monotonic() - started
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs, {elapsed:.0f} s",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def run_sweep(
    program_file: str, specs: list[RunSpec], jobs: int, show_progress: bool, native: bool = False
) -> list[RunRow]:
    rows: list[RunRow | None] = [None] * len(specs)
    started = time.monotonic()
    jobs = max(1, min(jobs, len(specs)))
    context = multiprocessing.get_context("spawn")  # no forked copies of threads or locks
    with context.Pool(jobs, initializer=_init_worker, initargs=(program_file, native)) as pool:
        for done, row in enumerate(pool.imap_unordered(run_one, specs), start=1):
            rows[row.spec.index] = row
            if show_progress:
                _progress(done, len(specs), started)
    if show_progress and sys.stderr.isatty():
        print(file=sys.stderr)
    return [row for row in rows if row is not None]


COLUMNS = [
    "run",
    "scenario",
    "evs",
    "parameters",
    "result",
    "checks",
    "failed",
    "simulated_s",
    "wall_s",
    "speed_x",
]


def table_rows(rows: list[RunRow]) -> list[dict[str, object]]:
    out = []
    for row in rows:
        result = "ERROR" if row.error else ("PASS" if row.passed else "FAIL")
        failed = ", ".join(row.failed + [f"task {t} faulted" for t in row.faults]) or row.error
        speed = row.simulated_s / row.wall_s if row.wall_s > 0 else 0.0
        out.append(
            {
                "run": row.spec.index + 1,
                "scenario": row.scenario or row.spec.scenario,
                "evs": row.n_evs if not row.error else (row.spec.evs if row.spec.evs is not None else ""),
                "parameters": row.spec.label,
                "result": result,
                "checks": f"{row.checks - len(row.failed)}/{row.checks}",
                "failed": failed,
                "simulated_s": f"{row.simulated_s:g}",
                "wall_s": f"{row.wall_s:.1f}",
                "speed_x": f"{speed:.0f}",
            }
        )
    return out


def write_csv(path: Path, rows: list[RunRow]) -> None:
    metric_keys = sorted({key for row in rows for key in row.metrics})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, "folder", *metric_keys])
        for row, cells in zip(rows, table_rows(rows), strict=True):
            writer.writerow(
                [cells[c] for c in COLUMNS]
                + [row.spec.folder]
                + [row.metrics.get(k, "") for k in metric_keys]
            )


def print_table(rows: list[RunRow]) -> None:
    cells = table_rows(rows)
    widths = {c: max(len(c), *(len(str(r[c])) for r in cells)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip())
    for r in cells:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS).rstrip())
    passed = sum(1 for row in rows if row.passed)
    print(f"{passed} of {len(rows)} runs passed")


def cmd_sweep(
    program: Any,
    program_file: str,
    scenarios: list[str],
    sizes: list[int | None],
    set_options: list[str],
    sweep: list[str],
    out_dir: str | None,
    csv_path: str | None,
    jobs: int | None,
    native: bool = False,
) -> int:
    out = Path(out_dir or "sim-sweep")
    specs = plan(scenarios, sizes, set_options, sweep, out)
    check_before_start(program, specs)
    rows = run_sweep(program_file, specs, jobs or os.cpu_count() or 1, show_progress=True, native=native)
    print_table(rows)
    target = Path(csv_path) if csv_path else out / "summary.csv"
    write_csv(target, rows)
    print(f"summary: {target}; reports: {out}/")
    return 0 if all(row.passed for row in rows) else 1
