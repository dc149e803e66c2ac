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
from plcrun.executor.driver_api import InputGroup, Quality
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


FAST_PATHS = PATHS[:8]  # r, l, i, u, d, b, t, w: attributes of a fast kind


class GroupedDriver(ScriptedDriver):
    """The scripted samples delivered as groups (``Driver.read_input_groups``): ``layout`` "all" (one
    group per read), "fast" (the fast kinds together, the rest one by one), "single" (one group
    per path) or "twice" (each path twice in a group of its own: the duplicate rules out the made
    store function, so the group takes ``image_store.fit``)."""

    delivers_groups = True

    def __init__(self, layout: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.layout = layout
        self._tuples: dict[tuple[str, ...], tuple[str, ...]] = {}

    def read_input_groups(self, now_ns: int) -> list[InputGroup]:
        samples = self.read_inputs(now_ns)
        if self.layout == "all":
            parts = [list(samples)]
        elif self.layout == "fast":
            parts = [[p for p in samples if p in FAST_PATHS]] + [[p] for p in samples if p not in FAST_PATHS]
        elif self.layout == "single":
            parts = [[p] for p in samples]
        else:
            parts = [[p, p] for p in samples]
        groups = []
        for part in parts:
            by_quality: dict[tuple[Quality, int], list[str]] = {}
            for path in part:
                by_quality.setdefault((samples[path].quality, samples[path].timestamp_ns), []).append(path)
            for (quality, stamp), paths in by_quality.items():
                key = self._tuples.setdefault(tuple(paths), tuple(paths))  # the same tuple each time
                groups.append(InputGroup(key, [samples[p].value for p in paths], quality, stamp))
        return groups


def run(values: list[object], slow: bool, layout: str = "") -> list[dict[str, object]]:
    script: list[tuple[int, dict[str, object]]] = [
        (k * 10 * MS, dict.fromkeys(PATHS, value)) for k, value in enumerate(values)
    ]
    driver = (
        GroupedDriver(layout, "kinds", PATHS, [], script)
        if layout
        else ScriptedDriver("kinds", PATHS, [], script)
    )
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


@pytest.mark.parametrize("layout", ["all", "fast", "single", "twice"])
def test_groups_of_samples_store_what_single_samples_store(layout: str) -> None:
    # every value of the battery in turn, then a good value after each (a rejection's recovery)
    values = [v for value in VALUES for v in (value, 2)]
    assert run(values, slow=False, layout=layout) == run(values, slow=False)
    assert run(values, slow=True, layout=layout) == run(values, slow=True)


def test_a_driver_without_groups_of_its_own_delivers_one_group_per_sample() -> None:
    driver = ScriptedDriver("kinds", PATHS[:2], [], [(0, {"kinds.r": 1.5, "kinds.l": 2.5})])
    groups = driver.read_input_groups(7)
    assert sorted((g.paths, tuple(g.values), g.quality, g.timestamp_ns) for g in groups) == [
        (("kinds.l",), (2.5,), Quality.GOOD, 7),
        (("kinds.r",), (1.5,), Quality.GOOD, 7),
    ]


def test_a_group_of_every_fast_kind_is_stored_whole_or_value_by_value_alike() -> None:
    good = {"kinds.r": 1.5, "kinds.l": 2.5, "kinds.i": -3, "kinds.u": 4, "kinds.d": 5, "kinds.b": True}
    good |= {"kinds.t": 6, "kinds.w": 7}
    other = {"kinds.r": -2.5, "kinds.l": 1e300, "kinds.i": 32767, "kinds.u": 0, "kinds.d": -(2**31)}
    other |= {"kinds.b": False, "kinds.t": 2**62, "kinds.w": 65535}
    steps = [good, other, good] + [
        good | {path: value} for path in FAST_PATHS for value in (1e39, math.nan, 70_000, "x")
    ]
    steps += [other, good, other | {"kinds.r": -0.0}, good]  # every value at once: the made store
    outcomes = []
    for layout in ("", "fast"):
        script = [(k * 10 * MS, values) for k, values in enumerate(steps)]
        driver = (
            GroupedDriver(layout, "kinds", FAST_PATHS, [], script)
            if layout
            else ScriptedDriver("kinds", FAST_PATHS, [], script)
        )
        executor = Executor(compile_file(PROGRAMS / "input_kinds.st"), clock=VirtualClock(), drivers=[driver])
        seen = []
        for _ in steps:
            executor.run(max_scans=1)
            seen.append(
                [
                    (
                        repr(executor.image.bindings[0].inputs[p].accessor.get()),
                        executor.image.bindings[0].inputs[p].quality,
                        executor.state.rt.stamps.get(p),
                    )
                    for p in FAST_PATHS
                ]
            )
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0][:2] == ("1.5", Quality.GOOD)
    assert {q for step in outcomes[0] for _, q, _ in step} == {Quality.GOOD, Quality.BAD}


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


