"""Seeded mutation fuzz of the ST compiler over every shipped ``.st`` file.

Each mutant is one shipped file (``stdlib/``, ``programs/``, ``examples/``, ``bench/programs/`` and
every ``.st`` under ``tests/``) changed by one to four seeded mutations: delete, insert or replace
a span with an ST token, duplicate or move a line, splice in a line of another file, or blow a span
up to a size or nesting that used to break the compiler (a long run of blanks, nested comments or
parentheses, a long sum, a huge literal, many ELSIFs). The mutant is compiled; what compiles runs
two scans on the executor in virtual time. Allowed outcomes: diagnostics (every one rendered), a
program, a positioned runtime fault. Anything else (a Python exception escaping the compiler, the
executor or the renderer) is counted and shown with its seed, so it can be replayed.

    python bench/st_fuzz.py                       # 10,000 mutants, seed 1
    python bench/st_fuzz.py --mutants 50000 --seed 7
    python bench/st_fuzz.py --replay 7:1234       # one mutant again, with its traceback

The CI test (tests/compiler/test_mutation_fuzz.py) runs a few hundred mutants with a fixed seed.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from plcrun.compiler.api import compile_source
from plcrun.compiler.diagnostics import CompileError
from plcrun.executor.config import ExecutorConfig
from plcrun.executor.engine import NothingToRun
from plcrun.site import run_cycles

ROOT = Path(__file__).resolve().parents[1]

TOKENS = (
    "PROGRAM END_PROGRAM FUNCTION_BLOCK END_FUNCTION_BLOCK FUNCTION END_FUNCTION VAR VAR_INPUT "
    "VAR_OUTPUT VAR_IN_OUT VAR_GLOBAL VAR_EXTERNAL END_VAR CONSTANT RETAIN IF THEN ELSIF ELSE END_IF "
    "CASE OF END_CASE FOR TO BY DO END_FOR WHILE END_WHILE REPEAT UNTIL END_REPEAT EXIT CONTINUE "
    "RETURN TYPE END_TYPE STRUCT END_STRUCT ARRAY AT CONFIGURATION RESOURCE TASK WITH ON INT REAL "
    "LREAL BOOL TIME STRING DINT TON R_TRIG x y i main := ; : , . .. ( ) [ ] + - * / ** = <> < >= "
    "AND OR XOR NOT MOD 1 0 -7 3.5 1.0E38 16#FF 2#1010 T#10ms T#1h2m INT#5 'a$'b' \"w\" TRUE FALSE "
    "%IX0.0 %QW2 (* *) // { } {{ }} ^ => # $ \\ a__b x_ MAX( LIMIT( QUALITY_OF( {attribute 'safe' := 'hi'}"
).split(" ")
TOKENS = [*TOKENS, "\n", "\n\n"]


def shipped_files(root: Path = ROOT) -> list[Path]:
    """Every ``.st`` file the project ships or tests with, in a stable order."""
    found: set[Path] = set()
    for folder in ("stdlib", "programs", "examples", "bench", "tests"):
        found.update((root / folder).rglob("*.st"))
    return sorted(found)


def _blow_up(rng: random.Random) -> str:
    """A piece of text at a size that used to cost recursion, quadratic or exponential time."""
    n = rng.choice([24, 200, 1_000, 5_000])
    return rng.choice(
        [
            " " * (n * 20),
            "(*" * n + "*)" * n,
            "(" * n + "1" + ")" * n,
            "x := " + " + ".join(["1"] * n) + ";",
            "9" * (n * 2),
            "IF x THEN " * min(n, 300) + "y := 1; " + "END_IF; " * min(n, 300),
            "WHILE x DO " * min(n, 300) + "EXIT; " + "END_WHILE; " * min(n, 300),
            "IF x = 0 THEN y := 0; " + "ELSIF x = 1 THEN y := 1; " * n + "END_IF;",
            "-(" * min(n, 400) + "1" + ")" * min(n, 400),
            "a" * (n * 10),
        ]
    )


def mutate(text: str, rng: random.Random, others: list[str]) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        span = rng.randint(1, 12)
        kind = rng.choice(["delete", "insert", "insert", "replace", "line", "splice", "blow"])
        if kind == "delete":
            text = text[:at] + text[at + span :]
        elif kind == "insert":
            text = text[:at] + " " + rng.choice(TOKENS) + " " + text[at:]
        elif kind == "replace":
            text = text[:at] + rng.choice(TOKENS) + text[at + span :]
        elif kind == "line":
            lines = text.split("\n")
            line = rng.choice(lines)
            lines.insert(rng.randint(0, len(lines)), line)
            text = "\n".join(lines)
        elif kind == "splice":
            donor = rng.choice(others).split("\n")
            text = text[:at] + "\n" + rng.choice(donor) + "\n" + text[at:]
        else:
            text = text[:at] + " " + _blow_up(rng) + " " + text[at:]
    return text


@dataclass
class Outcome:
    mutants: int = 0
    diagnosed: int = 0  # rejected with diagnostics
    ran: int = 0  # compiled and ran two scans (a task fault included)
    faulted: int = 0
    escaped: list[tuple[str, str, str]] = field(default_factory=list)  # (seed:index, file, error)
    worst_compile_s: float = 0.0
    worst_mutant: str = ""
    total_s: float = 0.0


def run_one(text: str, name: str, outcome: Outcome, label: str) -> None:
    """Compile (and run) one mutant; record the outcome. Unexpected exceptions propagate."""
    start = time.perf_counter()
    try:
        program = compile_source(text, name)
    except CompileError as error:
        elapsed = time.perf_counter() - start
        for d in error.diagnostics:
            d.render(error.sources.get(d.pos.file))
            if "internal compiler error" in d.message:  # a generator bug caught late: count it
                raise AssertionError(d.message) from None
        if not error.diagnostics:
            raise AssertionError("CompileError without diagnostics") from None
        outcome.diagnosed += 1
    else:
        elapsed = time.perf_counter() - start
        try:
            result = run_cycles(program, 2, ExecutorConfig(loop_budget=20_000))
        except NothingToRun:
            pass
        else:
            outcome.ran += 1
            if result.faults:
                outcome.faulted += 1
                for message in result.faults.values():
                    if "runtime fault: " not in message:
                        raise AssertionError(f"a fault that is not positioned: {message}")
    if elapsed > outcome.worst_compile_s:
        outcome.worst_compile_s, outcome.worst_mutant = elapsed, label


def fuzz(
    mutants: int,
    seed: int,
    files: list[Path] | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> Outcome:
    files = files or shipped_files()
    texts = [f.read_text("utf-8") for f in files]
    outcome = Outcome()
    start = time.perf_counter()
    for index in range(mutants):
        label = f"{seed}:{index}"
        which, mutant = make_mutant(seed, index, texts)
        try:
            run_one(mutant, files[which].name, outcome, label)
        except Exception as error:  # counting what escapes is the point
            outcome.escaped.append(
                (label, str(files[which].relative_to(ROOT)), f"{type(error).__name__}: {error}"[:200])
            )
        outcome.mutants += 1
        if progress is not None and outcome.mutants % 500 == 0:
            progress(outcome)
    outcome.total_s = time.perf_counter() - start
    return outcome


def make_mutant(seed: int, index: int, texts: list[str]) -> tuple[int, str]:
    rng = random.Random(seed * 1_000_003 + index)
    which = index % len(texts)
    return which, mutate(texts[which], rng, texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mutants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", help="SEED:INDEX of one mutant to run again with its traceback")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the executor's alarms and fault logs of faulting mutants
    files = shipped_files()
    if args.replay:
        seed, index = (int(p) for p in args.replay.split(":"))
        which, mutant = make_mutant(seed, index, [f.read_text("utf-8") for f in files])
        print(f"mutant {args.replay} of {files[which].relative_to(ROOT)} ({len(mutant)} characters)")
        try:
            run_one(mutant, files[which].name, Outcome(), args.replay)
        except Exception:
            traceback.print_exc()
            return 1
        print("no exception")
        return 0
    print(f"command: python bench/st_fuzz.py --mutants {args.mutants} --seed {args.seed}")
    print(f"python {sys.version.split()[0]}; {len(files)} shipped .st files")

    def progress(o: Outcome) -> None:
        print(
            f"  {o.mutants} mutants, {len(o.escaped)} escaped, worst compile {o.worst_compile_s:.2f} s",
            flush=True,
        )

    o = fuzz(args.mutants, args.seed, files, progress)
    print(
        f"mutants: {o.mutants} (diagnosed {o.diagnosed}, compiled and ran {o.ran}, of which faulted {o.faulted})"
    )
    print(f"escaping exceptions: {len(o.escaped)}")
    for label, name, error in o.escaped[:20]:
        print(f"  {label} {name}: {error}")
    print(f"worst compile time: {o.worst_compile_s:.2f} s (mutant {o.worst_mutant}); total {o.total_s:.0f} s")
    return 1 if o.escaped else 0


if __name__ == "__main__":
    sys.exit(main())
