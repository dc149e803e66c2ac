"""The main job's CPU and memory: `plcrun run programs/freq_response.st --evs 10` (built-in simulation,
dashboard on, real-time setup as root), this checkout against an earlier commit, in one run.

    python bench/main_job.py                                  # 2 x 60 s, before = the commit before issue 17
    python bench/main_job.py --seconds 600 --before none      # this checkout only, 10 minutes
    python bench/main_job.py --before 184d0ce --rounds 2
    python bench/main_job.py --seconds 3900 --before c7aae99 --now HEAD --parallel --every 300   # RSS over an hour
    python bench/main_job.py --seconds 60 --before 678a696 --mode fifo --mode fifo:0 --mode fifo:50 \
        --mode fifo:200 --mode nofifo --mode nofifo:100:300 --rounds 2    # the waiting modes

``--mode`` (repeatable) runs "now" once per waiting mode: ``fifo`` or ``nofifo`` (SCHED_FIFO refused:
the child loses CAP_SYS_NICE and gets RLIMIT_RTPRIO 0, as a unit without LimitRTPRIO; memory locking
stays), then ``:TOLERANCE_US`` (``--wake-tolerance-us``; absent: plcrun run's default) and
``:BUDGET_US`` (``--spin-budget-us``), then ``+native`` for ``plcrun run --native`` (built into the
cache before the timing). "before" always runs with its own defaults and SCHED_FIFO.

For each build: whole-process CPU as % of one core and per thread (CPU time in ns from
/proc/<pid>/task/<tid>/schedstat, start-up excluded: counted from 10 s in; the scan thread is the
main thread, the others with their wake-ups per second = voluntary context switches), RSS and
locked memory (VmRSS, VmLck) sampled every 2 s with the
slope of a least-squares line through the RSS samples after start-up (KiB per minute; x 60 = per
hour), and the scan statistics the run writes (--stats-json: execution p50/p99, wake-up
p50/p99/max, overruns). The earlier commit runs from a `git worktree` in a temporary folder with its `runtime/`
first on PYTHONPATH as `plcrun`, so both builds run with the same interpreter and packages. Builds
alternate (round-robin) so the machine's load falls on both; with ``--parallel`` they run at the same
time (for long memory runs: both see the same hour of the machine; their CPU figures then include
each other's competition). ``--now COMMIT`` runs "now" from a worktree of that commit too, so that
editing this checkout during a long run changes nothing in it. ``--every S`` prints the RSS every S
seconds of each run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE_DEFAULT = "184d0ce"  # main when issue 17 started
WARMUP_S = 10.0
TICK = os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def thread_ticks(pid: int) -> dict[str, tuple[int, int]]:
    """Thread id -> (CPU ns, voluntary context switches = times it blocked and was woken)."""
    ticks: dict[str, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        switches = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("voluntary_ctxt")
        )
        try:  # CPU time in ns where the kernel keeps it (utime + stime count 10 ms ticks)
            cpu_ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            cpu_ns = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // TICK
        ticks[task.name] = (cpu_ns, switches)
    return ticks


def parse_mode(text: str) -> tuple[str, list[str], bool]:
    """``fifo|nofifo[:TOLERANCE_US[:BUDGET_US]][+native]`` -> (label, plcrun run arguments, SCHED_FIFO
    allowed)."""
    native = text.endswith("+native")
    parts = text.removesuffix("+native").split(":")
    if parts[0] not in ("fifo", "nofifo") or len(parts) > 3 or not all(p.isdigit() for p in parts[1:]):
        raise SystemExit(f"--mode {text}: write fifo or nofifo, then :TOLERANCE_US and :BUDGET_US if wanted")
    fifo = parts[0] == "fifo"
    args: list[str] = []
    label = "SCHED_FIFO" if fifo else "no SCHED_FIFO"
    if len(parts) > 1:
        args += ["--wake-tolerance-us", parts[1]]
        label += f", tolerance {parts[1]} µs"
    else:
        label += ", default tolerance"
    if len(parts) > 2:
        args += ["--spin-budget-us", parts[2]]
        label += f", budget {parts[2]} µs"
    if native:
        args.append("--native")
        label += ", native build"
    return label, args, fifo


def build_native(pythonpath: str | None) -> None:
    """The native build into the cache before any timing (a build takes 30-50 s)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-c", "from plcrun.cli import main; raise SystemExit(main())", "run"]
    command += [str(ROOT / "programs" / "freq_response.st"), "--evs", "10", "--native", "--duration", "0.5"]
    done = subprocess.run([*command, "--no-dashboard"], env=env, capture_output=True, text=True, check=False)
    if "native build not used" in done.stderr or done.returncode != 0:
        raise SystemExit(f"the native build failed:\n{done.stderr}")


