"""Scan cost of compiled ST against hand-written Python and a tree-walking interpreter.

The program is bench/programs/freq_response.st: droop with deadband on the grid frequency, limits
from state of charge, proportional allocation of a site request over the EVs within their limits, a
ramp limit per EV, an R_TRIG and a TON. One program is built per fleet size N (N_EVS replaced).
Three implementations run the same scans on the same inputs:

* ``compiled``: plcrun's compiler (``compile_source``), one scan run the way the executor runs it
  (``rt.begin_scan`` then the program instance's body function);
* ``python``: the same logic written by hand in idiomatic Python (classes, lists, plain floats);
* ``interpreter``: bench/st_interpreter.py walking the checked AST with dict-based storage.

Before timing, all three run a verification sequence (virtual time, enable edges, frequency above,
below and inside the deadband, EVs at their SoC limits, disconnected EVs) and must agree exactly on
every EV's setpoint and the site totals. Timing: each scan is timed alone with perf_counter_ns
(inputs are written between scans, outside the timing); implementations take turns in batches
(interleaved, order rotated every repetition); the figure is the median over repetitions of the
mean scan time of a batch. After timing, the three are compared again.

    python bench/scan_cost.py                          # N = 1, 10, 100, 1000
    python bench/scan_cost.py --sizes 10,100 --reps 21
    python bench/scan_cost.py --profile                # where the compiled scan spends its time
    python bench/scan_cost.py --sizes 1 --variants 100 # what codegen changes would save at N=100
    python bench/scan_cost.py --sizes 1,10,100 --baseline-ref c7aae99  # + an earlier compiler's code
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from plcrun.compiler.api import compile_source
from plcrun.state.program import ProgramState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_codegen import BaselineCompiler, state_from_source
from st_interpreter import Interpreter

PROGRAM_FILE = Path(__file__).resolve().parent / "programs" / "freq_response.st"
INSTANCE = "freq_response"
TASK = "DEFAULT"
SCAN_NS = 10_000_000
GOAL_COMPILED_VS_PYTHON = 1.3  # issue 17 (was 1.5)
GOAL_INTERPRETER_VS_COMPILED = 10.0


def program_source(n_evs: int) -> str:
    """The benchmark program with N_EVS set to ``n_evs``."""
    text = PROGRAM_FILE.read_text("utf-8")
    replaced, count = re.subn(r"N_EVS : DINT := \d+;", f"N_EVS : DINT := {n_evs};", text)
    if count != 1:
        raise SystemExit(f"{PROGRAM_FILE}: expected one 'N_EVS : DINT := <n>;' declaration")
    return replaced


# ------------------------------------------------------------------ inputs
def fleet(n_evs: int) -> list[dict[str, Any]]:
    """Per-EV inputs: a mix of connected/disconnected cars, SoC below, inside and above the limits."""
    cars = []
    for i in range(1, n_evs + 1):
        cars.append(
            {
                "connected": i % 7 != 0,
                "soc_pct": float((i * 37) % 100),
                "max_charge_w": (3700.0, 7400.0, 11000.0)[i % 3],
                "max_discharge_w": (3700.0, 7400.0, 5000.0)[i % 3],
            }
        )
    return cars


def scan_inputs(k: int, n_evs: int) -> tuple[float, float, bool]:
    """(grid_hz, site_request_w, enable) for scan ``k``: a frequency swinging through the deadband,
    a site request changing sign, and enable dropping for 20 scans every 400."""
    grid_hz = 50.0 + 0.3 * math.sin(2 * math.pi * k / 500) + 0.02 * math.sin(2 * math.pi * k / 37)
    site_request_w = 2000.0 * n_evs * math.sin(2 * math.pi * k / 900)
    enable = k >= 3 and not (300 <= k % 400 < 320)
    return grid_hz, site_request_w, enable


# ------------------------------------------------------------------ hand-written Python
class Ev:
    __slots__ = (
        "connected",
        "hi_w",
        "lo_w",
        "max_charge_w",
        "max_discharge_w",
        "setpoint_w",
        "soc_max_pct",
        "soc_min_pct",
        "soc_pct",
    )

    def __init__(self) -> None:
        self.connected = False
        self.soc_pct = 0.0
        self.max_charge_w = 0.0
        self.max_discharge_w = 0.0
        self.soc_min_pct = 20.0
        self.soc_max_pct = 90.0
        self.lo_w = 0.0
        self.hi_w = 0.0
        self.setpoint_w = 0.0


class RisingEdge:
    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = False

    def __call__(self, clk: bool) -> bool:
        rising = clk and not self.last
        self.last = clk
        return rising


class OnDelay:
    __slots__ = ("preset_ns", "q", "running", "start_ns")

    def __init__(self, preset_ns: int) -> None:
        self.preset_ns = preset_ns
        self.running = False
        self.start_ns = 0
        self.q = False

    def __call__(self, on: bool, now_ns: int) -> bool:
        if on:
            if not self.running:
                self.running = True
                self.start_ns = now_ns
            if now_ns - self.start_ns >= self.preset_ns:
                self.q = True
        else:
            self.running = False
            self.q = False
        return self.q


class FreqResponse:
    """The benchmark program's logic as a Python developer would write it."""

    def __init__(self, n_evs: int) -> None:
        self.evs = [Ev() for _ in range(n_evs)]
        self.grid_hz = 50.0
        self.site_request_w = 0.0
        self.enable = False
        self.nominal_hz = 50.0
        self.deadband_hz = 0.015
        self.full_response_hz = 0.2
        self.droop_full_w = 50000.0
        self.ramp_w_per_scan = 700.0
        self.enable_edge = RisingEdge()
        self.arm_delay = OnDelay(500_000_000)
        self.armed = False
        self.enable_count = 0
        self.target_w = 0.0
        self.total_setpoint_w = 0.0

    def scan(self, now_ns: int) -> None:
        if self.enable_edge(self.enable):
            self.enable_count += 1
        self.armed = self.arm_delay(self.enable, now_ns)

        deviation = self.grid_hz - self.nominal_hz
        deadband = self.deadband_hz
        if deviation > deadband:
            frac = (deviation - deadband) / (self.full_response_hz - deadband)
        elif deviation < -deadband:
            frac = (deviation + deadband) / (self.full_response_hz - deadband)
        else:
            frac = 0.0
        frac = -1.0 if frac < -1.0 else (1.0 if frac > 1.0 else frac)

        total_lo = 0.0
        total_hi = 0.0
        for ev in self.evs:
            if not ev.connected:
                ev.lo_w = 0.0
                ev.hi_w = 0.0
            else:
                ev.hi_w = 0.0 if ev.soc_pct >= ev.soc_max_pct else ev.max_charge_w
                ev.lo_w = 0.0 if ev.soc_pct <= ev.soc_min_pct else -ev.max_discharge_w
            total_lo += ev.lo_w
            total_hi += ev.hi_w

        if self.armed:
            wanted = self.site_request_w + frac * self.droop_full_w
            target = total_lo if wanted < total_lo else (total_hi if wanted > total_hi else wanted)
        else:
            target = 0.0
        if target >= 0.0 and total_hi > 0.0:
            share = target / total_hi
        elif target < 0.0 and total_lo < 0.0:
            share = target / total_lo
        else:
            share = 0.0
        self.target_w = target

        ramp = self.ramp_w_per_scan
        total = 0.0
        charging = target >= 0.0
        for ev in self.evs:
            desired = (ev.hi_w if charging else ev.lo_w) * share
            step = desired - ev.setpoint_w
            if step > ramp:
                step = ramp
            elif step < -ramp:
                step = -ramp
            ev.setpoint_w += step
            total += ev.setpoint_w
        self.total_setpoint_w = total


