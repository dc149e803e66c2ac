"""Executor behaviour in virtual time: scans, overruns, watchdog, faults, priorities, forcing,
online change and determinism. No test sleeps or looks at the wall clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Quality
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.executor.watchdog import TaskState, WatchdogConfig
from scripted_driver import ScriptedDriver

PROGRAMS = Path(__file__).parent / "programs"
MS = 1_000_000


def plant_executor(
    script: list[tuple[int, dict[str, object]]] | None = None,
    cost: dict[int, int] | None = None,
    watchdog: WatchdogConfig | None = None,
    **config: object,
) -> tuple[Executor, ScriptedDriver, AlarmBus]:
    program = compile_file(PROGRAMS / "plant.st")
    driver = ScriptedDriver("meter", ["plant.hz"], ["plant.p_set"], script or [(0, {"plant.hz": 50.0})])
    alarms = AlarmBus()
    costs = cost or {}
    executor = Executor(
        program,
        clock=VirtualClock(),
        drivers=[driver],
        alarms=alarms,
        config=ExecutorConfig(watchdog=watchdog or WatchdogConfig(), **config),  # type: ignore[arg-type]
        cost_model=lambda task, index: costs.get(index, 100_000),
    )
    return executor, driver, alarms


def test_inputs_reach_the_program_and_outputs_the_driver() -> None:
    executor, driver, _ = plant_executor([(0, {"plant.hz": 50.0}), (30 * MS, {"plant.hz": 49.9})])
    executor.run(max_scans=5)
    values = [v["plant.p_set"] for _, v in driver.written]
    # scans at 0, 10, 20 ms see 50 Hz; the scan at 30 ms sees the step in the same scan
    assert values == [0.0, 0.0, 0.0, pytest.approx(10000.0, rel=1e-6), pytest.approx(10000.0, rel=1e-6)]
    assert executor.read("plant.now") == "T#40ms"
    assert executor.read("plant.scans") == 5


def test_a_slow_scan_skips_periods_without_a_burst() -> None:
    executor, _, _ = plant_executor(cost={2: 35 * MS}, watchdog=WatchdogConfig(overrun_limit=0))
    executor.run(max_scans=6)
    stats = executor.scheduler.stats.task("DEFAULT")
    assert stats.overruns == 1
    # the scan released at 20 ms ends at 55 ms: the releases at 30 and 40 ms are skipped and the
    # next scan serves the latest passed release (50 ms) at once, without replaying the others
    assert stats.skipped_periods == 2
    assert executor.read("plant.now") == "T#70ms"  # scans at 0, 10, 20, 50, 60, 70 ms
    assert executor.read("plant.scans") == 6


def test_overrun_counter_is_visible_and_resettable_from_st() -> None:
    executor, _, _ = plant_executor(cost={1: 15 * MS, 3: 15 * MS}, watchdog=WatchdogConfig(overrun_limit=0))
    executor.run(max_scans=6)
    # the counter ST reads is the one of the previous scans (updated after each scan)
    assert executor.read("plant.overruns") == 2
    assert executor.scheduler.stats.task("DEFAULT").overruns == 2
    executor.journal.write("plant.reset", True)
    executor.run(max_scans=2)
    assert executor.scheduler.stats.task("DEFAULT").overruns == 0
    assert executor.read("plant.overruns") == 0
    assert executor.read("plant.reset") is False


def test_watchdog_consecutive_overruns_fault_the_task_and_outputs_go_safe_within_one_interval() -> None:
    executor, driver, alarms = plant_executor(
        [(0, {"plant.hz": 49.0})],
        cost={5: 15 * MS, 6: 15 * MS, 7: 15 * MS},
        watchdog=WatchdogConfig(overrun_limit=3),
    )
    executor.run(max_scans=12)
    supervisor = executor.supervisors["DEFAULT"]
    assert supervisor.state is TaskState.FAULTED
    assert "overran 3 periods in a row" in supervisor.fault_message
    assert [a.key for a in alarms.active()] == ["task:DEFAULT"]
    assert executor.scheduler.stats.task("DEFAULT").watchdog == "faulted"
    # the driver got the declared safe value (attribute 'safe' := '-1.5') right at the faulting scan's end
    first_safe_at, values = driver.safe_states[0]
    last_scan_end = executor.scheduler.stats.task("DEFAULT").last_overrun_start_ns + 15 * MS  # type: ignore[operator]
    assert values == {"plant.p_set": -1.5}
    assert first_safe_at - last_scan_end < 10 * MS
    assert executor.read("plant.p_set") == -1.5
    assert executor.read("plant.relay") is False
    # no more program output after the fault: every later period re-applies the safe state
    writes_after = [t for t, _ in driver.written if t > first_safe_at]
    assert writes_after == []
    assert len(driver.safe_states) >= 3


def test_one_scan_longer_than_the_watchdog_time_faults_at_once() -> None:
    executor, _, _ = plant_executor(
        cost={3: 150 * MS}, watchdog=WatchdogConfig(time_factor=10, overrun_limit=0)
    )
    executor.run(max_scans=4)
    supervisor = executor.supervisors["DEFAULT"]
    assert supervisor.state is TaskState.FAULTED
    assert "took 150.0 ms, more than 100.0 ms" in supervisor.fault_message


def test_restart_policy_restarts_a_faulted_task_after_its_delay() -> None:
    executor, _, alarms = plant_executor(
        cost={2: 150 * MS}, watchdog=WatchdogConfig(overrun_limit=0, restart="restart", restart_delay_s=0.05)
    )
    executor.run(max_scans=3)
    assert executor.supervisors["DEFAULT"].state is TaskState.FAULTED
    executor.run(max_scans=12)
    assert executor.supervisors["DEFAULT"].state is TaskState.RUNNING
    assert alarms.active() == []
    assert executor.read("plant.scans") >= 1  # cold restart: counting again from the initial value


def test_runtime_fault_names_the_st_line_and_spares_the_other_task() -> None:
    program = compile_file(PROGRAMS / "two_tasks.st")
    executor = Executor(program, clock=VirtualClock())
    executor.run(max_scans=4)
    executor.journal.write("s.divisor", 0)
    executor.run(max_scans=8)
    supervisor = executor.supervisors["slow"]
    assert supervisor.state is TaskState.FAULTED
    assert supervisor.fault_message.endswith("two_tasks.st:11: runtime fault: division by zero")
    assert executor.supervisors["fast"].state is TaskState.RUNNING
    runs_before = executor.read("f.runs")
    executor.run(duration_ns=50 * MS)
    assert executor.read("f.runs") >= runs_before + 4  # a 10 ms task over 50 ms of virtual time


def test_a_loop_that_never_ends_is_interrupted() -> None:
    program = compile_file(PROGRAMS / "runaway.st")
    executor = Executor(program, clock=VirtualClock(), config=ExecutorConfig(loop_budget=100_000))
    executor.run(max_scans=2)
    executor.journal.write("spin.go", True)
    executor.run(max_scans=3)
    supervisor = executor.supervisors["DEFAULT"]
    assert supervisor.state is TaskState.FAULTED
    assert "runaway.st:5: runtime fault: loop ran more than 100000 iterations" in supervisor.fault_message


def test_higher_priority_task_runs_first_when_both_are_due() -> None:
    program = compile_file(PROGRAMS / "two_tasks.st")
    executor = Executor(program, clock=VirtualClock())
    executor.run(max_scans=6)
    order = executor.read("cell.order")[:6]
    # t=0: slow (priority 1) then fast; t=10: fast; t=20: slow then fast; t=30: fast
    assert order == [0, 1, 1, 0, 1, 1]


def test_forces_hold_until_released_and_are_listed() -> None:
    executor, driver, _ = plant_executor([(0, {"plant.hz": 50.0})])
    executor.run(max_scans=2)
    executor.journal.force("plant.hz", 49.5, source="test")
    executor.run(max_scans=3)
    assert executor.journal.forces() == {"plant.hz": 49.5}
    assert driver.written[-1][1]["plant.p_set"] == pytest.approx(50000.0)
    executor.journal.release("plant.hz")
    executor.run(max_scans=1)
    assert executor.journal.forces() == {}
    assert executor.read("plant.hz") == 50.0  # the driver's value is back
    assert driver.written[-1][1]["plant.p_set"] == 0.0
    assert [e.action for e in executor.journal.entries()] == ["force", "release"]


def test_required_input_with_bad_quality_puts_outputs_to_safe_values() -> None:
    program = compile_file(PROGRAMS / "plant.st")
    driver = ScriptedDriver(
        "meter",
        ["plant.hz"],
        ["plant.p_set"],
        [(0, {"plant.hz": 49.0})],
        quality_script=[(20 * MS, {"plant.hz": Quality.COMM_LOST})],
    )
    executor = Executor(
        program, clock=VirtualClock(), drivers=[driver], config=ExecutorConfig(required_inputs={"plant.hz"})
    )
    executor.run(max_scans=4)
    outputs = [v["plant.p_set"] for _, v in driver.written]
    assert outputs[:2] == [pytest.approx(100000.0), pytest.approx(100000.0)]
    assert outputs[2:] == [-1.5, -1.5]  # from the scan that sees the bad quality


def test_online_change_keeps_unchanged_variables() -> None:
    executor = Executor(compile_file(PROGRAMS / "online_v1.st"), clock=VirtualClock())
    executor.run(max_scans=5)
    result = executor.online_change(compile_file(PROGRAMS / "online_v2.st"))
    assert result.accepted, result.reason
    executor.run(max_scans=1)
    assert executor.read("main.n") == 15  # kept (5) and the new code adds 10
    assert executor.read("main.x") == 101  # type changed INT -> DINT: initial value 100, +1
    assert executor.read("main.added") == 42
    assert executor.read("main.label") == "v1"  # same type: the value is kept, not the new initial value
    assert executor.read("main.hist") == [6, 0, 0]
    assert executor.read("main.delay.ET") == "T#50ms"  # the timer kept running across the change
    assert "main.x (type changed from INT to DINT)" in result.initialised
    assert "main.added (new)" in result.initialised


def test_parameters_are_set_at_start_and_again_after_an_online_change() -> None:
    parameters: dict[str, object] = {"main.x": 1000, "main.label": "site"}
    executor = Executor(
        compile_file(PROGRAMS / "online_v1.st"),
        clock=VirtualClock(),
        config=ExecutorConfig(parameters=parameters),
    )
    executor.run(max_scans=2)
    assert executor.read("main.x") == 1002 and executor.read("main.label") == "site"
    result = executor.online_change(compile_file(PROGRAMS / "online_v2.st"))
    assert result.accepted, result.reason
    executor.run(max_scans=1)
    # x changed type (INT -> DINT) and would restart from its new initial value 100: the parameter wins
    assert executor.read("main.x") == 1001
    assert executor.read("main.label") == "site"


def test_online_change_with_other_tasks_is_refused_and_the_old_program_keeps_running() -> None:
    executor = Executor(compile_file(PROGRAMS / "online_v1.st"), clock=VirtualClock())
    executor.run(max_scans=3)
    result = executor.online_change(compile_file(PROGRAMS / "two_tasks.st"))
    assert not result.accepted
    assert "restart needed" in result.reason
    executor.run(max_scans=2)
    assert executor.read("main.n") == 5


def test_same_program_and_inputs_give_bit_identical_outputs() -> None:
    script = [(k * 7 * MS, {"plant.hz": 50.0 - 0.013 * (k % 11)}) for k in range(40)]

    def run_once() -> tuple[str, list[tuple[int, dict[str, object]]]]:
        executor, driver, _ = plant_executor(script)
        executor.run(max_scans=60)
        return json.dumps(executor.snapshot(), sort_keys=True), driver.written

    first = run_once()
    second = run_once()
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert len({v["plant.p_set"] for _, v in first[1]}) > 5  # the inputs really varied


def test_a_program_that_reads_the_quality_handles_a_bad_input_itself() -> None:
    program = compile_file(PROGRAMS / "quality_aware.st")
    driver = ScriptedDriver(
        "meter",
        ["aware.hz"],
        ["aware.p_set"],
        [(0, {"aware.hz": 49.0})],
        quality_script=[(20 * MS, {"aware.hz": Quality.COMM_LOST})],
    )
    executor = Executor(
        program, clock=VirtualClock(), drivers=[driver], config=ExecutorConfig(required_inputs={"aware.hz"})
    )
    executor.run(max_scans=5)
    outputs = [v["aware.p_set"] for _, v in driver.written]
    assert outputs == [1000.0, 1000.0, 123.0, 123.0, 123.0]
    assert executor.read("aware.q") == "COMM_LOST"
    assert executor.read("aware.age") == "T#40ms"  # the last good sample came at 0 ms; now is 40 ms


def test_the_image_keeps_the_age_of_each_ev_soc() -> None:
    program = compile_file(PROGRAMS / "ev_ages.st")
    driver = ScriptedDriver(
        "chargers",
        ["fleet.evs[1].soc_pct", "fleet.evs[2].soc_pct"],
        [],
        [
            (0, {"fleet.evs[1].soc_pct": 50.0, "fleet.evs[2].soc_pct": 60.0}),
            (30 * MS, {"fleet.evs[2].soc_pct": 61.0}),
        ],
    )
    executor = Executor(program, clock=VirtualClock(), drivers=[driver])
    executor.run(max_scans=6)
    assert executor.read("fleet.evs[1].soc_age") == "T#50ms"  # last sample at 0 ms, last scan at 50 ms
    assert executor.read("fleet.evs[2].soc_age") == "T#20ms"  # refreshed at 30 ms
    assert executor.read("fleet.oldest") == "T#50ms"  # what the program saw in that scan


def test_bool_variables_declared_as_alarms_raise_and_clear_them() -> None:
    from plcrun.executor.alarms import Severity

    program = compile_file(PROGRAMS / "st_alarms.st")
    driver = ScriptedDriver(
        "meter",
        ["watcher.hz"],
        [],
        [(0, {"watcher.hz": 50.0}), (20 * MS, {"watcher.hz": 49.7}), (50 * MS, {"watcher.hz": 50.3})],
    )
    alarms = AlarmBus()
    seen: list[tuple[str, bool]] = []
    alarms.subscribe(lambda alarm: seen.append((alarm.key, alarm.active)))
    executor = Executor(program, clock=VirtualClock(), drivers=[driver], alarms=alarms)
    executor.run(max_scans=4)
    active = alarms.active()
    assert [(a.key, a.message, a.severity) for a in active] == [
        ("st:watcher.low_frequency", "frequency event: grid frequency below 49.8 Hz", Severity.CRITICAL),
        ("st:watcher.deep", "100 mHz below 49.8 Hz ([unknown] stays)", Severity.WARNING),  # the value shows
    ]
    executor.run(max_scans=3)
    assert [(a.key, a.severity) for a in alarms.active()] == [("st:watcher.high_frequency", Severity.WARNING)]
    assert seen == [
        ("st:watcher.low_frequency", True),
        ("st:watcher.deep", True),
        ("st:watcher.low_frequency", False),
        ("st:watcher.high_frequency", True),
        ("st:watcher.deep", False),
    ]


def test_a_reporting_driver_never_gets_a_value_no_device_delivered() -> None:
    import math

    program = compile_file(PROGRAMS / "plant.st")
    meter = ScriptedDriver("meter", ["plant.hz"], [], [(30 * MS, {"plant.hz": 49.9})])
    report = ScriptedDriver("report", [], ["plant.hz", "plant.p_set"])
    report.masks_undelivered = True  # type: ignore[attr-defined]
    executor = Executor(program, clock=VirtualClock(), drivers=[meter, report])
    executor.run(max_scans=5)
    seen = [values["plant.hz"] for _, values in report.written]
    assert all(math.isnan(v) for v in seen[:3])  # the program's initial value before the first sample
    assert seen[3:] == [49.9, 49.9]
    assert not math.isnan(report.written[0][1]["plant.p_set"])  # computed outputs are the program's
    assert executor.image.input_quality("plant.hz") is Quality.GOOD
    assert executor.image.input_quality("plant.p_set") is None