_PR_CAPBSET_DROP = 24
_CAP_SYS_NICE = 23


def without_sched_fifo() -> None:
    """In the child: no CAP_SYS_NICE after exec and RLIMIT_RTPRIO 0, so SCHED_FIFO is refused."""
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_CAPBSET_DROP, _CAP_SYS_NICE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def slope_per_min(samples: list[tuple[float, int]]) -> float:
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return 60 * sum((t - mean_t) * (r - mean_r) for t, r in samples) / var if var else 0.0


def run_once(
    label: str, pythonpath: str | None, seconds: float, extra: list[str] | None = None, fifo: bool = True
) -> dict[str, object]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        command = [sys.executable, "-c", "from plcrun.cli import main; raise SystemExit(main())"]
        command += ["run", str(ROOT / "programs" / "freq_response.st"), "--evs", "10"]
        command += ["--duration", f"{seconds:g}", "--dashboard-port", "0", "--stats-json", str(stats_path)]
        command += extra or []
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=None if fifo else without_sched_fifo,
        )
        start = time.monotonic()
        samples: list[tuple[float, int]] = []
        first: dict[str, tuple[int, int]] | None = None
        last: dict[str, tuple[int, int]] = {}
        t_first = t_last = 0.0
        locked = 0
        while proc.poll() is None:
            time.sleep(2.0)
            now = time.monotonic() - start
            if now < WARMUP_S or now > seconds - 1:
                continue
            try:
                ticks = thread_ticks(proc.pid)
                rss = status_kib(proc.pid, "VmRSS")
                locked = status_kib(proc.pid, "VmLck")
            except OSError:
                break
            samples.append((now, rss))
            if first is None:
                first, t_first = ticks, now
            last, t_last = ticks, now
        proc.wait()
        stats = json.loads(stats_path.read_text())["stats"]["tasks"]["fast"] if stats_path.exists() else {}
    span = max(t_last - t_first, 1e-9)
    # by thread id (Python 3.11 does not name OS threads); the main thread (id = pid) runs the scans
    start = first or {}
    per_thread = {
        tid: (
            100 * (last[tid][0] - start.get(tid, (0, 0))[0]) / 1e9 / span,
            (last[tid][1] - start.get(tid, (0, 0))[1]) / span,
        )
        for tid in last
    }
    return {
        "label": label,
        "cpu": sum(cpu for cpu, _ in per_thread.values()),
        "scan_cpu": per_thread.get(str(proc.pid), (0.0, 0.0))[0],
        "threads": per_thread,
        "pid": str(proc.pid),
        "rss_kib": [r for _, r in samples],
        "rss_samples": samples,
        "slope": slope_per_min(samples),
        "locked_kib": locked,
        "stats": stats,
    }


