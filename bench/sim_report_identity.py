"""Are ``plcrun sim``'s results still the same? Every built-in scenario (at its own fleet) and a few
larger fleets and other programs, run by ``plcrun sim`` once with an earlier commit's build and once
with this checkout, and every file of the two report folders compared byte for byte (report.json as
data without its file-name keys), with the exit status, the terminal summary and the log lines
(their clock times removed).

    python bench/sim_report_identity.py --before 8d7aa93                 # all cases (a few minutes)
    python bench/sim_report_identity.py --before 8d7aa93 --scenario fcr_static --scenario ffr_ramp
    python bench/sim_report_identity.py --before 8d7aa93 --quick         # the larger fleets + 4 scenarios
    python bench/sim_report_identity.py --before 8d7aa93 --case quiet_grid@200 --case ocpp_curve:ocpp_local_frequency
    python bench/sim_report_identity.py --list
    python bench/sim_report_identity.py --before checkout --native      # interpreted vs native build

``--before checkout`` takes this checkout as the earlier build too; with ``--native`` the later
build runs ``plcrun sim --native`` (the native build of each program is made once, into the cache).

A case is ``SCENARIO[@EVS][:PROGRAM]`` (PROGRAM a file of programs/ without ``.st``; default
freq_response at the scenario's own fleet). Each build is whole: its runtime, its compiler, its
stdlib/ and programs/, copied into a temporary folder as the package ``plcrun`` and put first on
PYTHONPATH (the earlier one by ``git archive``; this checkout as it is on disk, uncommitted changes
included), so neither build can pick up the other's ST library through an editable install.
The runs go in child processes, ``--jobs`` at a time. Exit status 0 when every case is identical.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p.stem for p in (ROOT / "runtime" / "io" / "sim" / "scenarios").glob("*.toml"))
# larger fleets and the other programs: the paths the built-in fleets leave out (many reporting
# cars, long history rows, other programs' outputs)
LARGER = (
    "quiet_grid@60",
    "fcr_static@100",
    "ffr_ramp@100:ffr",
    "ocpp_curve:ocpp_local_frequency",
    "sensor_faults@100",
)
QUICK = ("fcr_static", "loss_of_grid", "sensor_faults", "transformer_limit", *LARGER)
PATH_KEYS = ("picture", "series_csv", "cars_csv", "html")  # report.json's file names
RUNNER = "import sys; from plcrun.cli import main; sys.argv[0] = 'plcrun'; sys.exit(main())"
CLOCK_TIME = re.compile(r"^\d\d:\d\d:\d\d ", re.MULTILINE)  # the log format's %H:%M:%S


@dataclass(frozen=True)
class Case:
    scenario: str
    evs: int | None
    program: str

    @classmethod
    def parse(cls, text: str) -> Case:
        match = re.fullmatch(r"([A-Za-z0-9_]+)(?:@(\d+))?(?::([A-Za-z0-9_]+))?", text)
        if match is None:
            raise SystemExit(f"--case {text!r}: expected SCENARIO[@EVS][:PROGRAM], e.g. ffr_ramp@100:ffr")
        scenario, evs, program = match.groups()
        if scenario not in SCENARIOS:
            raise SystemExit(f"--case {text!r}: no built-in scenario {scenario!r} (see --list)")
        if not (ROOT / "programs" / f"{program or 'freq_response'}.st").is_file():
            raise SystemExit(f"--case {text!r}: no programs/{program}.st")
        return cls(scenario, int(evs) if evs else None, program or "freq_response")

    @property
    def name(self) -> str:
        evs = f"@{self.evs}" if self.evs is not None else ""
        program = f":{self.program}" if self.program != "freq_response" else ""
        return f"{self.scenario}{evs}{program}"

    @property
    def folder(self) -> str:
        return self.name.replace("@", "-").replace(":", "-")


def package_from_commit(commit: str, into: Path) -> Path:
    """``commit``'s runtime/, stdlib/ and programs/ laid out as the package ``plcrun`` under ``into``
    (as the editable install maps them); the folder to put on PYTHONPATH."""
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "runtime", "stdlib", "programs"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return _lay_out(src / "runtime", src / "stdlib", src / "programs", into / "path", move=True)


def package_from_checkout(into: Path) -> Path:
    return _lay_out(ROOT / "runtime", ROOT / "stdlib", ROOT / "programs", into / "path", move=False)


def _lay_out(runtime: Path, stdlib: Path, programs: Path, path: Path, *, move: bool) -> Path:
    package = path / "plcrun"
    path.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source, target in (
        (runtime, package),
        (stdlib, package / "st_stdlib"),
        (programs, package / "st_programs"),
    ):
        if move:
            shutil.move(str(source), str(target))
        else:
            shutil.copytree(source, target, ignore=ignore)
    return path


def run_case(case: Case, python_path: Path, out: Path, native: bool = False) -> dict[str, Any]:
    """One ``plcrun sim`` run of ``case`` with the build on ``python_path``, its report in
    ``out/<case>`` (the same relative folder for both builds, so even the file names match)."""
    program = python_path / "plcrun" / "st_programs" / f"{case.program}.st"
    argv = [str(program), "--scenario", case.scenario, "--out", case.folder]
    if case.evs is not None:
        argv[3:3] = ["--evs", str(case.evs)]
    if native:
        argv.append("--native")
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, "sim", *argv], cwd=out, env=env, capture_output=True, text=True
    )
    return {
        "exit": done.returncode,
        "stdout": done.stdout.replace(str(program), "PROGRAM"),
        "stderr": CLOCK_TIME.sub("", done.stderr).replace(str(program), "PROGRAM"),
        "wall_s": time.perf_counter() - start,
        "folder": out / case.folder,
    }


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if type(a) is not type(b):
        return f"{where or '.'}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}.{key}: only in {'now' if key not in a else 'before'}"
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{where}.{key}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where or '.'}: {a!r} != {b!r}"


def _text_difference(name: str, a: bytes, b: bytes) -> str:
    for n, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
        if x != y:
            col = next((i for i, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), min(len(x), len(y)))
            lo = max(0, col - 40)
            return f"{name} line {n} col {col + 1}: {x[lo : col + 60]!r} != {y[lo : col + 60]!r}"
    return f"{name}: {len(a.splitlines())} lines != {len(b.splitlines())} (one is the other's start)"


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two runs of one case; empty when identical."""
    found = []
    for key in ("exit", "stdout", "stderr"):
        if before[key] != now[key]:
            a, b = str(before[key]).encode(), str(now[key]).encode()
            found.append(_text_difference(key, a, b) if key != "exit" else f"exit {a!r} != {b!r}")
    old, new = before["folder"], now["folder"]
    names_old = sorted(p.name for p in old.iterdir()) if old.is_dir() else []
    names_new = sorted(p.name for p in new.iterdir()) if new.is_dir() else []
    if names_old != names_new:
        found.append(f"report files {names_old} != {names_new}")
    for name in sorted(set(names_old) & set(names_new)):
        a, b = (old / name).read_bytes(), (new / name).read_bytes()
        if name == "report.json":
            data_a, data_b = json.loads(a), json.loads(b)
            for key in PATH_KEYS:
                data_a.pop(key, None)
                data_b.pop(key, None)
            if data_a != data_b:
                found.append("report.json " + _first_difference(data_a, data_b))
        elif a != b:
            found.append(_text_difference(name, a, b))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", help="the earlier commit (any git revision)")
    parser.add_argument(
        "--scenario", action="append", default=[], help="only the cases of this scenario (repeat)"
    )
    parser.add_argument(
        "--case", action="append", default=[], help="SCENARIO[@EVS][:PROGRAM] instead (repeat)"
    )
    parser.add_argument("--quick", action="store_true", help="4 scenarios and the larger fleets only")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the report folders (their path is printed)")
    parser.add_argument("--list", action="store_true", help="print the default cases and exit")
    parser.add_argument(
        "--native",
        action="store_true",
        help="run this checkout's cases with plcrun sim --native (compiler/native.py)",
    )
    args = parser.parse_args()
    if args.case:
        cases = [Case.parse(text) for text in args.case]
    else:
        cases = [Case.parse(name) for name in (QUICK if args.quick else (*SCENARIOS, *LARGER))]
    for name in args.scenario:
        if name not in SCENARIOS:
            parser.error(f"--scenario {name}: no such built-in scenario (see --list)")
    if args.scenario:
        cases = [case for case in cases if case.scenario in args.scenario]
    if args.list:
        print("\n".join(case.name for case in cases))
        return 0
    if not args.before:
        parser.error("--before COMMIT is needed")
    print(f"command: python bench/sim_report_identity.py {' '.join(sys.argv[1:])}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="plcrun-identity-"))
    identical = True
    try:
        builds = {
            "before": package_from_checkout(tmp / "before")
            if args.before == "checkout"
            else package_from_commit(args.before, tmp / "before"),
            "now": package_from_checkout(tmp / "now"),
        }
        for label in builds:
            (tmp / label / "out").mkdir()

        def both(case: Case) -> tuple[Case, dict[str, Any], dict[str, Any]]:
            runs = {
                label: run_case(case, path, tmp / label / "out", args.native and label == "now")
                for label, path in builds.items()
            }
            return case, runs["before"], runs["now"]

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for case, before, now in pool.map(both, cases):
                found = differences(before, now)
                identical &= not found
                verdict = "identical" if not found else "DIFFERENT"
                timing = f"{before['wall_s']:.1f} s / {now['wall_s']:.1f} s"
                print(
                    f"{case.name:40} {verdict:10} exit {now['exit']}  ({args.before} / now: {timing})",
                    flush=True,
                )
                for line in found[:5]:
                    print(f"    {line}")
        count = sum(1 for _ in cases)
        print(
            f"\n{'all' if identical else 'NOT all'} {count} cases identical ({args.before} vs this checkout), "
            f"{time.perf_counter() - start:.0f} s"
        )
    finally:
        if args.keep:
            print(f"report folders kept in {tmp}/before/out and {tmp}/now/out")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
