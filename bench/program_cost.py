"""Cost of the real program per scan: programs/freq_response.st with the grid library, in the
executor against the built-in simulation (quiet_grid) in virtual time, before and after in one run.

Each build runs in its own process, alternating (before, now, before, now, ...): "before" is an
earlier commit checked out into a temporary git worktree (its runtime, compiler, stdlib/ and
programs/), "now" this checkout. Per build and fleet size: µs per scan spent in the program's body
(the generated code of freq_response and every block it calls; timed around each body call) and
the whole run's speed in simulated seconds per wall second (start-up excluded: 1 s warm-up, and
timed without the body wrapper). Each figure is the best round of its build (the machine's load
falls on both builds alike; the best round is the one it disturbed least).

    python bench/program_cost.py --before c7aae99 --evs 10,100 --seconds 10 --rounds 3
    python bench/program_cost.py --before none --per-fb        # where the program's time goes, by block

``--per-fb`` (this checkout only) times each function block's and function's body (inclusive of
what it calls; blocks the code generator inlines do not appear on their own).
"""

from __future__ import annotations

import argparse
import json
import os
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
executor.run(duration_ns=int(seconds * 1e9))
speed = seconds / (time.perf_counter() - start)
clock = time.perf_counter_ns
acc = [0]
def timed(body):
    def run():
        t0 = clock()
        try:
            body()
        finally:
            acc[0] += clock() - t0
    return run
for task, bodies in executor._runners.items():
    executor._runners[task] = [timed(b) for b in bodies]
blocks = {}
if per_fb:
    namespace = executor.state.namespace
    def wrap(fn, name, method):
        def run(*args):
            t0 = clock()
            try:
                return fn(*args)
            finally:
                entry = blocks.setdefault(name, [0, 0])
                entry[0] += clock() - t0
                entry[1] += 1
        return run
    for name, obj in list(namespace.items()):
        if isinstance(obj, type) and name.startswith("FB_"):
            obj._body = wrap(obj._body, name, True)
        elif name.startswith("F_") and callable(obj):
            namespace[name] = wrap(obj, name, False)
scans = int(seconds * 100)
executor.run(duration_ns=int(seconds * 1e9))
executor.shutdown()
print(json.dumps({"speed": speed, "program_us": acc[0] / scans / 1e3,
                  "blocks": {k: [v[0] / scans / 1e3, v[1] / scans] for k, v in blocks.items()}}))
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
    print("\n| build | EVs | program µs per scan | speed (x real time) |")
    print("|---|---|---|---|")
    for (label, evs), runs in results.items():
        program = min(float(r["program_us"]) for r in runs)  # type: ignore[arg-type]
        speed = max(float(r["speed"]) for r in runs)  # type: ignore[arg-type]
        print(f"| {label} | {evs} | {program:.1f} | {speed:.1f} |")
    if args.before != "none":
        for evs in sizes:
            old = min(float(r["program_us"]) for r in results[(builds[0][0], evs)])  # type: ignore[arg-type]
            new = min(float(r["program_us"]) for r in results[("now", evs)])  # type: ignore[arg-type]
            print(f"{evs} EVs: program now/before = {new / old:.2f}")
    if args.per_fb:
        for evs in sizes:
            blocks = run_child(None, ROOT, evs, args.seconds, True)["blocks"]
            assert isinstance(blocks, dict)
            print(f"\n{evs} EVs, by block (inclusive µs per scan, calls per scan; this checkout):")
            print("| block | µs per scan | calls per scan |")
            print("|---|---|---|")
            for name, (us, calls) in sorted(blocks.items(), key=lambda kv: -kv[1][0]):
                print(f"| {name} | {us:.1f} | {calls:.1f} |")
    with open("/proc/loadavg") as handle:
        print(f"\nload average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
