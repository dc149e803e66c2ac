"""A call's structured outputs are stored by value into the destination's own object
(conformance/output_values.st has the values): an accessor made before the call, as the dashboard,
alarms and bindings keep them, still reads the destination afterwards."""

from __future__ import annotations

from pathlib import Path

from plcrun.compiler.api import compile_file

CASE = Path(__file__).parent / "conformance" / "output_values.st"


def test_an_accessor_of_an_output_destination_stays_live() -> None:
    state = compile_file(CASE).new_state()
    state.run_task_scan("main_task", 0)
    assert state.read("main.p.mine[1]") == 1.0 and state.read("main.p.mpair.b") == 1
    state.run_task_scan("main_task", 10_000_000)
    values = state.snapshot()["main"]["p"]
    assert state.read("main.p.mine[1]") == values["mine"][0] == 12.0
    assert state.read("main.p.mpair.b") == values["mpair"]["b"] == 3
