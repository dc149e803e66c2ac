"""Window statistics in virtual time, checked against straightforward Python references: min, max,
mean, last, energy charged/discharged (sample-and-hold of signed power, split exactly at window
edges), reductions over several paths, bad samples, gaps, split windows and a stalled consumer."""

from __future__ import annotations

import math
import random

import pytest
from plcrun.io.mqtt.config import ReportVariable
from plcrun.io.mqtt.window import WindowBuffer, WindowRecorder, WindowSummariser

MS = 1_000_000
S = 1_000_000_000
POWER = ReportVariable("p", ("site.w",), ("min", "max", "mean", "last", "energy"))


class Collector:
    """Consumer side: summarises every handed-over window at once and gives the buffer back."""

    def __init__(self, variables: tuple[ReportVariable, ...], give_back: bool = True) -> None:
        self.summariser = WindowSummariser(variables)
        self.reports: list[tuple[int, int, int, dict[str, dict[str, object]]]] = []
        self.recorder: WindowRecorder | None = None
        self.give_back = give_back
        self.held: list[WindowBuffer] = []

    def __call__(self, window: WindowBuffer) -> None:
        self.reports.append((window.start_ns, window.end_ns, window.count, self.summariser.summarise(window)))
        if self.give_back and self.recorder is not None:
            self.recorder.give_back(window)
        else:
            self.held.append(window)


def make(variables: tuple[ReportVariable, ...], capacity: int = 1000, give_back: bool = True) -> Collector:
    collector = Collector(variables, give_back)
    paths = tuple(p for v in variables for p in v.paths)
    collector.recorder = WindowRecorder(paths, S, capacity, collector)
    return collector


def reference_energy(times: list[int], powers: list[float], start: int, end: int) -> tuple[float, float]:
    charged = discharged = 0.0
    for i in range(len(times) - 1):
        overlap = min(times[i + 1], end) - max(times[i], start)
        if overlap > 0:
            wh = powers[i] * overlap / 1e9 / 3600
            charged, discharged = (charged + wh, discharged) if wh > 0 else (charged, discharged - wh)
    return charged, discharged


def test_statistics_match_reference_with_jittery_scans() -> None:
    rng = random.Random(7)
    collector = make((POWER,))
    recorder = collector.recorder
    assert recorder is not None
    times, powers = [], []
    now = 0
    while now < 5 * S + 50 * MS:
        times.append(now)
        powers.append(rng.uniform(-11000.0, 11000.0))
        recorder.record(now, {"site.w": powers[-1]})
        now += rng.randint(7 * MS, 13 * MS)  # a scan period that jitters around 10 ms
    assert [r[:2] for r in collector.reports] == [(k * S, (k + 1) * S) for k in range(5)]
    total_charged = total_discharged = 0.0
    for start, end, count, values in collector.reports:
        inside = [i for i, t in enumerate(times) if start <= t < end]
        stats = values["p"]
        assert count == len(inside)
        assert stats["min"] == min(powers[i] for i in inside)
        assert stats["max"] == max(powers[i] for i in inside)
        assert math.isclose(stats["mean"], sum(powers[i] for i in inside) / len(inside), rel_tol=1e-12)  # type: ignore[arg-type]
        assert stats["last"] == powers[inside[-1]]
        charged, discharged = reference_energy(times, powers, start, end)
        energy = stats["energy"]
        assert math.isclose(energy["charged_wh"], charged, rel_tol=1e-9)  # type: ignore[index]
        assert math.isclose(energy["discharged_wh"], discharged, rel_tol=1e-9)  # type: ignore[index]
        total_charged += energy["charged_wh"]  # type: ignore[index]
        total_discharged += energy["discharged_wh"]  # type: ignore[index]
    # nothing counted twice or lost at the edges: the windows add up to the whole integral
    whole = reference_energy(times, powers, 0, 5 * S)
    assert math.isclose(total_charged, whole[0], rel_tol=1e-9)
    assert math.isclose(total_discharged, whole[1], rel_tol=1e-9)


def test_constant_power_gives_exact_energy() -> None:
    collector = make((POWER,))
    assert collector.recorder is not None
    for k in range(201):  # 7.2 kW charging for one second, then 3.6 kW discharging for one second
        collector.recorder.record(k * 10 * MS, {"site.w": 7200.0 if k < 100 else -3600.0})
    first, second = (r[3]["p"]["energy"] for r in collector.reports)
    assert first == {"charged_wh": 2.0, "discharged_wh": 0.0}
    assert second == {"charged_wh": 0.0, "discharged_wh": 1.0}