class ByValueDriver(ScriptedDriver):
    outputs_by_value = True


@pytest.mark.parametrize("by_value", [False, True])
def test_equal_outputs_hand_over_the_last_mapping_only_to_a_driver_that_compares_by_value(
    by_value: bool,
) -> None:
    script: list[tuple[int, dict[str, object]]] = [(0, {"plant.hz": 50.0}), (20 * MS, {"plant.hz": 49.9})]
    cls = ByValueDriver if by_value else ScriptedDriver
    driver = cls("meter", ["plant.hz"], ["plant.p_set"], script)
    handed: list[object] = []
    original = driver.write_outputs

    def keep(now_ns: int, values: object) -> None:
        handed.append(values)
        original(now_ns, values)  # type: ignore[arg-type]

    driver.write_outputs = keep  # type: ignore[method-assign]
    executor = Executor(compile_file(PROGRAMS / "plant.st"), clock=VirtualClock(), drivers=[driver])
    executor.run(max_scans=4)
    assert [dict(v) for v in handed] == [
        {"plant.p_set": p} for p in (0.0, 0.0, pytest.approx(10000.0), pytest.approx(10000.0))
    ]  # type: ignore[call-overload]
    same = [handed[i] is handed[i + 1] for i in range(3)]
    assert same == ([True, False, True] if by_value else [False, False, False])


def test_soc_ages_written_by_the_made_writer_equal_the_per_car_path_for_a_fleet() -> None:
    """``_ages_writer``'s straight-line code (stamps unpacked once) against ``Ages.update``'s per-car
    path (forced by ``high = -1``) for 12 sessions reporting at staggered times: the same ages after
    every scan, each the clock less the session's stamp."""
    paths = [f"fleet.evs[{i}].soc_pct" for i in range(1, 13)]
    script = [(k * 7 * MS, {paths[(k * 5) % 12]: 40.0 + k, paths[k % 12]: 60.0}) for k in range(40)]
    script.insert(0, (0, {p: 50.0 for p in paths}))
    runs = []
    for fast in (True, False):
        executor = Executor(
            compile_file(PROGRAMS / "ev_ages_many.st"),
            clock=VirtualClock(),
            drivers=[ScriptedDriver("chargers", paths, [], script)],
        )
        ages = executor.image._ages["DEFAULT"]
        if not fast:
            ages.high = -1  # the per-car path only
        seen = []
        for _ in range(45):
            executor.run(max_scans=1)
            now = executor.clock.now_ns()
            ages_of = [p.path.replace(".soc_pct", ".soc_age") for p in ages.points]
            values = [executor.state.accessor(path).get() for path in ages_of]
            assert values == [now - p.stamp_ns for p in ages.points]
            seen.append(values)
        assert (ages._write is not None) is fast
        runs.append(seen)
    assert runs[0] == runs[1]
    assert len({tuple(scan) for scan in runs[0]}) == 45 and len(set(runs[0][-1])) > 3