# ------------------------------------------------------------------ the three behind one interface
class Runner(Protocol):
    name: str

    def set_inputs(self, grid_hz: float, site_request_w: float, enable: bool) -> None: ...

    def scan(self, now_ns: int) -> None: ...

    def results(self) -> list[Any]: ...


class PathRunner:
    """compiled and interpreter: both are driven through variable paths."""

    def __init__(
        self, name: str, target: ProgramState | Interpreter, n_evs: int, scan: Callable[[int], None]
    ):
        self.name = name
        self.target = target
        self.n_evs = n_evs
        self.scan = scan
        for i, car in enumerate(fleet(n_evs), start=1):
            for key, value in car.items():
                target.write(f"{INSTANCE}.evs[{i}].{key}", value)
        target.write(f"{INSTANCE}.droop_full_w", 3000.0 * n_evs)

    def set_inputs(self, grid_hz: float, site_request_w: float, enable: bool) -> None:
        self.target.write(f"{INSTANCE}.grid_hz", grid_hz)
        self.target.write(f"{INSTANCE}.site_request_w", site_request_w)
        self.target.write(f"{INSTANCE}.enable", enable)

    def results(self) -> list[Any]:
        read = self.target.read
        out = [
            read(f"{INSTANCE}.{name}") for name in ("enable_count", "armed", "target_w", "total_setpoint_w")
        ]
        return out + [read(f"{INSTANCE}.evs[{i}].setpoint_w") for i in range(1, self.n_evs + 1)]


