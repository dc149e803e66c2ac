"""The runaway backstop (RunawayMonitor) aborts only a program body, only on the thread that runs
scans, and never delivers an abort once the body it aimed at has returned."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor import watchdog
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.executor.watchdog import RunawayMonitor, TaskState
from plcrun.state.support import ScanAborted
from runaway_thread import RUNAWAY_FOR, run_runaway_on_a_thread
from scripted_driver import ScriptedDriver

MS = 1_000_000

PROGRAMS = Path(__file__).parent / "programs"


def test_started_on_one_thread_run_on_another_the_backstop_aborts_the_scan_thread() -> None:
    run = run_runaway_on_a_thread(compile_file(RUNAWAY_FOR))
    executor, driver, runner, outcome = run.executor, run.driver, run.runner, run.outcome
    assert outcome and not isinstance(outcome[0], BaseException), outcome  # run() returned normally
    monitor = executor._monitor
    assert monitor is not None and monitor.aborts == 1
    assert monitor.aborted_thread == runner.ident != threading.get_ident()
    supervisor = executor.supervisors["DEFAULT"]
    assert supervisor.state is TaskState.FAULTED
    # positioned in the FOR loop's body, which ran on the scan thread
    assert (
        "runaway_for.st:13: runtime fault: watchdog: scan ran more than 40.0 ms" in supervisor.fault_message
    )
    assert driver.safe_states and driver.safe_states[0][1]["burn.p_set"] == -2.5
    assert all(values["burn.p_set"] != 7.0 for _, values in driver.written)  # nothing of the aborted scan


class _Target:
    """A real second thread that 'runs a body' and then goes on running plain Python code."""

    def __init__(self, monitor: RunawayMonitor) -> None:
        self.monitor = monitor
        self.entered = threading.Event()
        self.may_leave = threading.Event()
        self.left = threading.Event()
        self.finish = threading.Event()
        self.aborted_in_body: list[BaseException] = []
        self.aborted_after: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="fake-scan")

    def _run(self) -> None:
        self.monitor.set_target(threading.get_ident())
        self.monitor.enter_body("t", 0)
        self.entered.set()
        try:
            try:
                self.may_leave.wait()
                self.monitor.leave_body()
            except ScanAborted as error:
                self.aborted_in_body.append(error)
                self.monitor.leave_body()  # as the engine does
            self.left.set()
            self.finish.wait()
            total = 0
            for i in range(200_000):  # back-edges: a pending async exception would be raised here
                total += i
        except ScanAborted as error:
            self.aborted_after.append(error)
        finally:
            self.left.set()


def test_an_abort_decided_after_the_body_returned_is_never_delivered() -> None:
    holder: list[_Target] = []

    def now_ns() -> int:
        # the monitor has read the running body; the body returns before it decides
        target = holder[0]
        target.may_leave.set()
        assert target.left.wait(30)
        return 10**12

    monitor = RunawayMonitor({"t": 10}, now_ns)
    target = _Target(monitor)
    holder.append(target)
    target.thread.start()
    assert target.entered.wait(30)
    assert monitor.poll() is False
    target.finish.set()
    target.thread.join(30)
    assert monitor.aborts == 0
    assert target.aborted_in_body == [] and target.aborted_after == []


def test_an_abort_injected_while_the_body_runs_never_reaches_the_code_after_it() -> None:
    monitor = RunawayMonitor({"t": 10}, lambda: 10**12)
    target = _Target(monitor)
    target.thread.start()
    assert target.entered.wait(30)
    assert monitor.poll() is True  # injected while the target waits (in C) inside its body
    assert monitor.poll() is False  # one abort per body
    target.may_leave.set()
    assert target.left.wait(30)
    target.finish.set()
    target.thread.join(30)
    assert monitor.aborts == 1
    # delivered in the body (or leave_body) or dropped by leave_body; never after it
    assert len(target.aborted_in_body) <= 1
    assert target.aborted_after == []


def test_an_abort_pending_as_the_body_leaves_comes_out_of_leave_body_never_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The abort is injected while the scan thread waits for the monitor's lock inside
    ``leave_body`` (the body has returned, the lock is what the injection holds): it is still
    pending when ``_drop_pending_abort`` is called, and the interpreter raises it at that function's
    entry, before its ``try``. So it comes out of ``leave_body``, where the engine's ``except`` takes it
    (the task faults as aborted), and never reaches the code after it."""
    real_inject = watchdog._set_async_exc
    target_box: list[_Target] = []

    def inject(thread_id: int, exc: object) -> int:
        target = target_box[0]
        if threading.get_ident() != target.thread.ident:  # the monitor's poll, holding the lock
            target.may_leave.set()
            code = RunawayMonitor.leave_body.__code__
            for _ in range(3000):  # until the scan thread waits for the lock in leave_body
                frame = sys._current_frames().get(thread_id)
                if frame is not None and frame.f_code is code:
                    break
                time.sleep(0.001)
            else:
                raise AssertionError("the target never waited in leave_body")
        return int(real_inject(thread_id, exc))

    monkeypatch.setattr(watchdog, "_set_async_exc", inject)
    monitor = RunawayMonitor({"t": 10}, lambda: 10**12)
    target = _Target(monitor)
    target_box.append(target)
    target.thread.start()
    assert target.entered.wait(30)
    assert monitor.poll() is True
    assert target.left.wait(30)
    target.finish.set()
    target.thread.join(30)
    assert monitor.aborts == 1
    assert len(target.aborted_in_body) == 1 and target.aborted_after == []
    tb = target.aborted_in_body[0].__traceback__
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    entry = watchdog._drop_pending_abort.__code__.co_firstlineno
    assert frames[-1] == ("_drop_pending_abort", entry), frames  # at its entry, not inside its try
    assert [name for name, _ in frames[-3:-1]] == ["_run", "leave_body"], frames


