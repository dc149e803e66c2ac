"""The report's field measures: setpoint reversals and total variation, the worst site-limit excursion,
the per-car floor margin, the service's energy, and the time series as CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.sim import evaluate, load_scenario
from plcrun.io.sim.report_data import car_rows, reversals, total_variation, write_cars_csv, write_series_csv

from tests.io.sim.simrig import fcr_controller, run_closed_loop


def test_reversals_count_moves_back_beyond_the_tolerance() -> None:
    assert reversals([0, 1, 2, 3, 4], 0.5) == 0
    assert reversals([0, 2, 0, 2, 0], 1.0) == 3
    assert reversals([0, 2, 0, 2, 0], 2.0) == 0  # exactly the tolerance is not beyond it
    assert reversals([0, 0.4, 0, 0.4, 0, 5, 4.8, 10], 1.0) == 0  # small wiggles on a rise
    assert reversals([0, math.nan, 3, 0], 1.0) == 1  # NaN rows are skipped
    assert total_variation(np.array([0.0, 2.0, 1.0, math.nan, 4.0])) == pytest.approx(6.0)


def test_a_memoryless_deadband_fails_the_chatter_criterion() -> None:
    """The Python reference FCR (no hysteresis) switches at the edge of the deadband on every noise
    crossing: the fcr_chatter scenario's reversal and total-variation criteria catch it."""
    scenario = load_scenario("fcr_chatter")
    report = evaluate(run_closed_loop(scenario, fcr_controller()).history(), scenario)
    failing = {c.name: c.value for c in report.checks if not c.passed}
    assert "setpoint_reversals[1..30s]" in failing and "setpoint_total_variation_w[1..30s]" in failing
    assert (
        isinstance(failing["setpoint_reversals[1..30s]"], int) and failing["setpoint_reversals[1..30s]"] > 500
    )


def test_site_excursion_and_floor_margin_are_measured(tmp_path: Path) -> None:
    scenario = load_scenario("transformer_limit")
    history = run_closed_loop(scenario, fcr_controller()).history()  # ignores the site limits
    report = evaluate(history, scenario)
    worst = report.metrics["site_limit_worst_excursion_w"]
    assert isinstance(worst, float) and worst > 1000.0
    assert worst == pytest.approx(
        max(history.site_power_w.max() - 100000.0, -history.site_power_w.min() - 60000.0)
    )
    rows = car_rows(history)
    assert len(rows) == 20
    for row in rows:  # 60 % at the start, floor 30 %: the margin is the lowest SoC minus the floor
        assert row["floor_pct"] == pytest.approx(30.0)
        assert row["floor_margin_pct"] == pytest.approx(row["lowest_soc_pct"] - 30.0)  # type: ignore[operator]
        assert 29.0 < row["floor_margin_pct"] < 30.0  # type: ignore[operator]
    raise_wh, lower_wh = report.metrics["service_energy_raise_wh"], report.metrics["service_energy_lower_wh"]
    assert isinstance(raise_wh, float) and isinstance(lower_wh, float) and raise_wh > 0.0 and lower_wh > 0.0
    series = write_series_csv(history, tmp_path / "series.csv", ["ST_NORMAL"] * len(history))
    with series.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(history) and table[0]["status"] == "ST_NORMAL"
    assert float(table[-1]["site_power_w"]) == pytest.approx(history.site_power_w[-1], rel=1e-9)
    cars = write_cars_csv(history, tmp_path / "cars.csv").read_text().splitlines()
    assert cars[0].startswith("car,floor_pct,lowest_soc_pct,floor_margin_pct") and len(cars) == 21


def test_new_criteria_are_checked_when_read(tmp_path: Path) -> None:
    base = (Path(__file__).parents[3] / "examples/scenarios/fcr_chatter.toml").read_text()
    bad = base.replace("max_reversals = 25, ", "").replace(", max_total_variation_w = 800000.0", "")
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    with pytest.raises(ConfigError, match="max_reversals"):
        load_scenario(str(path))
    path.write_text(base.replace("[criteria]", "[criteria]\nmax_site_excursion_w = 0.0"))
    with pytest.raises(ConfigError, match="max_site_excursion_w"):
        load_scenario(str(path))
