"""The grid signal: segments, seeded noise, synthetic events and recorded traces."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.sim import GridModel, Scenario
from plcrun.io.sim.events import EVENTS
from plcrun.io.sim.traces import resample

ScenarioFactory = Callable[..., Scenario]


def grid_text(segments: str, duration: float = 20.0, seed: int = 1) -> str:
    return f"""
[scenario]
duration_s = {duration}
seed = {seed}
[grid]
nominal_hz = 50.0
nominal_voltage_v = 230.0
{segments}
"""


def test_const_steps_and_ramp_segments(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text(
        grid_text(
            """
[[grid.segments]]
kind = "const"
hz = 50.0
duration_s = 2.0
[[grid.segments]]
kind = "steps"
duration_s = 3.0
points = [[1.0, 49.9], [2.0, 49.8]]
[[grid.segments]]
kind = "ramp"
to_hz = 50.2
duration_s = 4.0
voltage_v = 200.0
[[grid.segments]]
kind = "const"
"""
        )
    )
    grid = GridModel(scenario)
    times = np.array([0.0, 1.99, 2.0, 2.99, 3.0, 4.0, 4.99, 5.0, 7.0, 9.0, 15.0])
    hz, volts = grid.sample(times)
    # steps start from the previous value (50.0); the ramp starts where the steps ended (49.8)
    expected = [50.0, 50.0, 50.0, 50.0, 49.9, 49.8, 49.8, 49.8, 50.0, 50.2, 50.2]
    assert hz == pytest.approx(expected, abs=1e-9)
    assert volts[0] == 230.0 and volts[8] == 200.0 and volts[10] == 200.0


def test_noise_is_deterministic_for_a_seed_and_independent_of_chunking(
    scenario_from_text: ScenarioFactory,
) -> None:
    segment = '[[grid.segments]]\nkind = "noise"\nhz = 50.0\nsigma_hz = 0.005\n'
    first = GridModel(scenario_from_text(grid_text(segment, seed=7), "a"))
    again = GridModel(scenario_from_text(grid_text(segment, seed=7), "b"))
    other = GridModel(scenario_from_text(grid_text(segment, seed=8), "c"))
    times = np.arange(2000) * 0.01
    hz, _ = first.sample(times)
    assert np.array_equal(hz, again.sample(times)[0])
    assert not np.array_equal(hz, other.sample(times)[0])
    # asking in pieces or one time at a time gives the same values
    pieces = np.concatenate([first.sample(times[:700])[0], first.sample(times[700:])[0]])
    assert np.array_equal(hz, pieces)
    assert first.at(12.34) == pytest.approx((hz[1234], 230.0))
    assert np.std(hz - 50.0) == pytest.approx(0.005, rel=0.1)
    assert abs(np.mean(hz - 50.0)) < 0.0005


def test_event_profiles_carry_the_published_numbers() -> None:
    gb = EVENTS["gb_2019_08_09"]
    t = np.arange(0, gb.duration_s, 0.01)
    f = gb.sample(t)
    first_dip = f[t < 40].min()
    assert first_dip == pytest.approx(49.1, abs=0.02)
    assert t[np.argmin(f[t < 40])] < 15.0  # within seconds
    assert f[(t > 30) & (t < 56)].mean() == pytest.approx(49.2, abs=0.03)  # recovery toward 49.2
    assert f.min() == pytest.approx(48.8, abs=1e-9)
    assert t[np.argmin(f)] == pytest.approx(76.0, abs=0.5)
    assert gb.sample(np.array([gb.duration_s]))[0] == 50.0 and gb.duration_s > 180  # minutes

    nw = EVENTS["ce_2021_01_08_nw"].sample(np.arange(0, 60.01, 0.01))
    assert nw.min() == pytest.approx(49.74, abs=1e-9)
    assert np.argmin(nw) * 0.01 == pytest.approx(15.0, abs=1.0)
    assert nw[-1] == pytest.approx(49.84, abs=0.01)
    se = EVENTS["ce_2021_01_08_se"].sample(np.arange(0, 60.01, 0.01))
    assert se.max() == pytest.approx(50.6, abs=1e-9)
    assert 50.2 <= se[-1] <= 50.3
    dip = EVENTS["ce_2019_01_10"].sample(np.arange(0, 12, 0.01))
    assert dip.min() == pytest.approx(49.808, abs=1e-9)
    below = np.flatnonzero(dip < 49.99) * 0.01
    assert below[-1] - below[0] == pytest.approx(9.0, abs=1.0)


def test_event_segment_in_a_scenario_starts_at_the_segment(scenario_from_text: ScenarioFactory) -> None:
    scenario = scenario_from_text(
        grid_text(
            '[[grid.segments]]\nkind = "const"\nduration_s = 10.0\n'
            '[[grid.segments]]\nkind = "event"\nname = "ce_2019_01_10"\n'
            '[[grid.segments]]\nkind = "const"\n',
            duration=30.0,
        )
    )
    assert scenario.segments[2].start_s == pytest.approx(20.0)  # default duration: the profile's
    grid = GridModel(scenario)
    assert grid.at(9.99)[0] == 50.0
    assert grid.at(13.5)[0] == pytest.approx(49.808)
    assert grid.at(25.0)[0] == pytest.approx(50.0)


def test_resampling_interpolates_and_nan_rows_spoil_their_intervals() -> None:
    row_t = np.array([0.0, 2.0, 4.0, 6.0, 8.0])
    row_v = np.array([50.0, 49.0, math.nan, 49.5, 49.7])
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 20.0])
    out = resample(row_t, row_v, t)
    assert out[:3] == pytest.approx([50.0, 49.5, 49.0])
    assert np.isnan(out[3:6]).all()
    assert out[6:] == pytest.approx([49.5, 49.6, 49.7, 49.7])


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_generic_csv_trace_with_own_column_names(tmp_path: Path, scenario_from_text: ScenarioFactory) -> None:
    write_csv(
        tmp_path / "rec.csv",
        "t,f,u\n0,50.00,231\n1,49.90,,\n2,,229\n3,49.70,228\n4,49.80,227\n",
    )
    scenario = scenario_from_text(
        grid_text(
            '[[grid.segments]]\nkind = "trace"\nfile = "rec.csv"\nformat = "csv"\n'
            'time_column = "t"\nfrequency_column = "f"\nvoltage_column = "u"\n',
            duration=6.0,
        )
    )
    hz, volts = GridModel(scenario).sample(np.array([0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 3.5, 5.0]))
    assert hz[:3] == pytest.approx([50.0, 49.95, 49.9])
    assert np.isnan(hz[3]) and np.isnan(hz[4])  # the empty cell at 2 s
    assert hz[5:] == pytest.approx([49.7, 49.75, 49.8])
    assert volts[0] == 231.0 and np.isnan(volts[1])  # the empty voltage cell at 1 s


def test_toledo_format_with_a_start_time_and_voltage_scale(
    tmp_path: Path, scenario_from_text: ScenarioFactory
) -> None:
    header = "AnalyzerL1PhaseVoltage,AnalyzerL2PhaseVoltage,AnalyzerL3PhaseVoltage,AnalyzerL1Frequency,time\n"
    rows = [
        "27000,27000,27000,50.01,28-Apr-2025 12:00:00",
        "27100,27000,27000,50.00,28-Apr-2025 12:00:02",
        "NaN,NaN,NaN,NaN,28-Apr-2025 12:00:04",
        "27000,27000,27000,49.90,28-Apr-2025 12:00:06",
        "500,500,500,47.40,28-Apr-2025 12:00:08",
    ]
    write_csv(tmp_path / "toledo.csv", header + "\n".join(rows) + "\n")
    scenario = scenario_from_text(
        grid_text(
            '[[grid.segments]]\nkind = "trace"\nfile = "toledo.csv"\nformat = "toledo"\n'
            'start = "28-Apr-2025 12:00:02"\nvoltage_scale = 0.01\n',
            duration=6.0,
        )
    )
    hz, volts = GridModel(scenario).sample(np.array([0.0, 1.0, 4.0, 5.0, 6.0]))
    assert hz[0] == pytest.approx(50.0) and np.isnan(hz[1])
    assert hz[2:] == pytest.approx([49.9, 48.65, 47.4])
    assert volts[0] == pytest.approx(271.0) and volts[4] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("csv_text", "where", "problem"),
    [
        ("t,f\n0,50\n1,abc\n", "row 3, column f", "not a number"),
        ("t,f\n0,50\n0,49.9\n", "row 3", "time does not increase"),
        ("t,x\n0,50\n", "header", "no column 'f'"),
        ("t,f\n0,50\nnoon,49\n", "row 3, column t", "does not match format"),
        ("t,f\n", "", "no data rows"),
    ],
)
def test_bad_trace_files_name_file_row_and_problem(
    tmp_path: Path, scenario_from_text: ScenarioFactory, csv_text: str, where: str, problem: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", csv_text)
    text = grid_text(
        '[[grid.segments]]\nkind = "trace"\nfile = "bad.csv"\ntime_column = "t"\nfrequency_column = "f"\n'
    )
    with pytest.raises(ConfigError) as error:
        scenario_from_text(text)
    assert error.value.file == str(path)
    assert error.value.key == where
    assert problem in error.value.problem
