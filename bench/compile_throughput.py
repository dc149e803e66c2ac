"""Front-end throughput on the OSCAT corpus: plcrun's parser, checker and compiler against blark.

Measured in one run on the same files (KB = 1024 bytes of source text):

* ``plcrun parse``: ``parse_source`` on whole files;
* ``plcrun check``: ``check_source`` on whole files (parse + type check, with the ST library);
* ``plcrun compile``: ``compile_source`` on each file reduced to what compiles (TYPE blocks and the
  POUs that are clean with their dependencies, see scripts/oscat_coverage.py) plus one small PROGRAM
  per POU so that every one of them is generated: parse + check + Python code generation + compile;
* ``segments``: every file split into its top-level items (TYPE, FUNCTION, FUNCTION_BLOCK, PROGRAM,
  CONFIGURATION blocks) and each item parsed alone by plcrun's ``parse_source`` and by blark
  (``blark.parse_source_code``, a Lark Earley parser for TwinCAT ST). blark stops at its first error
  and has no recovery, so whole files (which all contain MatIEC inline C) are not comparable; the
  ratio is taken over the items both parse without error. blark runs in a worker process with a
  time budget per file; files over budget are reported.

blark is not a plcrun dependency: ``pip install blark`` to get its column.

    python bench/compile_throughput.py
    python bench/compile_throughput.py --corpus DIR --blark-timeout 60 --reps 5
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import multiprocessing
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from plcrun.compiler.api import check_source, compile_source, read_source
from plcrun.compiler.diagnostics import CompileError, DiagnosticBag
from plcrun.compiler.parser import parse_source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from oscat_coverage import DEFAULT_CORPUS, analyse_file, harness_source

_ITEM_START = re.compile(r"^(TYPE|FUNCTION_BLOCK|FUNCTION|PROGRAM|CONFIGURATION)\b", re.MULTILINE)
_SYNTAX_CODES = {"E0001", "E0002", "E0003", "E0004"}


def split_items(text: str) -> list[str]:
    """Top-level items of a MatIEC-generated file (each starts at the beginning of a line)."""
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if not starts:
        return [text] if text.strip() else []
    bounds = [*starts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def kb(nbytes: int) -> float:
    return nbytes / 1024


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter_ns()
    result = function()
    return (time.perf_counter_ns() - start) / 1e9, result


def plcrun_parses(item: str) -> tuple[bool, float]:
    """(parsed without a syntax error, seconds) for one item."""
    diag = DiagnosticBag()
    seconds, _ = timed(lambda: parse_source(item, "item.st", diag))
    return not any(d.code in _SYNTAX_CODES for d in diag.errors()), seconds


# ------------------------------------------------------------------ blark in a worker process
def _blark_worker(connection: Connection) -> None:
    from blark.parse import get_parser, parse_source_code

    start = time.perf_counter()
    get_parser()
    connection.send(("ready", time.perf_counter() - start))
    while True:
        items = connection.recv()
        if items is None:
            return
        for item in items:
            begin = time.perf_counter_ns()
            result = parse_source_code(item)
            seconds = (time.perf_counter_ns() - begin) / 1e9
            error = ""
            if result.exception is not None:
                line = getattr(result.exception, "line", 0) or 0
                lines = item.splitlines()
                text = lines[line - 1].strip()[:40] if 0 < line <= len(lines) else ""
                error = f"{type(result.exception).__name__} at '{text}'"
            connection.send(("item", result.exception is None, seconds, error))
        connection.send(("done",))


@dataclass
class BlarkRun:
    startup_s: float = 0.0
    results: dict[str, list[tuple[bool, float, str]]] = field(default_factory=dict)
    timed_out: dict[str, int] = field(default_factory=dict)  # file -> items done before the budget ran out


class BlarkPool:
    """One worker process; killed and restarted when a file exceeds its time budget."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.startup_s = 0.0
        self._start()

    def _start(self) -> None:
        self.connection, child = self.context.Pipe()
        self.process = self.context.Process(target=_blark_worker, args=(child,), daemon=True)
        self.process.start()
        message = self.connection.recv()
        self.startup_s = max(self.startup_s, message[1])

    def parse_file(self, items: list[str], budget_s: float) -> tuple[list[tuple[bool, float, str]], bool]:
        self.connection.send(items)
        deadline = time.monotonic() + budget_s
        out: list[tuple[bool, float, str]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.connection.poll(remaining):
                self.close()
                self._start()
                return out, False
            message = self.connection.recv()
            if message[0] == "done":
                return out, True
            out.append((message[1], message[2], message[3]))

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


def run_blark(files: dict[str, list[str]], budget_s: float) -> BlarkRun:
    run = BlarkRun()
    pool = BlarkPool()
    try:
        for name, items in files.items():
            results, finished = pool.parse_file(items, budget_s)
            run.results[name] = results
            if not finished:
                run.timed_out[name] = len(results)
            print(f"  blark {name}: {sum(ok for ok, _, _ in results)}/{len(items)} items", flush=True)
    finally:
        run.startup_s = pool.startup_s
        pool.connection.send(None)
        pool.process.join(timeout=5)
        pool.close()
    return run


# ------------------------------------------------------------------ plcrun
def median_time(function: Callable[[], Any], reps: int) -> float:
    return statistics.median(timed(function)[0] for _ in range(reps))


def compile_subset(path: Path) -> tuple[str, str]:
    """(file name, reduced source) of the part of ``path`` that compiles (see module docstring)."""
    report = analyse_file(path, path.name, harness=False)
    assert report.unit is not None
    source, _ = harness_source(report.text, report.pous, report.unit)
    return path.name, source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of OSCAT .st files")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the plcrun measurements (median)")
    parser.add_argument("--blark-timeout", type=float, default=120.0, help="blark time budget per file, s")
    parser.add_argument("--no-blark", action="store_true", help="skip the blark column")
    parser.add_argument("--max-files", type=int, default=0, help="only the first N files (0: all)")
    args = parser.parse_args(argv)
    files = sorted(args.corpus.glob("*.st")) if args.corpus.is_dir() else []
    if args.max_files:
        files = files[: args.max_files]
    if not files:
        print(f"skipped: no OSCAT corpus at {args.corpus} (give --corpus DIR with the .st files)")
        return 0
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    texts = {p.name: read_source(p) for p in files}
    sizes = {p.name: p.stat().st_size for p in files}
    total_kb = kb(sum(sizes.values()))
    print(f"{len(files)} files, {total_kb:.1f} KB; plcrun figures are medians of {args.reps} runs")

    grammar_s, _ = timed(lambda: parse_source("PROGRAM p END_PROGRAM", "warmup.st", DiagnosticBag()))
    check_source("PROGRAM p END_PROGRAM", "warmup.st")  # the ST library is parsed once per process
    parse_s = sum(
        median_time(lambda t=text, n=name: parse_source(t, n, DiagnosticBag()), args.reps)
        for name, text in texts.items()
    )
    check_s = sum(
        median_time(lambda t=text, n=name: check_source(t, n), args.reps) for name, text in texts.items()
    )

    subsets = dict(compile_subset(p) for p in files)
    subset_bytes = sum(len(s.encode("utf-8")) for s in subsets.values())

    def compile_one(name: str, source: str) -> None:
        try:
            compile_source(source, name)
        except CompileError as error:  # counted, not fatal: the coverage script explains these
            compile_failures.append(f"{name}: {error}")

    compile_failures: list[str] = []
    compile_s = sum(
        median_time(lambda s=source, n=name: compile_one(n, s), args.reps) for name, source in subsets.items()
    )

    items = {name: split_items(text) for name, text in texts.items()}
    plcrun_items = {name: [plcrun_parses(item) for item in parts] for name, parts in items.items()}

    print()
    print(f"{'measurement':<58} {'KB':>7} {'seconds':>8} {'KB/s':>8}")

    def row(label: str, size_kb: float, seconds: float) -> float:
        rate = size_kb / seconds if seconds > 0 else float("inf")
        print(f"{label:<58} {size_kb:>7.1f} {seconds:>8.3f} {rate:>8.1f}")
        return rate

    print(f"(plcrun grammar/parser construction, once per process: {grammar_s:.3f} s)")
    parse_rate = row("plcrun parse_source, whole files", total_kb, parse_s)
    check_rate = row("plcrun check_source (parse + check), whole files", total_kb, check_s)
    compile_rate = row("plcrun compile_source, compilable part + harness", kb(subset_bytes), compile_s)
    if compile_failures:
        print(f"  ({len(compile_failures)} compile_source failures, e.g. {compile_failures[0][:120]})")

    if args.no_blark:
        print("\nblark: skipped (--no-blark)")
        return 0
    if importlib.util.find_spec("blark") is None:
        print(
            "\nblark: not installed; `pip install blark` (benchmark only, not a plcrun dependency) for its column"
        )
        return 0
    print(f"\nblark, one item at a time in a worker process (budget {args.blark_timeout:.0f} s per file):")
    blark = run_blark(items, args.blark_timeout)
    both_bytes = 0
    plcrun_common_s = 0.0
    blark_common_s = 0.0
    blark_ok_bytes = 0
    blark_ok_s = 0.0
    counts = [0, 0, 0, 0]  # items, plcrun ok, blark ok, both ok
    reasons: dict[str, int] = {}
    for name, parts in items.items():
        for i, item in enumerate(parts):
            counts[0] += 1
            p_ok, p_s = plcrun_items[name][i]
            counts[1] += p_ok
            done = blark.results.get(name, [])
            if i >= len(done):
                continue
            b_ok, b_s, error = done[i]
            counts[2] += b_ok
            if b_ok:
                blark_ok_bytes += len(item.encode("utf-8"))
                blark_ok_s += b_s
            else:
                reason = error[:80]
                reasons[reason] = reasons.get(reason, 0) + 1
            if p_ok and b_ok:
                counts[3] += 1
                both_bytes += len(item.encode("utf-8"))
                plcrun_common_s += p_s
                blark_common_s += b_s
    print(f"(blark parser construction in the worker: {blark.startup_s:.3f} s)")
    print(
        f"items: {counts[0]}; plcrun parses {counts[1]} without syntax error, blark {counts[2]}, both {counts[3]}"
    )
    for name, done in blark.timed_out.items():
        print(f"  blark ran out of its budget on {name} after {done} of {len(items[name])} items")
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  blark rejected {count} items: {reason}")
    print()
    blark_rate = row("blark parse_source_code, items it parses", kb(blark_ok_bytes), blark_ok_s)
    common_plcrun = row("plcrun parse_source, items both parse", kb(both_bytes), plcrun_common_s)
    common_blark = row("blark parse_source_code, items both parse", kb(both_bytes), blark_common_s)
    print()
    print(f"parse, same items:            plcrun / blark = {common_plcrun / common_blark:.1f}x")
    print(f"plcrun whole-file parse vs blark items: {parse_rate / blark_rate:.1f}x")
    print(f"plcrun parse + check vs blark parse:    {check_rate / blark_rate:.1f}x")
    print(f"plcrun full compile vs blark parse:     {compile_rate / blark_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
