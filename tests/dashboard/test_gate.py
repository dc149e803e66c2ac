"""SlackGate: dashboard work waits for the slack after a scan and stays clear of the next release.
Driven in virtual time (the gate is switched on by hand; in real time it is on by default)."""

from __future__ import annotations

import threading

import pytest
from dashboard_site import site_executor, wait_for
from plcrun.executor import slack_gate
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.executor.slack_gate import MARGIN_NS, SlackGate

MS = 1_000_000


def _gate() -> tuple[SlackGate, VirtualClock, Executor]:
    executor = site_executor()
    gate = SlackGate(executor)
    assert gate.enabled is False  # virtual time: the gate never holds anything back
    gate.enabled = True
    clock = executor.clock
    assert isinstance(clock, VirtualClock)
    return gate, clock, executor


def test_open_before_the_first_scan_and_right_after_a_scan() -> None:
    gate, _, executor = _gate()
    gate.enter()  # nothing scanned yet: open
    gate.leave()
    executor.run(max_scans=1)
    gate.enter()  # just after a scan: almost a whole period of slack
    gate.leave()
    assert gate.waits == 0


def test_work_near_the_next_release_waits_for_the_next_scan() -> None:
    gate, clock, executor = _gate()
    executor.run(max_scans=1)
    release = executor.scheduler.tasks[0].next_release_ns
    clock.advance(release - MARGIN_NS - clock.now_ns() - MS // 2)  # half a ms of quiet left
    entered = threading.Event()

    def work() -> None:
        gate.enter()
        entered.set()
        gate.leave()

    worker = threading.Thread(target=work)
    worker.start()
    wait_for(lambda: gate.waits == 1, what="the worker to wait")
    assert not entered.is_set()
    executor.run(max_scans=1)
    worker.join(timeout=5)
    assert entered.is_set()


def test_one_thread_works_at_a_time() -> None:
    gate, _, _ = _gate()
    gate.enter()
    inside = threading.Event()

    def second() -> None:
        gate.enter()
        inside.set()
        gate.leave()

    worker = threading.Thread(target=second)
    worker.start()
    assert not inside.wait(0.2)
    gate.leave()
    worker.join(timeout=5)
    assert inside.is_set()


def test_open_when_the_executor_has_not_scanned_for_a_while() -> None:
    gate, clock, executor = _gate()
    executor.run(max_scans=1)
    clock.advance(60 * MS)  # stopped: no scan, no idle hook for 60 ms
    gate.enter()
    gate.leave()
    assert gate.waits == 0


def test_a_waiting_thread_is_woken_by_the_next_scan_not_by_its_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The scan thread notifies only when a thread waits (it skips the lock otherwise): with the time
    # limit out of reach, only that notification lets the worker in.
    monkeypatch.setattr(slack_gate, "MAX_WAIT_S", 3600.0)
    gate, clock, executor = _gate()
    executor.run(max_scans=1)
    release = executor.scheduler.tasks[0].next_release_ns
    clock.advance(release - MARGIN_NS - clock.now_ns() - MS // 2)
    entered = threading.Event()

    def work() -> None:
        gate.enter()
        entered.set()
        gate.leave()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    wait_for(lambda: gate.waits == 1 and gate._waiting == 1, what="the worker to wait")
    executor.run(max_scans=1)
    assert entered.wait(10)
    worker.join(timeout=5)
    assert gate._waiting == 0
