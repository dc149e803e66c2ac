"""A driver value that does not fit its ST type makes that one input BAD (never a GOOD infinity or a
wrapped integer), leaves the variable as it was, and costs nothing else: the other car still gets
its share (program: programs/fleet_share.st)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.compiler import st_types as T
from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.executor.input_range import misfit_check

from tests.executor.scripted_driver import ScriptedDriver

PROGRAMS = Path(__file__).parent / "programs"
MS = 1_000_000
INPUTS = ["fleet.limit1", "fleet.limit2", "fleet.sessions", "fleet.energy"]


@pytest.mark.parametrize(
    ("st_type", "value", "problem"),
    [
        (T.REAL, 1e39, "outside the range of REAL"),
        (T.REAL, -1e39, "outside the range of REAL"),
        (T.REAL, 10**400, "outside the range of REAL"),
        (T.REAL, float("inf"), "not a finite REAL"),
        (T.REAL, float("nan"), "not a finite REAL"),
        (T.LREAL, 10**400, "outside the range of LREAL"),
        (T.LREAL, float("-inf"), "not a finite LREAL"),
        (T.INT, 70_000, "outside INT (-32768..32767)"),
        (T.UINT, -1, "outside UINT (0..65535)"),
        (T.SINT, 127.6, "outside SINT (-128..127)"),
        (T.DINT, float("nan"), "not a finite DINT"),
    ],
)
def test_values_that_do_not_fit_are_named(st_type: T.Type, value: object, problem: str) -> None:
    check = misfit_check(st_type)
    assert check is not None
    found = check(value)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    ("st_type", "value"),
    [(T.REAL, 3.4e38), (T.REAL, -7000.0), (T.LREAL, 1e300), (T.INT, -32768), (T.UINT, 65535.2), (T.REAL, 5)],
)
def test_values_that_fit_pass(st_type: T.Type, value: object) -> None:
    check = misfit_check(st_type)
    assert check is not None and check(value) is None


def test_one_cars_huge_limit_costs_that_cars_input_not_the_fleets_response() -> None:
    script: list[tuple[int, dict[str, object]]] = [
        (0, {"fleet.limit1": 7000.0, "fleet.limit2": 5000.0, "fleet.sessions": 2, "fleet.energy": 1.5}),
        (20 * MS, {"fleet.limit1": 1e39, "fleet.sessions": 70_000, "fleet.energy": 10**400}),
        (40 * MS, {"fleet.limit1": 4000.0}),
    ]
    driver = ScriptedDriver("everest", INPUTS, [], script)
    executor = Executor(
        compile_file(PROGRAMS / "fleet_share.st"), clock=VirtualClock(), drivers=[driver], alarms=AlarmBus()
    )
    executor.run(max_scans=2)
    assert executor.read("fleet.set1") == pytest.approx(3500.0)
    assert executor.read("fleet.set2") == pytest.approx(2500.0)

    executor.run(max_scans=2)  # 20 and 30 ms: car 1 reports 1e39 W
    status = {row["path"]: row for row in executor.image.input_status()}
    assert status["fleet.limit1"]["quality"] == "BAD"
    assert status["fleet.limit1"]["value"] == 7000.0  # the last value that fitted, not +inf
    assert status["fleet.limit2"]["quality"] == "GOOD"
    assert status["fleet.sessions"]["quality"] == "BAD" and status["fleet.sessions"]["value"] == 2
    assert status["fleet.energy"]["quality"] == "BAD" and status["fleet.energy"]["value"] == 1.5
    assert executor.read("fleet.set1") == 0.0
    assert executor.read("fleet.set2") == pytest.approx(6000.0)  # the other car takes the request

    executor.run(max_scans=1)  # 40 ms: a value that fits makes the input GOOD again
    status = {row["path"]: row for row in executor.image.input_status()}
    assert status["fleet.limit1"]["quality"] == "GOOD"
    assert executor.read("fleet.set1") == pytest.approx(2666.666, rel=1e-4)
