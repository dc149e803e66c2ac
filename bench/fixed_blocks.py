"""The program's fixed per-scan cost, block by block: the library blocks a scan of
programs/freq_response.st runs whatever the number of EVs (MEAS_VALID, ROCOF on every sample,
LOSS_OF_GRID with its ROCOF on changes and its LOWPASS1, a LOWPASS1; bench/programs/fixed_blocks.st)
called alone on a virtual scan clock, for this checkout and earlier commits in one run.

    python bench/fixed_blocks.py --before 8d7aa93 --rounds 5

Each build runs in its own process, alternating: an earlier commit from a temporary git worktree
(its runtime, compiler and stdlib/, put first on PYTHONPATH), "now" this checkout; both compile the
same wrapper program (this checkout's bench/programs/fixed_blocks.st). A scan sets the clock 10 ms
on and the frequency (a meter that steps every 1 s, so ROCOF's changes-only ring sees steps) and
calls the wrapper's body. Per build: bytecodes a scan by block (``sys.settrace`` opcode events over
200 scans; a block the compiler inlines counts in its caller; exact, load does not change them) and
µs a scan in the thread's CPU time (best of 5 x 20,000 scans per round, best round).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "bench" / "programs" / "fixed_blocks.st"
SCAN_NS = 10_000_000
WARM_UP = 600  # scans: MEAS_VALID revalidates after 1 s, the rings fill


def _frequency(k: int) -> float:
    return 50.0 + 0.01 * ((k // 100) % 5 - 2)  # a meter reading that changes once a second


def child(wrapper: str, scans: int) -> dict[str, Any]:
    from plcrun.compiler.api import compile_source

    program = compile_source(Path(wrapper).read_text("utf-8"), "fixed_blocks.st")
    state = program.new_state()
    rt, main = state.rt, state.instances["main"]
    body = main._body
    k = 0

    def run(n: int) -> None:
        nonlocal k
        for _ in range(n):
            k += 1
            rt.now = rt.clock_now = k * SCAN_NS
            main.v_f = _frequency(k)
            body()

    run(WARM_UP)
    counts: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.endswith(".st"):
            return None
        frame.f_trace_opcodes = True
        name = frame.f_code.co_qualname.split(".")[0]

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[name] += 1
            return local

        return local

    traced = 200
    sys.settrace(trace)
    try:
        run(traced)
    finally:
        sys.settrace(None)
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        run(scans)
        best = min(best, time.thread_time() - start)
    return {
        "us": best / scans * 1e6,
        "bytecodes": {name: n / traced for name, n in counts.items()},
        "total": main.v_total,
    }


def run_child(pythonpath: str | None, scans: int) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(WRAPPER), "--scans", str(scans)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def compare(before: list[str], rounds: int, scans: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="plcrun-fixed-"))
    builds: list[tuple[str, str | None]] = []
    trees: list[Path] = []
    for commit in before:
        tree = tmp / f"tree-{commit}"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
        trees.append(tree)
        (tree / "runtime" / "st_stdlib").symlink_to(tree / "stdlib")  # not this checkout's stdlib
        shim = tmp / f"path-{commit}"
        shim.mkdir()
        (shim / "plcrun").symlink_to(tree / "runtime")
        builds.append((commit, str(shim)))
    builds.append(("now", None))
    results: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(rounds):
            for label, path in builds:
                result = run_child(path, scans)
                if label not in results or result["us"] < results[label]["us"]:
                    results[label] = result
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    labels = [label for label, _ in builds]
    totals = {results[label]["total"] for label in labels}
    print(
        f"\nthe wrapper's result after the run: {'the same in every build' if len(totals) == 1 else totals}"
    )
    print(f"\nbytecodes a scan by block (exact), best of {rounds} rounds for the time:\n")
    print("| block | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    names = sorted({n for label in labels for n in results[label]["bytecodes"]})
    for name in names:
        cells = [f"{results[label]['bytecodes'].get(name, 0.0):,.0f}" for label in labels]
        print(f"| {name} | " + " | ".join(cells) + " |")
    sums = [sum(results[label]["bytecodes"].values()) for label in labels]
    print("| **all** | " + " | ".join(f"**{s:,.0f}**" for s in sums) + " |")
    times = [results[label]["us"] for label in labels]
    print("| µs a scan (thread CPU) | " + " | ".join(f"{t:.2f}" for t in times) + " |")
    if len(labels) > 1:
        print(f"\nnow / {labels[0]}: bytecodes {sums[-1] / sums[0]:.2f}, time {times[-1] / times[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--before", default="", help="earlier commits (comma-separated) measured in the same run"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per build (best counts)")
    parser.add_argument("--scans", type=int, default=20_000, help="scans per timing")
    parser.add_argument("--child", metavar="WRAPPER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.scans)))
        return
    print(f"command: python bench/fixed_blocks.py --before {args.before} --rounds {args.rounds}")
    compare([c for c in args.before.split(",") if c], args.rounds, args.scans)


if __name__ == "__main__":
    main()
