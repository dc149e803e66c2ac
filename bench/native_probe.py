"""Would compiling the generated program to C help? A probe, not part of plcrun: the generated Python
of programs/freq_response.st is compiled with Cython and gcc in two forms, and the main program's
scan body is timed beside the interpreter's, on the same state (warmed up for 1 simulated s in the
quiet_grid simulation, then copied into each form) with the clock advancing 10 ms a call:

- ``cython``: the generated module as it is (untyped Python compiled to C);
- ``cython-typed``: every generated class made a ``cdef class`` whose fields are typed from their
  initial values (REAL/LREAL as C double, BOOL as bint, blocks and structures as their class, arrays
  as list, the rest as Python objects), ``_body`` as ``cpdef`` where it has no closure.

    python bench/native_probe.py                   # 10 and 100 EVs
    python bench/native_probe.py --evs 10 --calls 20000 --rounds 5

Needs Cython (``pip install cython``; not a dependency of plcrun), gcc and the Python headers; without
them it says so and exits 0. The figures are the body alone (no process image, no simulation);
the ratio is interpreter / compiled form, best round of each, alternating rounds.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_FLOAT = re.compile(r"-?\(?-?[0-9.]+(e[+-]?[0-9]+)?\)?")


def typed_source(source: str) -> str:
    """``source`` with each generated class as a cdef class with fields typed from ``__init__``."""
    lines = source.split("\n")
    classes = set(re.findall(r"^class (\w+):", source, re.M))
    # arrays of structures or blocks, by field name (VAR_IN_OUT fields of the same name included)
    elements = dict(re.findall(r"^        self\.(\w+) = \[(\w+)\(\) for ", source, re.M))
    out: list[str] = []
    i = 0
    while i < len(lines):
        head = re.match(r"^class (\w+):", lines[i])
        if not head:
            out.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and (lines[end].startswith(" ") or not lines[end]):
            end += 1
        block = lines[i + 1 : end]
        slots: tuple[str, ...] = ()
        types: dict[str, str] = {}
        for line in block:
            if line.strip().startswith("__slots__"):
                slots = eval(line.split("=", 1)[1])  # a tuple literal the code generator wrote
            assigned = re.match(r"^        self\.(\w+) = (.*)$", line)
            if assigned and assigned.group(1) not in types:
                value = assigned.group(2)
                if _FLOAT.fullmatch(value) and ("." in value or "e" in value):
                    types[assigned.group(1)] = "double"
                elif value in ("True", "False"):
                    types[assigned.group(1)] = "bint"
                elif value.endswith("()") and value[:-2] in classes:
                    types[assigned.group(1)] = value[:-2]
                elif value.startswith("["):
                    types[assigned.group(1)] = "list"
        out.append(f"cdef class {head.group(1)}:")
        out += [f"    cdef public {types.get(name, 'object')} {name}" for name in slots]
        for k, line in enumerate(block):
            if line.strip().startswith("__slots__"):
                continue
            if line.startswith("    def _body(self):"):
                rest = block[k + 1 :]
                body = rest[: next((n for n, s in enumerate(rest) if s.startswith("    def ")), len(rest))]
                if not any("lambda" in s for s in body):
                    line = "    cpdef _body(self):"
                out.append(line)
                out += [
                    f"        cdef {kind} {local}"
                    for local, kind in local_types(body, types, elements).items()
                ]
                continue
            out.append(line)
        i = end
    return re.sub(r"\b_range\(", "range(", "\n".join(out))


def local_types(body: list[str], fields: dict[str, str], elements: dict[str, str]) -> dict[str, str]:
    """C types for a body's cached arrays (``_mN = self.v_x``, a list), counted loops' indices
    (``for _kN in range(n)``) and loop elements (``_eN = _mN[...]`` of an array whose element class
    is known); a local given two types is left out."""
    found: dict[str, set[str]] = {}
    source_of: dict[str, str] = {}
    for line in body:
        cached = re.match(r"^\s+(_m\d+) = self\.(\w+)$", line)
        if cached and (fields.get(cached.group(2)) == "list" or cached.group(2) in elements):
            found.setdefault(cached.group(1), set()).add("list")
            source_of[cached.group(1)] = cached.group(2)
        counted = re.match(r"^\s+for (_k\d+) in _range\([^,]*\):$", line)
        if counted:  # for k in range(n), n at most an array's length: a C index
            found.setdefault(counted.group(1), set()).add("Py_ssize_t")
        element = re.match(r"^\s+(_e\d+) = (_m\d+)\[", line)
        if element and source_of.get(element.group(2)) in elements:
            found.setdefault(element.group(1), set()).add(elements[source_of[element.group(2)]])
    return {local: kinds.pop() for local, kinds in found.items() if len(kinds) == 1}


def build_module(name: str, source: str, names: list[str], folder: Path) -> Any:
    """Compile ``source`` (with the runtime's names bound from builtins at import) and import it."""
    header = ["import builtins", "_probe_ns = builtins._probe_ns"] + [
        f"{n} = _probe_ns[{n!r}]" for n in names
    ]
    suffix = ".pyx" if name.endswith("typed") else ".py"
    (folder / (name + suffix)).write_text("\n".join(header) + "\n" + source)
    made = subprocess.run(
        [sys.executable, "-m", "cython", "-3", name + suffix, "-o", name + ".c"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if made.returncode:
        raise SystemExit(f"cython failed on {name}{suffix}:\n{made.stderr[-2000:]}")
    so = name + sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-I", include, name + ".c", "-o", so], cwd=folder, check=True
    )
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


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


def probe(evs: int, calls: int, rounds: int, folder: Path) -> None:
    from plcrun.compiler.api import compile_file
    from plcrun.executor.clock import VirtualClock
    from plcrun.site import SiteRuntime
    from plcrun.state.support import NAMESPACE

    program = compile_file(ROOT / "programs" / "freq_response.st")
    executor = SiteRuntime.build(program, scenario="quiet_grid", evs=evs, clock=VirtualClock()).executor
    executor.run(duration_ns=1_000_000_000)
    state = executor.state
    names = [n for n in state.namespace if n in NAMESPACE or n in ("_rt", "_NS", "_f32", "_F32", "_G")]
    builtins._probe_ns = state.namespace  # type: ignore[attr-defined]
    info = next(iter(state.task_infos.values()))
    forms: dict[str, tuple[Any, int]] = {"interpreter": (state.instances["main"]._body, 0)}
    for form, source in (
        ("cython", program.python_source),
        ("cython-typed", typed_source(program.python_source)),
    ):
        module = build_module(f"probe_{evs}_{form.replace('-', '_')}", source, names, folder)
        module._NS = module.__dict__  # the conversions' memo rebinds the module's own names
        forms[form] = (copy_state(state.instances["main"], module)._body, 0)
    best = dict.fromkeys(forms, float("inf"))
    clocks = dict.fromkeys(forms, state.rt.now)
    for _ in range(rounds):
        for form, (body, _) in forms.items():
            us, clocks[form] = timed(body, state.rt, info, clocks[form], calls)
            best[form] = min(best[form], us)
    base = best["interpreter"]
    for form, us in best.items():
        print(f"{evs:>4} EVs  {form:<13} {us:8.2f} µs a body call   interpreter / this {base / us:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evs", default="10,100")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import Cython  # noqa: F401
    except ImportError:
        print("Cython is not installed (pip install cython): nothing to probe")
        return
    if shutil.which("gcc") is None or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        print("gcc or the Python headers are missing: nothing to probe")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for evs in (int(n) for n in args.evs.split(",")):
            probe(evs, args.calls, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
