"""FLEET_ZERO against its earlier form (``fleet_zero_reference.st``: a counter incremented in the
loop): for bounds inside, across and outside 1..MAX_EVS, empty ranges and the ends of INT, the
library's function (count computed from the clipped bounds) zeroes the same setpoints and returns
the same count, which is also the number of setpoints it set to 0 W."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from st_rig import SCAN_NS

HERE = Path(__file__).parent
EDGES = (-32768, -5, 0, 1, 2, 7, 999, 1000, 1001, 32767)


def _expected(first: int, last: int) -> int:
    return max(0, min(last, 1000) - max(first, 1) + 1)


@pytest.mark.parametrize("first", EDGES)
def test_fleet_zero_matches_its_reference(first: int) -> None:
    program = compile_file(HERE / "fleet_zero_reference.st")
    assert not program.diagnostics, [d.message for d in program.diagnostics]
    state = program.new_state()
    for scan, last in enumerate(EDGES):
        state.accessor("zero_twin.first").set(first)
        state.accessor("zero_twin.last").set(last)
        state.run_task_scan(program.tasks[0].name, scan * SCAN_NS)
        count = state.read("zero_twin.count_now")
        assert count == state.read("zero_twin.count_ref") == _expected(first, last), (first, last)
        assert state.read("zero_twin.zeroed") == count, (first, last)
        assert state.read("zero_twin.different") == 0, (first, last)
