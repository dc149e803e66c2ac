"""How much of the OSCAT corpus plcrun's compiler accepts, and why the rest fails.

The corpus (/work/shared/corpora/oscat, see its NOTICE.md) is MatIEC-generated ST: each file starts
with shared TYPE blocks and helper POUs and holds many POUs that call each other, so every file is
checked as a whole with ``check_source`` and each error is attributed to the POU whose line range
(from the parsed AST) contains it. Per POU the script reports:

* parsed: the POU is in the AST (POUs swallowed by an unterminated comment or a fatal syntax error
  are not; POU headers are counted with a plain line scan to notice them);
* clean inside: no error diagnostic inside the POU's own lines;
* clean with dependencies: clean inside, and every POU of the same file it calls or declares an
  instance of is clean with its dependencies too;
* generated: the file reduced to its TYPE blocks and clean-with-dependencies POUs, plus one small
  PROGRAM per FUNCTION_BLOCK/FUNCTION that instantiates and calls it with default inputs, compiled
  with ``compile_source`` (parse, check, Python code generation and compile);
* ran: that PROGRAM ran a few scans without a fault. Faults are split into ST runtime faults
  (division by zero with all-zero inputs, ...) and other Python exceptions (compiler bugs).

Failures are grouped by diagnostic code and message pattern (quoted names and numbers replaced by
placeholders) with an example location each. ``--matiec-comments`` first rewrites comments the way
MatIEC reads them (``(*`` ... the next ``*)``, no nesting) to see what the nesting rule hides.

    python scripts/oscat_coverage.py
    python scripts/oscat_coverage.py --corpus DIR --top 20 --matiec-comments
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from plcrun.compiler import st_ast as A
from plcrun.compiler.api import check_source, compile_source, read_source
from plcrun.compiler.ast_queries import walk_exprs
from plcrun.compiler.diagnostics import CompileError, Diagnostic, DiagnosticBag
from plcrun.compiler.parser import parse_source
from plcrun.state.faults import describe_fault
from plcrun.state.support import ScanAborted, STFault

DEFAULT_CORPUS = Path("/work/shared/corpora/oscat")
OUTSIDE = "<outside any POU>"
_HEADER = re.compile(r"^(FUNCTION_BLOCK|FUNCTION|PROGRAM)\s+([A-Za-z_]\w*)", re.MULTILINE)


@dataclass
class PouReport:
    name: str
    kind: str
    first_line: int
    last_line: int
    errors: list[Diagnostic] = field(default_factory=list)
    deps: set[str] = field(default_factory=set)
    clean_with_deps: bool = False
    generated: bool = False
    ran: bool = False
    fault: str = ""


@dataclass
class FileReport:
    path: Path
    size: int
    seconds: float
    declared: list[tuple[str, int]]  # (POU name, header line) from a plain line scan
    pous: dict[str, PouReport]
    outside: list[Diagnostic]  # errors inside no parsed POU (TYPE blocks, swallowed text)
    generate_seconds: float = 0.0
    harness_errors: list[Diagnostic] = field(default_factory=list)
    text: str = ""
    unit: A.CompilationUnit | None = None

    @property
    def unparsed(self) -> list[tuple[str, int]]:
        return [(name, line) for name, line in self.declared if name.upper() not in self.pous]

    @property
    def errors(self) -> int:
        return len(self.outside) + sum(len(p.errors) for p in self.pous.values())


# ------------------------------------------------------------------ source helpers
def matiec_comments(text: str) -> str:
    """Comments read as MatIEC reads them: ``(*`` ends at the next ``*)``; any ``(*`` inside is
    neutralised (same length, so line and column numbers do not move)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            end = i + 1
            while end < n and text[end] != "'":
                end += 2 if text[end] == "$" else 1
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("(*", i):
            close = text.find("*)", i + 2)
            close = n if close < 0 else close
            out.append("(*" + text[i + 2 : close].replace("(*", "( "))
            i = close
        else:
            out.append(c)
            i += 1
    return "".join(out)


def declared_pous(text: str) -> list[tuple[str, int]]:
    """POU headers at the start of a line (MatIEC writes them there; commented-out code is indented)."""
    return [(m.group(2), text.count("\n", 0, m.start()) + 1) for m in _HEADER.finditer(text)]


def _type_names(ref: A.TypeRef | None) -> Iterator[str]:
    if isinstance(ref, A.NamedTypeRef):
        yield ref.name.upper()
    elif isinstance(ref, A.ArrayTypeRef):
        yield from _type_names(ref.element)


def pou_dependencies(pou: A.Pou, known: set[str]) -> set[str]:
    """Names of POUs of ``known`` that ``pou`` calls or declares instances of."""
    names = set()
    for call in walk_exprs(pou.body):
        if isinstance(call, A.Call) and isinstance(call.callee, A.Name):
            names.add(call.callee.name.upper())
    for block in pou.var_blocks:
        for decl in block.decls:
            names.update(_type_names(decl.type_ref))
    names.discard(pou.name.upper())
    return names & known


def message_pattern(message: str) -> str:
    """A diagnostic message with the specifics replaced: quoted text -> '…', numbers -> N."""
    pattern = re.sub(r"'[^']*'", "'…'", message)
    return re.sub(r"\b\d+\b", "N", pattern)


# ------------------------------------------------------------------ analysis
def analyse_file(
    path: Path, display_name: str, rewrite_comments: bool = False, scans: int = 3, harness: bool = True
) -> FileReport:
    text = read_source(path)
    if rewrite_comments:
        text = matiec_comments(text)
    start = time.perf_counter()
    diagnostics, _ = check_source(text, display_name)
    seconds = time.perf_counter() - start
    unit = parse_source(text, display_name, DiagnosticBag())
    pous: dict[str, PouReport] = {}
    for pou in unit.pous:
        pous[pou.name.upper()] = PouReport(pou.name, pou.kind, pou.pos.line, pou.end_pos.line)
    known = set(pous)
    for pou in unit.pous:
        pous[pou.name.upper()].deps = pou_dependencies(pou, known)
    outside: list[Diagnostic] = []
    for d in diagnostics:
        if not d.is_error or d.pos.file != display_name:
            continue
        owner = next((p for p in pous.values() if p.first_line <= d.pos.line <= p.last_line), None)
        (owner.errors if owner is not None else outside).append(d)
    _mark_clean_with_deps(pous)
    report = FileReport(path, path.stat().st_size, seconds, declared_pous(text), pous, outside)
    report.text, report.unit = text, unit
    if harness:
        start = time.perf_counter()
        generate_and_run(report, text, unit, scans)
        report.generate_seconds = time.perf_counter() - start
    return report


def _mark_clean_with_deps(pous: dict[str, PouReport]) -> None:
    state: dict[str, bool] = {}

    def clean(name: str, visiting: frozenset[str]) -> bool:
        if name in state:
            return state[name]
        if name in visiting:  # a cycle: judged by the members' own errors
            return not pous[name].errors
        report = pous[name]
        ok = not report.errors and all(clean(dep, visiting | {name}) for dep in report.deps)
        state[name] = ok
        return ok

    for name, report in pous.items():
        report.clean_with_deps = clean(name, frozenset())


def harness_source(
    text: str, pous: dict[str, PouReport], unit: A.CompilationUnit
) -> tuple[str, dict[str, str]]:
    """The file reduced to its TYPE blocks and clean-with-dependencies POUs (other lines blanked, so
    line numbers stay), plus one PROGRAM per POU that instantiates it and calls it with default
    inputs. Returns (source, harness program name -> POU name)."""
    lines = text.split("\n")
    keep = [False] * len(lines)
    in_type = False
    for i, line in enumerate(lines):
        in_type = in_type or line.startswith("TYPE")
        keep[i] = in_type
        in_type = in_type and not line.startswith("END_TYPE")
    decls = {p.name.upper(): p for p in unit.pous}
    programs: list[str] = []
    harness: dict[str, str] = {}
    for key, report in pous.items():
        if not report.clean_with_deps:
            continue
        for i in range(report.first_line - 1, min(report.last_line, len(lines))):
            keep[i] = True
        pou = decls[key]
        in_outs = any(b.kind == "VAR_IN_OUT" for b in pou.var_blocks)
        name = f"ZZ_RUN_{report.name}"
        if pou.kind == "FUNCTION_BLOCK":
            call = "" if in_outs else "inst();"
            programs.append(f"PROGRAM {name}\nVAR inst : {report.name}; END_VAR\n{call}\nEND_PROGRAM")
        elif pou.kind == "FUNCTION" and not in_outs:
            programs.append(f"PROGRAM {name}\n{report.name}();\nEND_PROGRAM")
        else:
            continue
        harness[name.upper()] = key
    reduced = "\n".join(line if k else "" for line, k in zip(lines, keep, strict=True))
    return reduced + "\n" + "\n".join(programs) + "\n", harness


_ST_FAULTS = (ZeroDivisionError, OverflowError, IndexError, STFault, ScanAborted)


def generate_and_run(report: FileReport, text: str, unit: A.CompilationUnit, scans: int) -> None:
    """Compile the harness of ``report``'s file with ``compile_source`` and run every harness
    program ``scans`` times with default inputs; fills the POUs' generated/ran/fault fields."""
    source, harness = harness_source(text, report.pous, unit)
    if not harness:
        return
    try:
        program = compile_source(source, report.path.name)
    except CompileError as error:
        report.harness_errors = [d for d in error.diagnostics if d.is_error]
        return
    generated = {m.group(1).upper() for m in re.finditer(r"^# ---- (\S+) \(", program.python_source, re.M)}
    for key, pou in report.pous.items():
        pou.generated = pou.clean_with_deps and key in generated
    state = program.new_state()
    task = state.task_infos[program.tasks[0].name]
    for instance_name, body in state.task_runners(program.tasks[0].name):
        key = harness.get(instance_name.upper())
        if key is None:
            continue
        pou = report.pous[key]
        try:
            for k in range(scans):
                state.rt.begin_scan(k * 10_000_000, task)
                body()
            pou.ran = True
        except BaseException as error:  # faults are what this column counts; Ctrl-C still stops
            if isinstance(error, KeyboardInterrupt):
                raise
            fault = describe_fault(error, program.sources)
            kind = "ST runtime fault" if isinstance(error, _ST_FAULTS) else "Python error (compiler bug?)"
            pou.fault = f"{kind}: {fault}"


# ------------------------------------------------------------------ report
_COLUMNS = (("POUs", 5), ("parsed", 6), ("clean", 6), ("+deps", 6), ("gen", 5), ("ran", 5), ("errors", 6))


def file_row(r: FileReport) -> tuple[int, ...]:
    pous = list(r.pous.values())
    return (
        len(r.declared),
        len(pous),
        sum(not p.errors for p in pous),
        sum(p.clean_with_deps for p in pous),
        sum(p.generated for p in pous),
        sum(p.ran for p in pous),
        r.errors,
    )


def print_report(reports: list[FileReport], top: int, seconds: float) -> None:
    total_kb = sum(r.size for r in reports) / 1024

    def line(label: str, kb: float, values: tuple[int, ...] | list[int]) -> str:
        cells = " ".join(f"{v:>{w}}" for v, (_, w) in zip(values, _COLUMNS, strict=True))
        return f"{label:<50} {kb:>6.1f} {cells}"

    print(f"{'file':<50} {'KB':>6} " + " ".join(f"{name:>{w}}" for name, w in _COLUMNS))
    rows = [file_row(r) for r in reports]
    for r, row in zip(reports, rows, strict=True):
        print(line(r.path.name, r.size / 1024, row))
    sums = [sum(col) for col in zip(*rows, strict=True)]
    print(line("total", total_kb, sums))
    declared, parsed, clean, with_deps, generated, ran, _ = sums

    def pct(k: int) -> str:
        return f"{100 * k / declared:.1f} %" if declared else "-"

    print()
    print(f"POU occurrences (headers found): {declared}")
    print(f"  parsed into the AST:                   {parsed:>4}  ({pct(parsed)})")
    print(f"  no error inside their own lines:       {clean:>4}  ({pct(clean)})")
    print(f"  ... and all POUs they use clean too:   {with_deps:>4}  ({pct(with_deps)})")
    print(f"  generated + compiled by compile_source: {generated:>3}  ({pct(generated)})")
    print(f"  ran {'3'} scans with default inputs:       {ran:>4}  ({pct(ran)})")
    distinct_all = {p.name.upper() for r in reports for p in r.pous.values()} | {
        n.upper() for r in reports for n, _ in r.unparsed
    }
    distinct_clean = {p.name.upper() for r in reports for p in r.pous.values() if p.clean_with_deps}
    print(
        f"distinct POU names: {len(distinct_all)} (the shared helper POUs repeat in every file); "
        f"clean with dependencies in at least one file: {len(distinct_clean)}"
    )
    files_clean = sum(1 for r in reports if r.errors == 0)
    print(f"files without any error: {files_clean} of {len(reports)}")
    check_seconds = sum(r.seconds for r in reports)
    gen_seconds = sum(r.generate_seconds for r in reports)
    print(
        f"{total_kb:.1f} KB; check_source {check_seconds:.2f} s ({total_kb / max(check_seconds, 1e-9):.0f} KB/s); "
        f"harness compile + runs {gen_seconds:.2f} s; total {seconds:.2f} s"
    )
    _print_reasons(reports, top)
    _print_unparsed(reports)
    _print_harness(reports)


def _print_reasons(reports: list[FileReport], top: int) -> None:
    groups: dict[tuple[str, str], list[tuple[str, Diagnostic]]] = defaultdict(list)
    for r in reports:
        for p in r.pous.values():
            for d in p.errors:
                groups[(d.code, message_pattern(d.message))].append((p.name, d))
        for d in r.outside:
            groups[(d.code, message_pattern(d.message))].append((OUTSIDE, d))

    def pou_count(items: list[tuple[str, Diagnostic]]) -> int:
        return len({(d.pos.file, name) for name, d in items if name != OUTSIDE})

    ranked = sorted(groups.items(), key=lambda item: (-pou_count(item[1]), -len(item[1]), item[0]))
    print(f"\nTop {min(top, len(ranked))} failure reasons (POUs = POU occurrences with this error inside):")
    print(f"{'code':<6} {'POUs':>5} {'errors':>6}  pattern  |  example")
    for (code, pattern), items in ranked[:top]:
        name, example = items[0]
        where = f"{Path(example.pos.file).name}:{example.pos.line}:{example.pos.col} in {name}"
        print(f"{code:<6} {pou_count(items):>5} {len(items):>6}  {pattern}  |  {where}: {example.message}")
    only: Counter[str] = Counter()
    for r in reports:
        for p in r.pous.values():
            codes = {d.code for d in p.errors}
            if len(codes) == 1:
                only[next(iter(codes))] += 1
    if only:
        print(
            "POUs failing for one diagnostic code only: "
            + ", ".join(f"{c} {k}" for c, k in only.most_common())
        )


def _print_unparsed(reports: list[FileReport]) -> None:
    lost = [(r, name, line) for r in reports for name, line in r.unparsed]
    if not lost:
        return
    print(f"\nPOUs not in the AST ({len(lost)}), with the errors outside any parsed POU in their file:")
    for r in reports:
        names = [f"{name}@{line}" for name, line in r.unparsed]
        if not names:
            continue
        causes = "; ".join(f"{d.pos.line}:{d.pos.col} {d.code} {d.message}" for d in r.outside[:3])
        causes = causes or "no diagnostic: the header is inside a comment or another POU's text"
        more = ", ..." if len(names) > 4 else ""
        print(f"  {r.path.name}: {len(names)} ({', '.join(names[:4])}{more}) <- {causes}")


def _print_harness(reports: list[FileReport]) -> None:
    print("\nharness (clean POUs + one PROGRAM per FB/FUNCTION, compiled with compile_source, 3 scans):")
    for r in reports:
        for d in r.harness_errors[:5]:
            print(f"  harness did not compile: {d.headline()}")
    skipped = [p for r in reports for p in r.pous.values() if p.clean_with_deps and not p.generated]
    if skipped:
        names = ", ".join(sorted({p.name for p in skipped})[:8])
        print(
            f"  not generated ({len(skipped)}: FUNCTIONs with VAR_IN_OUT that nothing calls, or harness errors): {names}"
        )
    faults: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for r in reports:
        for p in r.pous.values():
            if p.fault:
                kind, _, detail = p.fault.partition(": ")
                key = f"{kind}: {detail.split('runtime fault: ')[-1]}"
                faults[key] += 1
                examples.setdefault(key, f"{p.name} ({detail.split(': runtime fault')[0]})")
    for key, count in faults.most_common():
        print(f"  {count:>4} x {key}  e.g. {examples[key]}")
    if not faults:
        print("  no faults")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of OSCAT .st files")
    parser.add_argument("--top", type=int, default=15, help="failure reasons to list")
    parser.add_argument("--scans", type=int, default=3, help="scans each harness program runs")
    parser.add_argument(
        "--matiec-comments", action="store_true", help="read (* *) comments without nesting, as MatIEC does"
    )
    args = parser.parse_args(argv)
    files = sorted(args.corpus.glob("*.st")) if args.corpus.is_dir() else []
    if not files:
        print(f"skipped: no OSCAT corpus at {args.corpus} (give --corpus DIR with the .st files)")
        return 0
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(
        "method: each file is checked whole with check_source (with plcrun's ST library); an error belongs "
        "to the POU whose AST line range contains it; '+deps' also needs every POU of the file it calls "
        "or instantiates to be clean; 'gen': compiled by compile_source as part of the file's '+deps' POUs "
        "with one harness PROGRAM per FB/FUNCTION; 'ran': its harness ran the scans without a fault"
        + ("; comments read without nesting (MatIEC)" if args.matiec_comments else "")
    )
    start = time.perf_counter()
    reports = [analyse_file(path, path.name, args.matiec_comments, args.scans) for path in files]
    print_report(reports, args.top, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