def test_reductions_over_several_paths_and_bad_samples() -> None:
    paths = tuple(f"evs[{i}].p" for i in range(1, 4))
    variables = tuple(
        ReportVariable(name, paths, ("last", "max"), name)
        for name in ("sum", "mean", "min", "max", "count_nonzero")
    )
    collector = make(variables)
    recorder = collector.recorder
    assert recorder is not None
    recorder.record(0, {"evs[1].p": 1.0, "evs[2].p": 0.0, "evs[3].p": 5.0})
    recorder.record(10 * MS, {"evs[1].p": 2.0, "evs[2].p": -4.0, "evs[3].p": float("nan")})
    recorder.record(20 * MS, {"evs[1].p": "broken", "evs[2].p": 1.0, "evs[3].p": 1.0})  # not a number
    recorder.record(30 * MS, {"evs[1].p": 1.0})  # paths missing
    recorder.record(S, {"evs[1].p": 0.0, "evs[2].p": 0.0, "evs[3].p": 0.0})
    (_, _, count, values) = collector.reports[0]
    assert count == 4 and recorder.bad_samples == 2
    # per scan: sums 6, -2 (NaN ignored), bad, bad → last is the bad row → None
    assert values["sum"] == {"last": None, "max": 6.0, "left_out": 2}  # the two bad rows
    assert values["mean"]["max"] == 2.0
    assert values["min"]["max"] == 0.0
    assert values["max"]["max"] == 5.0
    assert values["count_nonzero"] == {"last": 0.0, "max": 2.0}


def test_gap_split_and_stalled_consumer() -> None:
    collector = make((POWER,), capacity=10)
    recorder = collector.recorder
    assert recorder is not None
    for k in range(25):  # 25 scans in one window of a 10-row buffer: split into 10 + 10 + 5
        recorder.record(k * 20 * MS, {"site.w": 1000.0})
    recorder.record(4 * S + 5 * MS, {"site.w": 1000.0})  # three empty seconds: no empty reports
    recorder.record(5 * S, {"site.w": 1000.0})
    spans = [(start, end, count) for start, end, count, _ in collector.reports]
    assert spans == [(0, 200 * MS, 10), (200 * MS, 400 * MS, 10), (400 * MS, S, 5), (4 * S, 5 * S, 1)]
    energies = [r[3]["p"]["energy"]["charged_wh"] for r in collector.reports]  # type: ignore[index]
    assert math.isclose(sum(energies[:3]), 1000.0 / 3600)  # the split second still adds up to 1 s
    # after the gap the held value is not carried over the missing seconds
    assert math.isclose(energies[3], 1000.0 * 0.995 / 3600)

    stalled = make((POWER,), give_back=False)  # a consumer that never returns buffers
    assert stalled.recorder is not None
    for k in range(1000):
        stalled.recorder.record(k * 100 * MS, {"site.w": 1.0})  # 100 windows, never blocks or raises
    assert len(stalled.reports) == 3  # a pool of 4 buffers, one of them always being filled
    assert stalled.recorder.dropped_windows == 99 - 3  # 99 windows closed, the 100th is open


def test_summaries_cover_delivered_samples_and_say_how_many_were_left_out() -> None:
    """The process image hands the backhaul NaN while no device has delivered the input (the program's
    initial 0 Hz after a start): min/max/mean come from the delivered samples only."""
    hz = ReportVariable("frequency_hz", ("main.grid_hz",), ("min", "max", "mean", "last"), "Hz")
    collector = make((hz,))
    recorder = collector.recorder
    assert recorder is not None
    for k in range(5):
        recorder.record(k * 10 * MS, {"main.grid_hz": float("nan")})  # before the first meter sample
    for k in range(5, 10):
        recorder.record(k * 10 * MS, {"main.grid_hz": 49.95 + 0.01 * (k - 5)})
    recorder.record(S, {"main.grid_hz": 50.0})
    values = collector.reports[0][3]["frequency_hz"]
    assert values["min"] == 49.95 and values["max"] == pytest.approx(49.99)  # never 0.0
    assert values["left_out"] == 5
