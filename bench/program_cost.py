"""Cost of the real program per scan: programs/freq_response.st with the grid library, in the
executor against the built-in simulation (quiet_grid) in virtual time, before and after in one run.

Each build runs in its own process, alternating (before, now, before, now, ...): "before" is an
earlier commit checked out into a temporary git worktree (its runtime, compiler, stdlib/ and
programs/), "now" this checkout. Per build and fleet size: µs per scan spent in the program's body
(the generated code of freq_response and every block it calls; timed around each body call, in
wall-clock time and in the scan thread's CPU time, which other load on the machine inflates far
less) and the whole run's speed in simulated seconds per wall second and per second of thread CPU (start-up excluded: 1 s warm-up, and
timed without the body wrapper). Each figure is the best round of its build (the machine's load
falls on both builds alike; the best round is the one it disturbed least).

    python bench/program_cost.py --before c7aae99 --evs 10,100 --seconds 10 --rounds 3
    python bench/program_cost.py --before none --per-fb        # where the program's time goes, by block

``--per-fb`` (this checkout only), after the run: each function block instance's body called alone
on the live state (inclusive of the blocks it calls; min of 7 x 20 calls, so other load on the
machine hardly matters; blocks the code generator inlines are part of their caller; only blocks
of types that ran in the scenario), and the program's own code with every block stubbed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, sys, time
from pathlib import Path
stdlib, program_path, evs, seconds, per_fb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
from plcrun.compiler import api
lib = Path(stdlib)
api.library_sources = lambda: tuple((f"stdlib/{p.name}", p.read_text("utf-8")) for p in sorted(lib.glob("*.st")))
from plcrun.executor.clock import VirtualClock
from plcrun.site import SiteRuntime
program = api.compile_file(program_path)
executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
executor.run(duration_ns=1_000_000_000)
start = time.perf_counter()
cpu_start = time.thread_time()
executor.run(duration_ns=int(seconds * 1e9))
speed = seconds / (time.perf_counter() - start)
cpu_speed = seconds / (time.thread_time() - cpu_start)
clock = time.perf_counter_ns
cpu_clock = time.thread_time_ns
acc = [0, 0]
def timed(body):
    def run():
        t0 = clock()
        c0 = cpu_clock()
        try:
            body()
        finally:
            acc[1] += cpu_clock() - c0
            acc[0] += clock() - t0
    return run
for task, bodies in executor._runners.items():
    executor._runners[task] = [timed(b) for b in bodies]
blocks = {}
scans = int(seconds * 100)
executor.run(duration_ns=int(seconds * 1e9))
if per_fb:
    # each block's body alone on the live state, min of repeats (robust to other load); then the
    # program's own code with every block stubbed
    import timeit
    main = executor.state.instances[executor.program.model.instances[0].name.lower()]
    namespace = executor.state.namespace
    calls = {}
    def counting(name, body):
        def run(self):
            calls[name] = calls.get(name, 0) + 1
            return body(self)
        return run
    saved = {n: c._body for n, c in namespace.items() if isinstance(c, type) and n.startswith("FB_")}
    for n, b in saved.items():
        namespace[n]._body = counting(n, b)
    executor.run(duration_ns=1_000_000_000)  # which block types run in this scenario
    for n, b in saved.items():
        namespace[n]._body = b
    def bench(fn):
        return min(timeit.repeat(fn, number=20, repeat=7)) / 20 * 1e6
    seen = set()
    def visit(obj, path):
        for name in getattr(type(obj), "__slots__", ()):
            child = getattr(obj, name, None)
            if type(child).__name__ in calls and id(child) not in seen:
                seen.add(id(child))
                blocks[f"{path}.{name[2:]} ({type(child).__name__[3:]})"] = [bench(child._body), 0]
                visit(child, f"{path}.{name[2:]}")
    blocks["main (whole body)"] = [bench(main._body), 0]
    visit(main, "main")
    for n in saved:
        namespace[n]._body = lambda self: None
    blocks["main, its own code (blocks stubbed)"] = [bench(main._body), 0]
    for n, b in saved.items():
        namespace[n]._body = b
executor.shutdown()
print(json.dumps({"speed": speed, "cpu_speed": cpu_speed, "program_us": acc[0] / scans / 1e3,
                  "program_cpu_us": acc[1] / scans / 1e3,
                  "blocks": blocks}))
"""


