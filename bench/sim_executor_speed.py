"""Virtual-time speed of a whole simulation run: programs/freq_response.st in the executor against the
built-in grid and EV-fleet simulation (quiet_grid), in simulated seconds per wall-clock second with
start-up excluded (1 simulated s of warm-up first), and per second of the scan thread's CPU time
(which a machine shared with other work inflates far less); and memory per EV session (tracemalloc,
program state + simulation).

    python bench/sim_executor_speed.py --seconds 10                      # 10, 100, 1000 EVs, this checkout
    python bench/sim_executor_speed.py --seconds 10 --before c7aae99,4b8f65a --evs 10,100 --rounds 3

With ``--before COMMIT[,COMMIT...]`` the same measurement runs for those commits too (a ``git worktree`` in a
temporary folder, its ``runtime/`` first on PYTHONPATH as ``plcrun``, its own programs/ and stdlib/
as ``plcrun.st_programs`` / ``plcrun.st_stdlib``),
in child processes that alternate between the builds, ``--rounds`` times each: the best round of
each build is reported, and their ratio, so the machine's load falls on both alike.

With ``--native`` this checkout's native build (compiler/native.py: Cython and gcc, built once into
the cache before the first round) is measured too, as "now native"; with ``--native-before`` each
``--before`` commit's own native build too ("COMMIT native"), and "now native / COMMIT native" shows
what changed outside the program when both build it the same way.

Goals of issue 17: at least 500x real time at 10 EVs and 150x at 100 EVs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def speed(program_root: Path, evs: int, seconds: float, native: bool = False) -> tuple[float, float]:
    from plcrun.compiler.api import compile_file
    from plcrun.executor.clock import VirtualClock
    from plcrun.site import SiteRuntime

    program = compile_file(program_root / "programs" / "freq_response.st")
    if native:
        from plcrun.compiler.native import enable_native

        reason = enable_native(program)
        if reason:
            raise SystemExit(f"native build not used: {reason}")
    executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
    executor.run(duration_ns=1_000_000_000)  # warm up: start-up samples, first allocation
    start, cpu = time.perf_counter(), time.thread_time()
    executor.run(duration_ns=int(seconds * 1e9))
    return seconds / (time.perf_counter() - start), seconds / (time.thread_time() - cpu)


def memory_per_session(evs: int) -> float:
    from plcrun.compiler.api import compile_file
    from plcrun.executor.clock import VirtualClock
    from plcrun.site import SiteRuntime

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    program = compile_file(ROOT / "programs" / "freq_response.st")
    executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
    executor.run(duration_ns=100_000_000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(base, "filename"))
    del executor
    return grown


def child(args: argparse.Namespace) -> None:
    root = Path(args.program_root)
    print(json.dumps({str(n): speed(root, n, args.seconds, args.native) for n in args.sizes}))


def run_child(
    pythonpath: str | None, program_root: Path, sizes: list[int], seconds: float, native: bool = False
) -> dict[int, float]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--program-root", str(program_root)]
    command += ["--evs", ",".join(map(str, sizes)), "--seconds", f"{seconds:g}"] + (
        ["--native"] if native else []
    )
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def compare(args: argparse.Namespace) -> None:
    builds: list[tuple[str, str | None, Path, bool]] = []
    tmp = Path(tempfile.mkdtemp(prefix="plcrun-before-"))
    trees: list[Path] = []
    for commit in [] if args.before == "none" else args.before.split(","):
        tree = tmp / f"tree-{commit}"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
        trees.append(tree)
        # that tree's ST library and programs as plcrun.st_stdlib / st_programs: without them an
        # editable install of this checkout would lend it this checkout's stdlib
        for package, folder in (("st_stdlib", "stdlib"), ("st_programs", "programs")):
            (tree / "runtime" / package).symlink_to(tree / folder)
        shim = tmp / f"path-{commit}"
        shim.mkdir()
        (shim / "plcrun").symlink_to(tree / "runtime")
        builds.append((commit, str(shim), tree, False))
        if args.native_before:  # that commit's own native build (its compiler/native.py)
            builds.append((f"{commit} native", str(shim), tree, True))
    builds.append(("now", None, ROOT, False))
    if args.native:
        builds.append(("now native", None, ROOT, True))
    best: dict[str, dict[int, float]] = {label: {} for label, *_ in builds}  # wall
    best_cpu: dict[str, dict[int, float]] = {label: {} for label, *_ in builds}
    try:
        for _ in range(args.rounds):
            for label, path, root, native in builds:
                for n, (wall, cpu) in run_child(path, root, args.sizes, args.seconds, native).items():
                    best[label][n] = max(best[label].get(n, 0.0), wall)
                    best_cpu[label][n] = max(best_cpu[label].get(n, 0.0), cpu)
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    goals = {10: 500, 100: 150}
    for title, table in (
        ("wall-clock s (the issue's measure)", best),
        ("s of the scan thread's CPU time", best_cpu),
    ):
        print(f"\nsimulated s per {title}, best of {args.rounds}:\n")
        first = builds[0][0]
        ratios = [(label, first) for label, *_ in builds if label.startswith("now") and label != first]
        if args.native_before and args.native and args.before != "none":
            ratios.append(("now native", f"{first} native"))  # the native builds against each other
        heads = " | ".join(f"{label} / {base}" for label, base in ratios)
        print("| EVs | " + " | ".join(label for label, *_ in builds) + f" | {heads} | goal |")
        print("|---" * (len(builds) + len(ratios) + 2) + "|")
        for n in args.sizes:
            cells = [f"{table[label][n]:.1f}x" for label, *_ in builds]
            shares = " | ".join(f"{table[label][n] / table[base][n]:.2f}" for label, base in ratios) or "-"
            goal = f"{goals[n]}x" if n in goals else ""
            print(f"| {n} | " + " | ".join(cells) + f" | {shares} | {goal} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per size")
    parser.add_argument("--evs", default="10,100,1000", help="fleet sizes, comma-separated")
    parser.add_argument(
        "--before", default="none", help="earlier commits (comma-separated) measured in the same run"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per build (best counts)")
    parser.add_argument("--memory", action="store_true", help="also the memory per EV session")
    parser.add_argument(
        "--native",
        action="store_true",
        help="also this checkout's native build (Cython + gcc; compiler/native.py)",
    )
    parser.add_argument(
        "--native-before",
        action="store_true",
        help="also each --before commit's own native build (with --native: the two native builds compared)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--program-root", default=str(ROOT), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = [int(n) for n in args.evs.split(",")]
    if args.child:
        child(args)
        return
    print(
        f"command: python bench/sim_executor_speed.py --seconds {args.seconds:g} --evs {args.evs} "
        f"--before {args.before} --rounds {args.rounds}"
        + (" --memory" if args.memory else "")
        + (" --native" if args.native else "")
        + (" --native-before" if args.native_before else "")
    )
    compare(args)
    if args.memory:
        sys.path.insert(0, str(ROOT))
        small, large = memory_per_session(10), memory_per_session(1000)
        print(
            f"memory per EV session: {(large - small) / 990 / 1024:.1f} KiB "
            "(program state + simulation, 1000 vs 10 EVs)"
        )
    with open("/proc/loadavg") as handle:
        print(f"load average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
