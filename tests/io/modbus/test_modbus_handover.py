"""The hand-over between device thread and scan thread, in virtual time: every answer is reported with
the time of the answer (a steady value is fresh), bad values keep the last good value and its age,
freshness is judged on the executor's clock, and the stuck-value detector is a per-point option."""

from __future__ import annotations

from dataclasses import replace

from plcrun.executor.driver_api import Quality, Sample
from plcrun.io.modbus.handover import Handover, stuck_problem
from plcrun.io.modbus.model import PointSpec

MS = 1_000_000
HZ = PointSpec("hz", "k", "in", "holding", "float32", 2, address=0, path="main.grid_hz", st_type="LREAL")
SOC = PointSpec("soc", "k", "in", "holding", "uint16", 1, address=2, path="main.soc", st_type="INT")


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0

    def now_ns(self) -> int:
        return self.now


def handover(clock: VirtualClock) -> Handover:
    board = Handover([HZ, SOC], {"hz": 50 * MS, "soc": 1000 * MS})
    board.clock = clock.now_ns
    return board


def test_every_answer_is_reported_with_the_time_of_the_answer() -> None:
    clock = VirtualClock()
    board = handover(clock)
    clock.now = 5 * MS
    board.refreshed(HZ)
    assert board.publish(HZ, Quality.GOOD, 50.0)
    assert board.take(clock.now) == {"main.grid_hz": Sample(50.0, Quality.GOOD, 5 * MS)}
    clock.now = 15 * MS
    board.refreshed(HZ)
    assert not board.publish(HZ, Quality.GOOD, 50.0)  # same quality: no alarm to change ...
    # ... but the device answered: the repeat is fresh, stamped with this poll
    assert board.take(clock.now) == {"main.grid_hz": Sample(50.0, Quality.GOOD, 15 * MS)}
    assert board.take(clock.now) == {}  # nothing new until the next answer
    board.publish(HZ, Quality.GOOD, 49.9)
    board.publish(HZ, Quality.GOOD, 49.8)  # two changes between scans: the scan sees the newest
    assert board.take(clock.now) == {"main.grid_hz": Sample(49.8, Quality.GOOD, 15 * MS)}


def test_bad_and_lost_samples_keep_the_last_good_value_and_its_age() -> None:
    clock = VirtualClock()
    board = handover(clock)
    board.publish(SOC, Quality.COMM_LOST, problem="cannot connect")
    assert board.take(0) == {"main.soc": Sample(0, Quality.COMM_LOST, 0)}  # typed default, never None
    clock.now = 10 * MS
    board.publish(SOC, Quality.GOOD, 55)
    clock.now = 20 * MS
    board.publish(SOC, Quality.BAD, problem="'not implemented' value 0xFFFF")
    assert board.take(clock.now) == {"main.soc": Sample(55, Quality.BAD, 10 * MS)}
    assert board.problems() == {"soc": "'not implemented' value 0xFFFF"}


def test_values_not_refreshed_in_time_turn_stale_on_the_executor_clock() -> None:
    clock = VirtualClock()
    board = handover(clock)
    board.refreshed(HZ)
    board.publish(HZ, Quality.GOOD, 50.0)
    board.take(0)
    assert board.take(50 * MS) == {}  # exactly at the limit: still fresh
    stale = board.take(50 * MS + 1)
    assert stale == {"main.grid_hz": Sample(50.0, Quality.STALE, 0)}
    assert board.take(80 * MS) == {}  # reported once
    clock.now = 90 * MS
    board.refreshed(HZ)
    board.publish(HZ, Quality.GOOD, 50.0)  # the same value, fresh again
    assert board.take(clock.now) == {"main.grid_hz": Sample(50.0, Quality.GOOD, 90 * MS)}


def test_outputs_report_what_changed_and_safe_values_are_forced() -> None:
    board = handover(VirtualClock())
    assert board.set_outputs({"p": 1000.0}, force=False)
    assert board.take_outputs() == ({"p": 1000.0}, {"p"})
    assert not board.set_outputs({"p": 1000.0}, force=False)
    assert board.take_outputs() == ({"p": 1000.0}, set())
    assert board.set_outputs({"p": 1000.0}, force=True)
    assert board.take_outputs()[1] == {"p"}


def test_a_steady_value_polled_for_minutes_never_turns_stale() -> None:
    clock = VirtualClock()
    board = handover(clock)
    for poll in range(30_000):  # 5 minutes of 10 ms polls answering 50.0 Hz every time
        clock.now = poll * 10 * MS
        board.refreshed(HZ)
        board.publish(HZ, Quality.GOOD, 50.0)
        sample = board.take(clock.now)["main.grid_hz"]
        assert sample.quality is Quality.GOOD and sample.timestamp_ns == clock.now


def test_the_stuck_value_detector_is_off_by_default_and_per_point_when_on() -> None:
    clock = VirtualClock()
    frozen = replace(HZ, stuck_ms=200)
    board = Handover([frozen, SOC], {"hz": 50 * MS, "soc": 1000 * MS})
    board.clock = clock.now_ns
    seen = []
    for poll in range(40):
        clock.now = poll * 10 * MS
        board.refreshed(frozen)
        board.publish(frozen, Quality.GOOD, 49.95)
        seen.append(board.take(clock.now).get("main.grid_hz"))
    assert all(s is not None and s.quality is Quality.GOOD for s in seen[:21])  # unchanged up to 200 ms
    stuck = [s for s in seen[21:] if s is not None]
    assert stuck == [Sample(49.95, Quality.STALE, 200 * MS)]  # reported once, with the last good time
    assert board.problems() == {"hz": stuck_problem(200)}
    clock.now = 500 * MS
    board.refreshed(frozen)
    board.publish(frozen, Quality.GOOD, 49.96)  # the value moves: GOOD again at once
    assert board.take(clock.now) == {"main.grid_hz": Sample(49.96, Quality.GOOD, 500 * MS)}
    assert board.problems() == {}