def run_child(
    pythonpath: str | None, tree: Path, evs: int, seconds: float, per_fb: bool
) -> dict[str, object]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [
        sys.executable,
        "-c",
        _CHILD,
        str(tree / "stdlib"),
        str(tree / "programs" / "freq_response.st"),
    ]
    command += [str(evs), str(seconds), "1" if per_fb else "0"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"run failed ({tree}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="c7aae99", help="earlier commit, or 'none'")
    parser.add_argument("--evs", default="10,100")
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-fb", action="store_true", help="time each block's body (this checkout)")
    args = parser.parse_args()
    print(
        f"command: python bench/program_cost.py --before {args.before} --evs {args.evs} "
        f"--seconds {args.seconds:g} --rounds {args.rounds}" + (" --per-fb" if args.per_fb else "")
    )
    sizes = [int(n) for n in args.evs.split(",") if n.strip()]
    tmp = tempfile.mkdtemp(prefix="plcrun-program-cost-")
    builds: list[tuple[str, str | None, Path]] = []
    if args.before != "none":
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before],
            check=True,
            capture_output=True,
        )
        shim = Path(tmp) / "path"
        shim.mkdir()
        (shim / "plcrun").symlink_to(tree / "runtime")
        builds.append((f"before ({args.before})", str(shim), tree))
    builds.append(("now", None, ROOT))
    results: dict[tuple[str, int], list[dict[str, object]]] = {}
    try:
        for _ in range(args.rounds):
            for evs in sizes:
                for label, path, tree in builds:
                    results.setdefault((label, evs), []).append(
                        run_child(path, tree, evs, args.seconds, False)
                    )
    finally:
        if args.before != "none":
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / "tree")],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        "\n| build | EVs | program µs per scan (wall) | program µs per scan (thread CPU) "
        "| speed (x real time) | simulated s per s of thread CPU |"
    )
    print("|---|---|---|---|---|---|")
    for (label, evs), runs in results.items():
        program = min(float(r["program_us"]) for r in runs)  # type: ignore[arg-type]
        cpu = min(float(r["program_cpu_us"]) for r in runs)  # type: ignore[arg-type]
        speed = max(float(r["speed"]) for r in runs)  # type: ignore[arg-type]
        cpu_speed = max(float(r["cpu_speed"]) for r in runs)  # type: ignore[arg-type]
        print(f"| {label} | {evs} | {program:.1f} | {cpu:.1f} | {speed:.1f} | {cpu_speed:.1f} |")
    if args.before != "none":
        for evs in sizes:
            for key, what in (("program_us", "wall"), ("program_cpu_us", "thread CPU")):
                old = min(float(r[key]) for r in results[(builds[0][0], evs)])  # type: ignore[arg-type]
                new = min(float(r[key]) for r in results[("now", evs)])  # type: ignore[arg-type]
                print(f"{evs} EVs: program now/before = {new / old:.2f} ({what})")
    if args.per_fb:
        for evs in sizes:
            blocks = run_child(None, ROOT, evs, args.seconds, True)["blocks"]
            assert isinstance(blocks, dict)
            print(
                f"\n{evs} EVs, by block instance (µs per call, inclusive of the blocks it calls; this checkout):"
            )
            print("| block | µs |")
            print("|---|---|")
            for name, (us, _) in sorted(blocks.items(), key=lambda kv: -kv[1][0]):
                print(f"| {name} | {us:.1f} |")
    with open("/proc/loadavg") as handle:
        print(f"\nload average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
