"""Differential check of the code generator: every built-in simulation scenario run twice on this
runtime and ST, once with the code this compiler generates and once with the code an earlier
commit's compiler generates for the same program; the recorded histories (every sample of every
series) and the reports must be identical.

    python bench/codegen_differential.py --before c7aae99
    python bench/codegen_differential.py --before c7aae99 --scenario fcr_static --scenario lfsm --evs 100
    python bench/codegen_differential.py --before c7aae99 --st   # the ST of then and now, this compiler

Exit status 0 when every run is identical. The earlier compiler runs from a temporary git worktree
(bench/baseline_codegen.py) and compiles today's ST (programs/ and stdlib/ of this checkout).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_codegen import BaselineCompiler  # noqa: E402
from plcrun.cli_sim import simulate  # noqa: E402
from plcrun.compiler import api  # noqa: E402
from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.io.sim.scenario_load import load_with_fleet_size  # noqa: E402
from plcrun.state.program import CompiledProgram  # noqa: E402

SCENARIOS = sorted(p.stem for p in (ROOT / "runtime" / "io" / "sim" / "scenarios").glob("*.toml"))


def _compile_with_library(text: str, filename: str, tree: Path) -> CompiledProgram:
    """``text`` compiled by this compiler with the ST library of ``tree`` (an earlier checkout)."""
    library = tuple(
        (f"stdlib/{p.name}", p.read_text("utf-8")) for p in sorted((tree / "stdlib").glob("*.st"))
    )
    original = api.library_sources
    api._library_units.cache_clear()
    api.library_sources = lambda: library  # type: ignore[assignment]
    try:
        return api.compile_source(text, filename)
    finally:
        api.library_sources = original
        api._library_units.cache_clear()


def run(program: CompiledProgram, name: str, evs: int | None, folder: Path) -> tuple[Any, Any, float]:
    scenario = load_with_fleet_size(name, evs)
    start = time.perf_counter()
    outcome = simulate(program, scenario, folder)
    data = dict(outcome.data)
    for key in ("html", "picture", "series_csv", "cars_csv", "wall_s"):  # file names and timing differ
        data.pop(key, None)
    series = (folder / "series.csv").read_text() + (folder / "cars.csv").read_text()
    return data, series, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="c7aae99", help="the earlier commit whose compiler to compare")
    parser.add_argument("--scenario", action="append", help="a built-in scenario (default: all)")
    parser.add_argument("--evs", type=int, help="fleet size (default: the scenario's)")
    parser.add_argument(
        "--st",
        action="store_true",
        help="compare the ST instead: the earlier commit's programs/ and stdlib/ compiled by this "
        "compiler against this checkout's",
    )
    args = parser.parse_args()
    names = args.scenario or SCENARIOS
    path = ROOT / "programs" / "freq_response.st"
    program = compile_file(path)
    with BaselineCompiler(args.before) as baseline:
        if args.st:
            old = _compile_with_library(
                baseline.st_file("programs/freq_response.st"), str(path), baseline.tree
            )
        else:
            text = path.read_text("utf-8")
            # the earlier compiler with today's ST library: only the generated code differs
            lib = ROOT / "stdlib"
            baseline.tree.joinpath("stdlib").rename(baseline.tree / "stdlib.old")
            (baseline.tree / "stdlib").symlink_to(lib)
            old_source = baseline.generated(text, str(path))
            old = CompiledProgram(
                program.model,
                [compile(old_source, f"<{args.before}>", "exec")],
                old_source,
                program.diagnostics,
            )
    print(
        f"command: python bench/codegen_differential.py --before {args.before}"
        + (" --st" if args.st else "")
        + (
            "".join(f" --scenario {n}" for n in args.scenario or [])
            + (f" --evs {args.evs}" if args.evs else "")
        )
    )
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            new_data, new_series, new_s = run(program, name, args.evs, Path(tmp) / f"new-{name}")
            old_data, old_series, old_s = run(old, name, args.evs, Path(tmp) / f"old-{name}")
            same = new_data == old_data and new_series == old_series
            if not same:
                keys = [k for k in new_data if new_data.get(k) != old_data.get(k)]
                rows = [
                    i
                    for i, (a, b) in enumerate(
                        zip(new_series.splitlines(), old_series.splitlines(), strict=False)
                    )
                    if a != b
                ]
                print(f"  report keys that differ: {keys[:8]}; first differing rows: {rows[:5]}")
            differ += not same
            print(
                f"{name:<24} {'identical' if same else 'DIFFERENT'}  "
                f"({len(new_series.splitlines())} rows; wall {old_s:.1f} s before, {new_s:.1f} s now)"
            )
    print(f"{len(names) - differ} of {len(names)} scenarios identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