class CompiledRunner(PathRunner):
    """A compiled program state: inputs are stored into the instance's slots between scans, as
    plain attribute stores like the hand-written Python's (``ProgramState.write`` resolves a path
    and converts on every call; running that much code between two timed scans cooled the caches
    for the compiled scan only and added up to 0.2 µs to its N = 1 figure)."""

    def __init__(self, name: str, target: ProgramState, n_evs: int, scan: Callable[[int], None]):
        super().__init__(name, target, n_evs, scan)
        self.instance = target.instances[INSTANCE]

    def set_inputs(self, grid_hz: float, site_request_w: float, enable: bool) -> None:
        instance = self.instance
        instance.v_grid_hz = grid_hz
        instance.v_site_request_w = site_request_w
        instance.v_enable = enable


class PythonRunner:
    name = "python"

    def __init__(self, n_evs: int) -> None:
        self.plant = FreqResponse(n_evs)
        for ev, car in zip(self.plant.evs, fleet(n_evs), strict=True):
            for key, value in car.items():
                setattr(ev, key, value)
        self.plant.droop_full_w = 3000.0 * n_evs
        self.scan = self.plant.scan

    def set_inputs(self, grid_hz: float, site_request_w: float, enable: bool) -> None:
        self.plant.grid_hz = grid_hz
        self.plant.site_request_w = site_request_w
        self.plant.enable = enable

    def results(self) -> list[Any]:
        p = self.plant
        return [p.enable_count, p.armed, p.target_w, p.total_setpoint_w] + [ev.setpoint_w for ev in p.evs]


def compiled_scan(state: ProgramState) -> Callable[[int], None]:
    """One scan as the executor runs it: begin the scan (logical time), call each instance's body."""
    rt = state.rt
    info = state.task_infos[TASK]
    bodies = [body for _, body in state.task_runners(TASK)]

    def scan(now_ns: int) -> None:
        rt.begin_scan(now_ns, info)
        for body in bodies:
            body()

    return scan


def make_runners(n_evs: int, baseline: BaselineCompiler | None = None) -> list[Runner]:
    """compiled, python, interpreter (and ``before``: the code of the baseline's compiler)."""
    source = program_source(n_evs)
    filename = f"freq_response_{n_evs}.st"
    program = compile_source(source, filename)
    state = program.new_state()
    compiled = CompiledRunner("compiled", state, n_evs, compiled_scan(state))
    interpreter = Interpreter.from_source(source, filename)
    interpreted = PathRunner("interpreter", interpreter, n_evs, interpreter.run_scan)
    runners: list[Runner] = [compiled, PythonRunner(n_evs), interpreted]
    if baseline is not None:
        old = state_from_source(program, baseline.generated(source, filename), baseline.ref)
        runners.append(CompiledRunner("before", old, n_evs, compiled_scan(old)))
    return runners


# ------------------------------------------------------------------ verification and timing
def run_scans(runner: Runner, first: int, count: int, n_evs: int) -> list[int]:
    """Scans ``first`` .. ``first + count - 1``; returns the duration of each scan in ns."""
    durations = []
    clock = time.perf_counter_ns
    scan = runner.scan
    for k in range(first, first + count):
        runner.set_inputs(*scan_inputs(k, n_evs))
        start = clock()
        scan(k * SCAN_NS)
        durations.append(clock() - start)
    return durations


def verify(runners: list[Runner], first: int, count: int, n_evs: int, checkpoint: int = 10) -> None:
    """Run the same scans on every runner; all must agree exactly after every ``checkpoint`` scans."""
    done = 0
    while done < count:
        chunk = min(checkpoint, count - done)
        for runner in runners:
            run_scans(runner, first + done, chunk, n_evs)
        done += chunk
        reference = runners[0].results()
        for runner in runners[1:]:
            got = runner.results()
            if got != reference:
                diffs = [i for i, (a, b) in enumerate(zip(reference, got, strict=True)) if a != b]
                raise AssertionError(
                    f"N={n_evs}, after scan {first + done - 1}: {runner.name} differs from "
                    f"{runners[0].name} at result indices {diffs[:5]} "
                    f"({[reference[i] for i in diffs[:3]]} vs {[got[i] for i in diffs[:3]]})"
                )