def run_into(
    done: dict[str, dict[str, object]],
    label: str,
    path: str | None,
    seconds: float,
    extra: list[str],
    fifo: bool,
) -> None:
    done[label] = run_once(label, path, seconds, extra, fifo)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--before", default=BEFORE_DEFAULT, help="earlier commit, or 'none'")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--now", default=None, help="run 'now' from a worktree of this commit")
    parser.add_argument("--parallel", action="store_true", help="run the builds at the same time")
    parser.add_argument("--every", type=float, default=0.0, help="print the RSS every this many seconds")
    parser.add_argument(
        "--mode",
        action="append",
        metavar="fifo|nofifo[:TOL_US[:BUDGET_US]][+native]",
        help="run 'now' in this waiting mode (repeatable; default: fifo with plcrun run's defaults)",
    )
    args = parser.parse_args()
    modes = [parse_mode(text) for text in args.mode or ["fifo"]]
    print(
        f"command: python bench/main_job.py --seconds {args.seconds:g} --before {args.before} --rounds {args.rounds}"
        + (f" --now {args.now}" if args.now else "")
        + (" --parallel" if args.parallel else "")
        + (f" --every {args.every:g}" if args.every else "")
        + "".join(f" --mode {m}" for m in args.mode or [])
    )
    # (label, PYTHONPATH, extra plcrun run arguments, SCHED_FIFO allowed)
    builds: list[tuple[str, str | None, list[str], bool]] = []
    tmp = tempfile.mkdtemp(prefix="plcrun-before-")
    trees: list[Path] = []

    def tree_of(commit: str, name: str) -> str:
        tree = Path(tmp) / name
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
        trees.append(tree)
        shim = Path(tmp) / f"{name}-path"
        shim.mkdir()
        (shim / "plcrun").symlink_to(tree / "runtime")
        return str(shim)

    if args.before != "none":
        builds.append((f"before ({args.before})", tree_of(args.before, "before"), [], True))
    now_label, now_path = (
        ("now", None) if args.now is None else (f"now ({args.now})", tree_of(args.now, "now"))
    )
    for mode_label, extra, fifo in modes:
        label = now_label if args.mode is None else f"{now_label}, {mode_label}"
        builds.append((label, now_path, extra, fifo))
        if "--native" in extra:
            build_native(now_path)
    results: dict[str, list[dict[str, object]]] = {}
    try:
        for _ in range(args.rounds):
            if args.parallel:
                done: dict[str, dict[str, object]] = {}
                threads = [
                    threading.Thread(target=run_into, args=(done, label, path, args.seconds, extra, fifo))
                    for label, path, extra, fifo in builds
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for label, *_ in builds:
                    results.setdefault(label, []).append(done[label])
            else:
                for label, path, extra, fifo in builds:
                    results.setdefault(label, []).append(run_once(label, path, args.seconds, extra, fifo))
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    if args.every:
        print()
        for label, runs in results.items():
            for r in runs:
                marks = []
                next_mark = 0.0
                for t, rss in r["rss_samples"]:  # type: ignore[attr-defined]
                    if t >= next_mark:
                        marks.append(f"{t / 60:.0f} min {rss / 1024:.1f}")
                        next_mark = (t // args.every + 1) * args.every
                print(f"{label}: RSS MiB over time: " + ", ".join(marks))
    print()
    print(
        "| build | CPU % of a core | scan thread % | other threads % | wake p50/p99/max µs | exec p50/p99 µs "
        "| RSS MiB (min-max) | RSS slope KiB/min | VmLck MiB | overruns |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, runs in results.items():
        for r in runs:
            rss = r["rss_kib"]
            stats = r["stats"]
            ex = stats.get("execution_ns", {})
            wake = stats.get("wake_latency_ns", {})
            print(
                f"| {label} | {r['cpu']:.2f} | {r['scan_cpu']:.2f} | {r['cpu'] - r['scan_cpu']:.2f} | "
                f"{wake.get('p50', 0) / 1e3:.1f}/{wake.get('p99', 0) / 1e3:.1f}/{wake.get('max', 0) / 1e3:.0f} | "
                f"{ex.get('p50', 0) / 1e3:.0f}/{ex.get('p99', 0) / 1e3:.0f} | "
                f"{min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} | {r['slope']:+.1f} | "
                f"{r['locked_kib'] / 1024:.0f} | {stats.get('overruns', '?')} |"
            )
    print()
    print(
        "Median over the rounds (outside the scans = the scan thread's CPU less its scans' mean execution "
        "time x scans/s: waiting, scheduling, statistics):"
    )
    print()
    print(
        "| build | runs | CPU % of a core | scan thread % | outside the scans % | other threads % "
        "| wake p50/p99 µs | exec p50 µs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, runs in results.items():

        def med(values: list[float]) -> float:
            ordered = sorted(values)
            n = len(ordered)
            return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2

        def stat(r: dict[str, object], kind: str, key: str) -> float:
            value = r["stats"].get(kind)  # type: ignore[attr-defined]
            value = value.get(key) if isinstance(value, dict) else value
            return float(value or 0)

        # a period's scan takes mean execution ns: that share of the period is the scans' CPU
        outside = [
            float(r["scan_cpu"]) - 100 * stat(r, "execution_ns", "mean") / stat(r, "interval_ns", "")  # type: ignore[arg-type]
            for r in runs
        ]
        print(
            f"| {label} | {len(runs)} | {med([float(r['cpu']) for r in runs]):.2f} "  # type: ignore[arg-type]
            f"| {med([float(r['scan_cpu']) for r in runs]):.2f} | {med(outside):.2f} "  # type: ignore[arg-type]
            f"| {med([float(r['cpu']) - float(r['scan_cpu']) for r in runs]):.2f} "  # type: ignore[arg-type]
            f"| {med([stat(r, 'wake_latency_ns', 'p50') for r in runs]) / 1e3:.1f}"
            f"/{med([stat(r, 'wake_latency_ns', 'p99') for r in runs]) / 1e3:.1f} "
            f"| {med([stat(r, 'execution_ns', 'p50') for r in runs]) / 1e3:.0f} |"
        )
    print()
    for label, runs in results.items():
        r = runs[-1]
        threads = r["threads"]
        top = sorted(threads.items(), key=lambda kv: -kv[1][0])  # type: ignore[union-attr]
        print(
            f"{label}: CPU and wake-ups/s by thread: "
            + ", ".join(
                f"{'scan ' if tid == r['pid'] else ''}{tid} {cpu:.2f} % {wakes:.1f}/s"
                for tid, (cpu, wakes) in top
            )
        )
    with open("/proc/loadavg") as handle:
        print(f"\nload average at the end: {handle.read().split()[:3]}")


if __name__ == "__main__":
    main()