class MisshapenDriver(ScriptedDriver):
    """Delivers one group for three paths, with the values of its list ``deliveries`` in turn: some
    with fewer or more values than paths (a driver bug the image must survive)."""

    delivers_groups = True
    PATHS = ("kinds.r", "kinds.l", "kinds.i")

    def __init__(self, deliveries: list[list[object]]) -> None:
        super().__init__("kinds", list(self.PATHS), [])
        self.deliveries = deliveries

    def read_input_groups(self, now_ns: int) -> list[InputGroup]:
        values = self.deliveries.pop(0) if self.deliveries else []
        return [InputGroup(self.PATHS, values, Quality.GOOD, now_ns)] if values else []


def test_a_group_with_fewer_or_more_values_than_paths_stores_the_paths_that_have_one() -> None:
    # the made store function answers False for it (nothing written); the value-by-value path then
    # stores each path that has a value and ignores values beyond the paths
    deliveries: list[list[object]] = [[1.5, 2.5, 3], [4.5, 5.5], [6.5, 7.5, 8, 9], [10.5, 11.5, 12]]
    executor = Executor(
        compile_file(PROGRAMS / "input_kinds.st"), clock=VirtualClock(), drivers=[MisshapenDriver(deliveries)]
    )
    seen = []
    for _ in range(4):
        executor.run(max_scans=1)
        seen.append(tuple(executor.state.accessor(p).get() for p in MisshapenDriver.PATHS))
    assert seen == [(1.5, 2.5, 3), (4.5, 5.5, 3), (6.5, 7.5, 8), (10.5, 11.5, 12)]
    stamps = executor.state.rt.stamps
    assert stamps["kinds.i"] == stamps["kinds.r"]  # the last delivery was whole again
    entry = next(iter(executor.image._groups.values()))
    assert entry.store([1.0, 2.0], 5, {}, executor.image._cell) is False


def test_a_group_of_reals_rounded_by_one_array_stores_what_single_samples_store() -> None:
    # 12 REAL inputs in one group (the made store rounds them by one array('f') and tests one sum
    # for finiteness): every battery value passes through every position, mixed with good values
    paths = [f"fleet.evs[{i}].soc_pct" for i in range(1, 13)]
    floats = [v for v in VALUES if type(v) is float] + [2.5, 1.0000000596046448, 3.4e38, -3.4e38]
    script: list[tuple[int, dict[str, object]]] = []
    for k in range(len(floats) + 12):
        values = {p: floats[(k + j) % len(floats)] if (k + j) % 3 else 40.0 + j for j, p in enumerate(paths)}
        script.append((k * 10 * MS, values))
    script.append((len(script) * 10 * MS, dict.fromkeys(paths, 55.5)))  # all good again
    outcomes = []
    for grouped in (True, False):
        driver = (
            GroupedDriver("all", "c", paths, [], script)
            if grouped
            else ScriptedDriver("c", paths, [], script)
        )
        executor = Executor(
            compile_file(PROGRAMS / "ev_ages_many.st"), clock=VirtualClock(), drivers=[driver]
        )
        seen = []
        for _ in script:
            executor.run(max_scans=1)
            points = executor.image.bindings[0].inputs
            seen.append(
                [
                    (
                        repr(points[p].accessor.get()),
                        points[p].quality,
                        points[p].rejected,
                        points[p].stamp_ns,
                    )
                    for p in paths
                ]
            )
        if grouped:
            entry = next(iter(executor.image._groups.values()))
            assert len(entry.points) == 12 and entry.store is not None
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert {q for scan in outcomes[0] for _, q, _, _ in scan} == {Quality.GOOD, Quality.BAD}
    assert outcomes[0][-1] == [("55.5", Quality.GOOD, "", outcomes[0][-1][0][3])] * 12