def timing(
    runners: list[Runner],
    first: int,
    n_evs: int,
    reps: int,
    batch_ms: float,
    stat: Callable[[list[float]], float] = statistics.median,
) -> tuple[dict[str, float], int]:
    """``stat`` (median) over ``reps`` interleaved batches of the mean µs per scan; returns
    (figures, next scan)."""
    batch: dict[str, int] = {}
    for runner in runners:  # size each batch from one calibration scan
        one = max(1, min(run_scans(runner, first, 3, n_evs)))
        batch[runner.name] = max(1, min(2000, int(batch_ms * 1e6 / one)))
    # each runner keeps its own scan counter so that all see the same sequence of inputs
    position = {r.name: first + 3 for r in runners}
    samples: dict[str, list[float]] = {r.name: [] for r in runners}
    for rep in range(reps):
        order = runners[rep % len(runners) :] + runners[: rep % len(runners)]
        for runner in order:
            count = batch[runner.name]
            durations = run_scans(runner, position[runner.name], count, n_evs)
            position[runner.name] += count
            samples[runner.name].append(sum(durations) / len(durations) / 1000.0)
    # bring every runner to the same scan before the final comparison
    last = max(position.values())
    for runner in runners:
        run_scans(runner, position[runner.name], last - position[runner.name], n_evs)
    return {name: stat(values) for name, values in samples.items()}, last


def profile_compiled(n_evs: int, scans: int) -> str:
    """cProfile of the compiled scans (per function) at ``n_evs``."""
    runners = make_runners(n_evs)
    compiled = runners[0]
    profiler = cProfile.Profile()
    profiler.enable()
    run_scans(compiled, 0, scans, n_evs)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(5)
    return out.getvalue()


# ------------------------------------------------------------------ what codegen changes would buy
# Hand-applied rewrites of the generated Python of the benchmark program, each on top of the one
# before, to estimate what a code generator change would save. Regex-based on the code as generated
# today: a rewrite that no longer matches is reported as not applicable.
_BOUNDS_CHECK = re.compile(r"(_k\d+) - (\d+) if \2 <= \1 <= \d+ else _oob\(\1, \d+, \d+\)")
_FOR_HEADER = re.compile(r"^(\s*)for (_k\d+) in _r\d+:$")


def drop_loop_bounds_checks(source: str) -> str:
    """Index with the FOR variable without a bounds check (the loop range is within the bounds)."""
    return _BOUNDS_CHECK.sub(r"\1 - \2", source)


def hoist_loop_elements(source: str) -> str:
    """``self.v_evs[_k - 1]`` read once per iteration into a local."""
    out: list[str] = []
    current: str | None = None
    for line in source.split("\n"):
        header = _FOR_HEADER.match(line)
        if current is not None:
            line = line.replace(current, "_elem")
        out.append(line)
        if header:
            current = f"self.v_evs[{header.group(2)} - 1]"
            out.append(f"{header.group(1)}    _elem = {current}")
    return "\n".join(out)


def cache_members_in_loops(source: str) -> str:
    """Scalar members used inside a FOR loop held in locals, written back after the loop."""
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = _FOR_HEADER.match(lines[i])
        if not header:
            out.append(lines[i])
            i += 1
            continue
        indent = header.group(1)
        end = i + 1
        while end < len(lines) and lines[end].startswith(indent + "    "):
            end += 1
        body = "\n".join(lines[i + 1 : end])
        names = sorted(set(re.findall(r"self\.v_(\w+)", body)) - {"evs"})
        assigned = [n for n in names if f"self.v_{n} = " in body]
        out += [f"{indent}l_{n} = self.v_{n}" for n in names]
        out.append(lines[i])
        pattern = re.compile(r"self\.v_(" + "|".join(names) + r")\b") if names else None
        for line in lines[i + 1 : end]:
            out.append(pattern.sub(r"l_\1", line) if pattern else line)
        i = end
        if i < len(lines) and lines[i].strip() == "else:":  # the FOR's else: final value of the variable
            out.append(lines[i])
            i += 1
            while i < len(lines) and lines[i].startswith(indent + "    "):
                out.append(lines[i])
                i += 1
        out += [f"{indent}self.v_{n} = l_{n}" for n in assigned]
    return "\n".join(out)


