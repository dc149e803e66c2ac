"""A native build under ``plcrun run --native``: a FOR loop too long for any scan, compiled to C, is
aborted by the real-time runaway backstop as the interpreted loop is (native_source's ``_backedge``
enters the interpreter every few thousand passes, where CPython delivers the abort), the task faults
with the ST file and line and the outputs go to their safe values; an online change (the path SIGHUP
and --watch take) builds the new program natively and keeps the variables, and a reload of an
unchanged file keeps the running native state. Real Cython and gcc builds (-O0)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("Cython")

from plcrun.compiler.api import compile_file
from plcrun.compiler.native import enable_native, prebuild
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.executor.runner import RealtimeSession
from plcrun.executor.watchdog import TaskState
from plcrun.site import reload_program, run_cycles

from tests.executor.runaway_thread import RUNAWAY_FOR, run_runaway_on_a_thread

PROGRAMS = Path(__file__).parent.parent / "executor" / "programs"
NATIVE = Path(__file__).parent / "native"


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's build cache, -O0; the programs the tests build first, wherever their file is
    (the build does not depend on the path), are put in it at once (``prebuild``: one Cython
    process, gcc on every CPU). online_v2 and online_struct_v2 are built on the reload path, which
    is what their tests are about."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLCRUN_NATIVE_CACHE", str(tmp_path_factory.getbasetemp() / "native-cache"))
        patch.setenv("PLCRUN_NATIVE_OPTIMISE", "-O0")
        first = [
            RUNAWAY_FOR,
            PROGRAMS / "online_v1.st",
            NATIVE / "online_struct_v1.st",
            NATIVE / "index_fault.st",
        ]
        prebuild([compile_file(path) for path in first])
        yield


def _module(executor: Executor) -> str:
    return type(executor.state.instances["main"]).__module__


def test_the_backstop_aborts_a_native_for_loop_and_the_task_faults_with_the_st_line() -> None:
    program = compile_file(RUNAWAY_FOR)
    assert enable_native(program, optimise="-O0") is None
    run = run_runaway_on_a_thread(program)
    executor, driver, outcome = run.executor, run.driver, run.outcome
    assert type(executor.state.instances["burn"]).__module__.startswith("plcrun_native_")
    assert outcome and not isinstance(outcome[0], BaseException), outcome
    monitor = executor._monitor
    assert monitor is not None and monitor.aborts == 1
    supervisor = executor.supervisors["DEFAULT"]
    assert supervisor.state is TaskState.FAULTED
    assert (
        "runaway_for.st:13: runtime fault: watchdog: scan ran more than 40.0 ms" in supervisor.fault_message
    )
    assert driver.safe_states and driver.safe_states[0][1]["burn.p_set"] == -2.5
    assert all(values["burn.p_set"] != 7.0 for _, values in driver.written)


def test_an_online_change_builds_the_new_program_natively_and_keeps_the_variables(tmp_path: Path) -> None:
    source = tmp_path / "main.st"
    source.write_text((PROGRAMS / "online_v1.st").read_text())
    executor = Executor(reload_program(source, native=True), clock=VirtualClock())
    first = _module(executor)
    assert first.startswith("plcrun_native_")
    executor.run(max_scans=5)
    session = RealtimeSession(executor, reload=lambda: reload_program(source, native=True))

    source.write_text((PROGRAMS / "online_v2.st").read_text())
    session.reload_program()  # on this thread, as the reload thread would
    executor.run(max_scans=1)
    second = _module(executor)
    assert second.startswith("plcrun_native_") and second != first
    assert executor.read("main.n") == 15  # kept (5) and the new code adds 10
    assert executor.read("main.x") == 101  # INT -> DINT: the new initial value 100, +1
    assert executor.read("main.added") == 42 and executor.read("main.label") == "v1"
    assert executor.read("main.hist") == [6, 0, 0]
    assert executor.read("main.delay.ET") == "T#50ms"

    session.reload_program()  # the file unchanged: one native module, held by the running state
    executor.run(max_scans=1)
    assert _module(executor) == second  # still native (a second state would have run interpreted)
    assert executor.read("main.n") == 25 and executor.read("main.hist") == [7, 0, 0]


def _run(program: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "plcrun.cli", "run", str(program), "--native", "--no-dashboard", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **env}
    )


def test_plcrun_run_native_loads_the_build_or_says_why_not_and_runs_either_way(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    done = _run(PROGRAMS / "online_v1.st", "--duration", "1", "--stats-json", str(stats))
    assert done.returncode == 0, done.stderr
    assert re.search(r"plcrun: native build plcrun_native_\w+ loaded", done.stderr), done.stderr
    assert json.loads(stats.read_text())["stats"]["tasks"]["DEFAULT"]["scans"] > 10
    cycles = _run(PROGRAMS / "online_v1.st", "--cycles", "3", "--json")  # virtual time: the same build
    assert cycles.returncode == 0 and json.loads(cycles.stdout)["main"]["n"] == 3, cycles.stderr
    assert re.search(r"plcrun: native build plcrun_native_\w+ loaded", cycles.stderr), cycles.stderr

    stats.unlink()
    no_compiler = _run(
        PROGRAMS / "online_v2.st",
        "--duration",
        "1",
        "--stats-json",
        str(stats),
        CC=str(tmp_path / "no-such-cc"),
    )
    assert no_compiler.returncode == 0, no_compiler.stderr
    assert "native build not used (" in no_compiler.stderr and "running interpreted" in no_compiler.stderr
    assert json.loads(stats.read_text())["stats"]["tasks"]["DEFAULT"]["scans"] > 10


def test_a_program_given_by_another_path_takes_the_same_build_and_its_faults_name_that_path(
    tmp_path: Path,
) -> None:
    original = Path(__file__).parent / "native" / "index_fault.st"
    copy = tmp_path / "index_fault.st"
    copy.write_text(original.read_text())
    first, second = compile_file(original), compile_file(copy)
    assert first.python_source != second.python_source  # the path is in the generated code's comments
    assert enable_native(first) is None and enable_native(second) is None
    assert second.native is first.native  # one build: the path is not part of the build's key
    faults = run_cycles(second, 5).faults
    assert faults["main_task"].startswith(f"{copy}:14: runtime fault: array index 4 is outside 0..3")


def test_a_native_online_change_copies_structures_into_the_new_modules_objects(tmp_path: Path) -> None:
    source = tmp_path / "main.st"
    source.write_text((NATIVE / "online_struct_v1.st").read_text())
    executor = Executor(reload_program(source, native=True), clock=VirtualClock())
    first = _module(executor)
    executor.run(max_scans=4)
    session = RealtimeSession(executor, reload=lambda: reload_program(source, native=True))

    source.write_text((NATIVE / "online_struct_v2.st").read_text())
    session.reload_program()
    executor.run(max_scans=1)
    assert _module(executor) not in (first, "st")
    # a structure, an array of structures and a block's structure kept, and the new code's +10
    assert executor.read("main.n") == 14
    assert executor.read("main.here") == {"x": 5.0, "hits": 14}
    assert executor.read("main.cars") == [
        {"x": 0.0, "hits": 0},
        {"x": 0.0, "hits": 14},
        {"x": -1.25, "hits": 0},
    ]
    assert executor.read("main.track.last") == {"x": 2.5, "hits": 14}
    assert executor.read("main.track.count") == 5
    assert executor.supervisors["DEFAULT"].state.value == "running"
    # the module swapped out lets go of the old state (a loaded module is never unloaded)
    assert sys.modules[first].__dict__["_rt"] is None and sys.modules[first].__dict__["_G"] is None


def test_a_change_that_keeps_the_generated_code_is_applied_and_runs_interpreted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "main.st"
    source.write_text((NATIVE / "online_struct_v1.st").read_text())
    executor = Executor(reload_program(source, native=True), clock=VirtualClock())
    executor.run(max_scans=3)
    session = RealtimeSession(executor, reload=lambda: reload_program(source, native=True))
    source.write_text((NATIVE / "online_struct_safe.st").read_text())  # only a safe value changed
    with caplog.at_level("INFO"):
        session.reload_program()
    executor.run(max_scans=1)
    assert "'-50.0'" in next(iter(executor.program.sources.values()))  # the new program runs
    assert _module(executor) == "st" and executor.read("main.n") == 4
    assert "is held by another live program state: this one runs interpreted" in caplog.text
    assert "nothing to swap" not in caplog.text
