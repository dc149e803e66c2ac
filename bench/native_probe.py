"""What do the native build's C types bring? The main program's scan body of programs/freq_response.st
timed three ways on the same state (1 simulated s of quiet_grid first, then copied into each form),
the clock advancing 10 ms a call:

- ``interpreter``: the generated Python as plcrun runs it;
- ``cython``: the same source compiled by Cython and gcc without any C type (``build(typed=False)``);
- ``native``: the native build of ``plcrun sim --native`` (compiler/native.py, ``native_source.typed_source``).

    python bench/native_probe.py                   # 10 and 100 EVs
    python bench/native_probe.py --evs 10 --calls 20000 --rounds 5

The body alone (no process image, no simulation), best round of each form, alternating rounds; the
ratio is interpreter / form. Needs Cython, gcc and the Python headers (else it says so and exits 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.compiler.native import NativeBuildError, build  # noqa: E402
from plcrun.executor.clock import VirtualClock  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402


def copy_state(value: Any, module: Any) -> Any:
    """A copy of a generated instance (recursively) made of ``module``'s classes."""
    cls = type(value)
    if cls.__module__ == "st" and cls.__name__ != "GLOBALS_":
        target = getattr(module, cls.__name__)
        new = target.__new__(target)
        for slot in cls.__slots__:
            if hasattr(value, slot):
                setattr(new, slot, copy_state(getattr(value, slot), module))
        return new
    if isinstance(value, list):
        return [copy_state(item, module) for item in value]
    return value


def timed(body: Any, rt: Any, info: Any, start_ns: int, calls: int) -> tuple[float, int]:
    now = start_ns
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        now += 10_000_000
        rt.begin_scan(now, info)
        body()
    return (time.perf_counter_ns() - t0) / calls / 1000, now


def probe(evs: int, calls: int, rounds: int) -> None:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
    executor.run(duration_ns=1_000_000_000)
    state = executor.state
    info = next(iter(state.task_infos.values()))
    forms: dict[str, Any] = {"interpreter": state.instances["main"]._body}
    for form, typed in (("cython", False), ("native", True)):
        module = build(program, typed=typed).module
        for name in ("_rt", "_f32", "_F32", "_G"):  # this state's scan context, as ProgramState binds it
            setattr(module, name, state.namespace[name])
        module._NS = module.__dict__
        forms[form] = copy_state(state.instances["main"], module)._body
    best = dict.fromkeys(forms, float("inf"))
    clocks = dict.fromkeys(forms, state.rt.now)
    for _ in range(rounds):
        for form, body in forms.items():
            us, clocks[form] = timed(body, state.rt, info, clocks[form], calls)
            best[form] = min(best[form], us)
    for form, us in best.items():
        print(
            f"{evs:>4} EVs  {form:<12} {us:8.2f} µs a body call   interpreter / this {best['interpreter'] / us:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", default="10,100")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"command: python bench/native_probe.py --evs {args.evs} --calls {args.calls} --rounds {args.rounds}"
    )
    try:
        for evs in (int(n) for n in args.evs.split(",")):
            probe(evs, args.calls, args.rounds)
    except NativeBuildError as error:
        print(f"no native build: {error}")


if __name__ == "__main__":
    main()