def codegen_variants(n_evs: int, reps: int, batch_ms: float) -> None:
    source = program_source(n_evs)
    program = compile_source(source, f"freq_response_{n_evs}.st")
    generated = program.python_source
    start = generated.index(f"# ---- {INSTANCE} (")
    end = generated.find("# ---- ", start + 1)
    original = generated[start : end if end > 0 else len(generated)]
    steps = [
        ("no bounds check on FOR-variable indices", drop_loop_bounds_checks),
        ("+ array element hoisted per iteration", hoist_loop_elements),
        ("+ members cached in locals inside loops", cache_members_in_loops),
    ]
    variants = [("as generated", original)]
    skipped = []
    for label, rewrite in steps:
        rewritten = rewrite(variants[-1][1])
        if rewritten == variants[-1][1]:
            skipped.append(label)
            continue
        variants.append((label, rewritten))
    runners: list[Runner] = []
    for label, text in variants:
        state = program.new_state()
        exec(compile(text, f"variant {label}", "exec"), state.namespace)
        instance = state.namespace[f"P_{INSTANCE.upper()}"]()
        instance._path = INSTANCE
        state.instances[INSTANCE] = instance

        runners.append(CompiledRunner(label, state, n_evs, compiled_scan(state)))
    runners.append(PythonRunner(n_evs))
    verify(runners, 0, 120, n_evs)
    figures, _ = timing(runners, 120, n_evs, reps, batch_ms)
    base = figures["python"]
    print(f"\ngenerated-code variants at N={n_evs} (hand-applied rewrites, verified equal; µs per scan):")
    for runner in runners:
        print(
            f"  {runner.name:<44} {figures[runner.name]:>9.1f}   {figures[runner.name] / base:>5.2f}x python"
        )
    for label in skipped:
        print(f"  {label}: not applicable (the generated code no longer has this pattern)")
    print("  the last variant's second loop:")
    final = variants[-1][1].split("\n")
    loops = [i for i, line in enumerate(final) if _FOR_HEADER.match(line)]
    if loops:
        first = loops[-1]
        while first > 0 and final[first - 1].lstrip().startswith("l_"):
            first -= 1
        for line in final[first:]:
            if line.strip() == "return":
                break
            print("    " + line[8:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,10,100,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--reps", type=int, default=11, help="interleaved repetitions per size")
    parser.add_argument("--batch-ms", type=float, default=20.0, help="wall time of one timed batch")
    parser.add_argument("--verify-scans", type=int, default=120, help="scans compared before timing")
    parser.add_argument("--profile", action="store_true", help="also profile the compiled scans")
    parser.add_argument(
        "--variants", type=int, default=0, metavar="N", help="time rewrites of the generated code at N EVs"
    )
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="figure per implementation over the batches: median (default) or min (the fastest "
        "batch: less sensitive to other load on the machine)",
    )
    parser.add_argument(
        "--baseline-ref",
        metavar="REF",
        help="also time the code an earlier commit's compiler generates (git worktree), in the same run",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    baseline = BaselineCompiler(args.baseline_ref) if args.baseline_ref else None
    try:
        return _run(args, sizes, baseline, argv)
    finally:
        if baseline is not None:
            baseline.close()


def _run(
    args: argparse.Namespace, sizes: list[int], baseline: BaselineCompiler | None, argv: list[str] | None
) -> int:

    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(f"python {sys.version.split()[0]}; {args.stat} µs per scan over {args.reps} interleaved batches")
    header = f"{'N':>6} {'compiled':>10} {'python':>10} {'interp.':>10} {'compiled/python':>16} {'interp./compiled':>17}"
    if baseline is not None:
        print(
            f"before = the code generated by the compiler of {baseline.ref} ({baseline.commit}), same runtime"
        )
        header += f" {'before':>10} {'before/python':>14}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for n_evs in sizes:
        runners = make_runners(n_evs, baseline)
        verify(runners, 0, args.verify_scans, n_evs)
        stat = min if args.stat == "min" else statistics.median
        figures, last = timing(runners, args.verify_scans, n_evs, args.reps, args.batch_ms, stat)
        verify(runners, last, 10, n_evs)  # still identical after thousands of scans
        ratio = figures["compiled"] / figures["python"]
        speedup = figures["interpreter"] / figures["compiled"]
        worst = max(worst, ratio)
        row = (
            f"{n_evs:>6} {figures['compiled']:>10.2f} {figures['python']:>10.2f} {figures['interpreter']:>10.1f}"
            f" {ratio:>16.2f} {speedup:>17.1f}"
        )
        if baseline is not None:
            row += f" {figures['before']:>10.2f} {figures['before'] / figures['python']:>14.2f}"
        print(row, flush=True)
    print(
        f"goals: compiled/python <= {GOAL_COMPILED_VS_PYTHON}, interpreter/compiled >= "
        f"{GOAL_INTERPRETER_VS_COMPILED}; all three agreed exactly on every setpoint before and after timing"
    )
    if args.profile or worst > GOAL_COMPILED_VS_PYTHON:
        n_profile = max(sizes)
        print(
            f"\nprofile of the compiled scans at N={n_profile} (200 scans; --variants N splits _body by construct):"
        )
        print(profile_compiled(n_profile, 200))
    if args.variants:
        codegen_variants(args.variants, args.reps, args.batch_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