def test_an_abort_leaves_no_exception_signal_set_in_the_interpreter() -> None:
    """After an abort delivered in the body and ``leave_body``, the interpreter's "asynchronous
    exception pending" signal is clear: a traced function call returns (e617853, 6023540; with the
    signal stuck it never does). In a child process: the signal is the whole interpreter's, and a
    stuck one hung the suite."""
    child = Path(__file__).with_name("abort_signal_child.py")
    try:
        result = subprocess.run(
            [sys.executable, str(child)], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:  # only a hang guard: the child takes about 0.1 s
        raise AssertionError("the traced call after the abort never returned: signal left set") from None
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout)
    assert outcome == {"polled": [True], "aborted": True, "aborts": 1, "calls": ["traced"]}


class _AbortOnWrite(ScriptedDriver):
    """Where a late abort could land: in the output hand-over after the body returned."""

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        super().write_outputs(now_ns, values)
        if len(self.written) == 2:
            raise ScanAborted


def test_an_abort_arriving_after_the_body_faults_the_task_and_scans_go_on() -> None:
    driver = _AbortOnWrite("out", [], ["burn.p_set"])
    executor = Executor(compile_file(PROGRAMS / "runaway_for.st"), clock=VirtualClock(), drivers=[driver])
    assert executor.run(max_scans=5) is not None  # returned: the scan thread lives on
    supervisor = executor.supervisors["DEFAULT"]
    assert supervisor.state is TaskState.FAULTED
    assert "watchdog: scan ran more than 200.0 ms and was aborted" in supervisor.fault_message
    assert len(driver.written) == 2 and len(driver.safe_states) >= 3  # safe every period after it


def test_the_monitor_sleeps_until_a_body_would_be_overdue_and_aborts_just_after_two_limits() -> None:
    # Virtual time: 10 ms scans whose bodies take 0.1 ms (limit 100 ms), then at 1.2345 s a body
    # that never returns. The monitor's thread would sleep next_look_ns between looks.
    limit = 100 * MS
    now = [0]
    monitor = RunawayMonitor({"t": limit}, lambda: now[0])
    monitor.set_target(2**62)  # no such thread: the injection goes nowhere, the decision is counted
    runaway_at = 1_234_500_000
    looks: list[int] = []
    current: int | None = None
    while not monitor.aborts:
        now[0] += monitor.next_look_ns(now[0])
        t = now[0]
        start = runaway_at if t >= runaway_at else (t - t % (10 * MS) if t % (10 * MS) < 100_000 else None)
        if start != current:
            if start is None:
                monitor.leave_body()
            else:
                monitor.enter_body("t", start)
            current = start
        looks.append(t)
        monitor.poll()
    assert runaway_at + 2 * limit < looks[-1] <= runaway_at + 2 * limit + MS  # just after two limits
    assert len(looks) <= 2 * 1.5 / 0.2  # about 5 looks a second (20 when it polled every half limit)
    assert all(b - a >= MS for a, b in itertools.pairwise(looks))


def test_next_look_of_the_monitor() -> None:
    monitor = RunawayMonitor({"fast": 100 * MS, "slow": 1000 * MS}, lambda: 0)
    assert monitor.next_look_ns(0) == 200 * MS  # no body: twice the shortest limit
    monitor.enter_body("fast", 50 * MS)
    assert monitor.next_look_ns(100 * MS) == 150 * MS + 1  # until the body is overdue
    assert monitor.next_look_ns(250 * MS) == MS  # overdue (poll aborts it): never a busy loop
    monitor.enter_body("slow", 0)
    assert monitor.next_look_ns(10 * MS) == 200 * MS  # long limits: looked at again meanwhile
