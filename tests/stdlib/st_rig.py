"""Drives the grid library's ST blocks and programs scan by scan from Python.

``FbRig("FCR_DROOP")`` compiles a one-line program that calls one instance of the block every scan
(inputs keep their values between calls), then ``rig.scan(freq_hz=49.9)`` writes inputs by path and
runs one 10 ms scan of the scan clock; ``rig.get("p_w")`` reads an output. ``ProgramRig`` does the
same for a program file of ``programs/`` (instance ``main``). Everything runs in virtual time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plcrun.compiler.api import compile_file, compile_source
from plcrun.state.program import CompiledProgram, ProgramState

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "programs"
STDLIB = REPO / "stdlib"
SCAN_NS = 10_000_000
MS = 1_000_000


def f32(value: float) -> float:
    """``value`` rounded to binary32, as a REAL stores it."""
    import struct

    return float(struct.unpack("f", struct.pack("f", value))[0])


@functools.cache
def _fb_program(fb_type: str, with_evs: bool) -> CompiledProgram:
    evs_decl = "evs : ARRAY[1..MAX_EVS] OF EV_SESSION;" if with_evs else ""
    call = "fb(evs := evs);" if with_evs else "fb();"
    text = f"PROGRAM rig\nVAR\n  fb : {fb_type};\n  {evs_decl}\nEND_VAR\n{call}\nEND_PROGRAM\n"
    program = compile_source(text, f"rig_{fb_type.lower()}.st")
    assert not program.diagnostics, [d.message for d in program.diagnostics]
    return program


@functools.cache
def _program_file(name: str) -> CompiledProgram:
    program = compile_file(PROGRAMS / name)
    assert not program.diagnostics, [d.message for d in program.diagnostics]
    return program


class _Rig:
    """Common scan loop: scan k runs at k * period (the first at time 0)."""

    def __init__(self, program: CompiledProgram, prefix: str, period_ns: int = SCAN_NS) -> None:
        self.program = program
        self.state: ProgramState = program.new_state()
        self.task = program.tasks[0].name
        self.prefix = prefix
        self.period_ns = period_ns
        self.scans = 0
        self.now_ns = 0

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def set(self, values: Mapping[str, Any] | None = None, **inputs: Any) -> None:
        for name, value in {**(values or {}), **inputs}.items():
            self.state.write(self.path(name), value)

    def scan(
        self, values: Mapping[str, Any] | None = None, *, at_ns: int | None = None, **inputs: Any
    ) -> None:
        """One scan at ``at_ns`` (default: one period after the previous scan)."""
        self.set(values, **inputs)
        if at_ns is not None:
            self.now_ns = at_ns
        elif self.scans > 0:
            self.now_ns += self.period_ns
        self.state.run_task_scan(self.task, self.now_ns)
        self.scans += 1

    def run(self, scans: int, values: Mapping[str, Any] | None = None, **inputs: Any) -> None:
        for _ in range(scans):
            self.scan(values, **inputs)

    def get(self, name: str) -> Any:
        """The value as JSON gives it (enums by name, TIME as text)."""
        return self.state.read(self.path(name))

    def raw(self, name: str) -> Any:
        """The stored value (TIME in ns, enums as numbers)."""
        return self.state.accessor(self.path(name)).get()


class FbRig(_Rig):
    def __init__(self, fb_type: str, with_evs: bool = False, period_ns: int = SCAN_NS) -> None:
        super().__init__(_fb_program(fb_type, with_evs), "rig.fb", period_ns)

    def set_ev(self, index: int, **fields: Any) -> None:
        for name, value in fields.items():
            self.state.write(f"rig.evs[{index}].{name}", value)

    def ev(self, index: int, name: str) -> Any:
        return self.state.read(f"rig.evs[{index}].{name}")


class ProgramRig(_Rig):
    def __init__(self, file_name: str, period_ns: int = SCAN_NS) -> None:
        super().__init__(_program_file(file_name), "main", period_ns)

    def set_ev(self, index: int, **fields: Any) -> None:
        for name, value in fields.items():
            self.state.write(f"main.evs[{index}].{name}", value)

    def setpoints(self, count: int) -> list[float]:
        return [self.state.read(f"main.evs[{i}].p_setpoint_w") for i in range(1, count + 1)]


BIDI_CAR = {
    "connected": True,
    "bidirectional_allowed": True,
    "soc_pct": 60.0,
    "min_soc_pct": 30.0,
    "target_soc_pct": 80.0,
    "p_charge_max_w": 11000.0,
    "p_charge_min_w": 4140.0,
    "p_discharge_max_w": 11000.0,
    "p_discharge_min_w": 4140.0,
}


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
