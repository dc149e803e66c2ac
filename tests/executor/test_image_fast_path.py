"""The process image's fast path (a value of the variable's own Python type stored straight where it
lives) gives exactly what the general path gives (``misfit`` check, then ``accessor.set``): the same
stored value, the same quality, the same rejection, for every kind of variable and awkward values.
Also: the ages of EV SoCs on both of their paths, and ST alarms after a task restart (the restart
makes fresh instances, which the alarm check must read)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.executor.process_image import _SLOW
from plcrun.executor.watchdog import TaskState, WatchdogConfig

from tests.executor.scripted_driver import ScriptedDriver

PROGRAMS = Path(__file__).parent / "programs"
MS = 1_000_000
PATHS = [
    "kinds.r", "kinds.l", "kinds.i", "kinds.u", "kinds.d", "kinds.b", "kinds.t", "kinds.w", "kinds.m",
    "kinds.s", "kinds.cars[2]",
]  # fmt: skip
VALUES: list[object] = [
    1.5, -7000.25, 0.1, 3.4e38, 3.4028235e38, 3.4028236e38, 3.5e38, 1e39, -1e39, 1e300, 10**400,
    math.nan, math.inf, -math.inf, 5, -1, 0, 70_000, 2**31, -(2**63), 2**64, 127.6, -32768, 65535,
    True, False, "12", "on", "abc", 1, 0.0, -0.0, 5e-324,
]  # fmt: skip


def run(values: list[object], slow: bool) -> list[dict[str, object]]:
    script: list[tuple[int, dict[str, object]]] = [
        (k * 10 * MS, dict.fromkeys(PATHS, value)) for k, value in enumerate(values)
    ]
    driver = ScriptedDriver("kinds", PATHS, [], script)
    executor = Executor(compile_file(PROGRAMS / "input_kinds.st"), clock=VirtualClock(), drivers=[driver])
    if slow:
        for point in executor.image.bindings[0].inputs.values():
            point.kind = _SLOW
    assert any(p.kind != _SLOW for p in executor.image.bindings[0].inputs.values()) != slow
    seen = []
    for _ in values:
        executor.run(max_scans=1)
        rows = executor.image.input_status()
        seen.append(
            {
                row["path"]: (
                    repr(executor.image.bindings[0].inputs[str(row["path"])].accessor.get()),
                    row["quality"],
                    executor.state.rt.qualities.get(str(row["path"])),
                    executor.image.bindings[0].inputs[str(row["path"])].rejected,
                )
                for row in rows
            }
        )
    return seen


def test_the_fast_path_stores_what_the_general_path_stores() -> None:
    fast, general = run(VALUES, slow=False), run(VALUES, slow=True)
    for value, one, other in zip(VALUES, fast, general, strict=True):
        assert one == other, f"value {value!r}"
    # and the battery does reach both outcomes on the fast kinds
    assert fast[0]["kinds.r"][:2] == ("1.5", "GOOD")
    assert fast[VALUES.index(1e39)]["kinds.r"][1] == "BAD"
    assert fast[VALUES.index(3.4028235e38)]["kinds.r"][:2] == ("3.4028234663852886e+38", "GOOD")
    assert fast[VALUES.index(3.4028236e38)]["kinds.r"][1] == "BAD"  # rounds beyond the largest REAL
    assert fast[VALUES.index(70_000)]["kinds.i"][1] == "BAD"
    assert fast[VALUES.index(70_000)]["kinds.d"][:2] == ("70000", "GOOD")


@pytest.mark.parametrize("delivered", [(True, True), (True, False)])
def test_soc_ages_on_the_fast_and_the_per_car_path(delivered: tuple[bool, bool]) -> None:
    paths = ["fleet.evs[1].soc_pct", "fleet.evs[2].soc_pct"]
    first = {p: 50.0 for p, on in zip(paths, delivered, strict=True) if on}
    driver = ScriptedDriver("chargers", paths, [], [(0, first), (30 * MS, {"fleet.evs[1].soc_pct": 51.0})])
    executor = Executor(compile_file(PROGRAMS / "ev_ages.st"), clock=VirtualClock(), drivers=[driver])
    executor.run(max_scans=6)
    assert executor.read("fleet.evs[1].soc_age") == "T#20ms"
    # a car that never reported keeps its initial age (no stamp), the other is aged all the same
    assert executor.read("fleet.evs[2].soc_age") == ("T#50ms" if delivered[1] else "T#0s")


def test_an_st_alarm_clears_when_a_restart_gives_the_task_fresh_instances() -> None:
    script: list[tuple[int, dict[str, object]]] = [(0, {"guard.divisor": 1}), (40 * MS, {"guard.divisor": 0})]
    driver = ScriptedDriver("plc", ["guard.divisor"], [], script)
    alarms = AlarmBus()
    config = ExecutorConfig(watchdog=WatchdogConfig(restart="restart", restart_delay_s=0.02))
    executor = Executor(
        compile_file(PROGRAMS / "alarm_restart.st"),
        clock=VirtualClock(),
        drivers=[driver],
        alarms=alarms,
        config=config,
    )
    executor.run(max_scans=4)
    assert [a.message for a in alarms.active() if a.key == "st:guard.long_running"] == ["running for 4 scans"]
    executor.run(max_scans=1)  # 40 ms: division by zero
    assert executor.supervisors["DEFAULT"].state is TaskState.FAULTED
    executor.run(max_scans=3)  # the restart, then the first scan of the fresh instance
    assert executor.supervisors["DEFAULT"].state is TaskState.RUNNING
    assert executor.read("guard.scans") <= 2
    assert not [a for a in alarms.active() if a.key == "st:guard.long_running"]
    executor.run(max_scans=3)
    assert [a.message for a in alarms.active() if a.key == "st:guard.long_running"] == [
        f"running for {executor.read('guard.scans')} scans"
    ]
