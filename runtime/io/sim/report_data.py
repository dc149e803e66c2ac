"""What a simulation report shows beyond pass/fail: setpoint chatter, the worst site-limit excursion,
the service's energy and availability, every car's margin to its SoC floor, and the time series as
CSV (used by ``evaluate`` and by ``plcrun sim``).

Definitions:
- reversal: the total setpoint moves back by more than ``tolerance_w`` from the last extreme in the
  other direction (swings smaller than the tolerance are not counted); total variation: the sum of
  |change| of the total setpoint from row to row;
- site-limit excursion: how far the site power went beyond the import or export limit (W; negative:
  it stayed inside by that much at its closest);
- service energy: the delivered fleet power below the service's baseline ("raise": discharging or
  charging less, helping an under-frequency) and above it ("lower"), in Wh;
- availability: the share of rows in which the program was ready to respond (status ST_NORMAL or
  ST_RESPONDING) when its status was recorded, else the share with a good, finite meter reading;
- floor margin of a car: its lowest SoC while connected minus its V2X floor (percentage points).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...executor.driver_api import Quality
from .history import SCALARS, SimHistory
from .scenario import Scenario

READY_STATUSES = ("ST_NORMAL", "ST_RESPONDING")


def reversals(values: Sequence[float] | np.ndarray, tolerance_w: float) -> int:
    """Direction changes of ``values`` by more than ``tolerance_w`` from the last extreme."""
    count, direction = 0, 0
    low = high = extreme = math.nan
    for v in np.asarray(values, dtype=np.float64).tolist():
        if not math.isfinite(v):
            continue
        if direction == 0:
            low = v if math.isnan(low) else min(low, v)
            high = v if math.isnan(high) else max(high, v)
            if high - low > tolerance_w:
                direction, extreme = (1, v) if v == high else (-1, v)
        elif direction > 0:
            if v > extreme:
                extreme = v
            elif extreme - v > tolerance_w:
                count, direction, extreme = count + 1, -1, v
        elif v < extreme:
            extreme = v
        elif v - extreme > tolerance_w:
            count, direction, extreme = count + 1, 1, v
    return count


def total_variation(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.abs(np.diff(finite)).sum()) if len(finite) > 1 else 0.0


def worst_site_excursion(history: SimHistory, scenario: Scenario) -> float | None:
    """The largest amount (W) by which the site power went beyond a limit; None without limits."""
    site, power = scenario.site, history.site_power_w
    worst: float | None = None
    if not len(power):
        return None
    if site.import_limit_w is not None:
        worst = float(np.nanmax(power - site.import_limit_w))
    if site.export_limit_w is not None:
        export = float(np.nanmax(-power - site.export_limit_w))
        worst = export if worst is None else max(worst, export)
    return worst


def service_baseline_w(scenario: Scenario) -> float:
    params = scenario.service.params
    value = params.get("v2x_baseline_w" if scenario.service.name == "ocpp" else "baseline_w", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def service_energy(history: SimHistory, scenario: Scenario) -> tuple[float, float]:
    """(raise Wh, lower Wh) of the delivered fleet power around the service's baseline."""
    delta = history.fleet_power_w - service_baseline_w(scenario)
    hours = history.scan_period_s / 3600.0
    raise_wh = float(np.nansum(np.maximum(-delta, 0.0))) * hours
    lower_wh = float(np.nansum(np.maximum(delta, 0.0))) * hours
    return raise_wh, lower_wh


def availability_pct(history: SimHistory, status: Sequence[str] | None) -> float | None:
    if status is not None and len(status):
        ready = sum(1 for s in status if s in READY_STATUSES)
        return 100.0 * ready / len(status)
    if not len(history):
        return None
    good = (history.meter_quality == int(Quality.GOOD)) & np.isfinite(history.meter_hz)
    return 100.0 * float(good.mean())


def floor_margins(history: SimHistory) -> np.ndarray:
    """Per car: lowest SoC while connected minus its floor (NaN for a car never connected)."""
    margins: np.ndarray = history.lowest_soc_pct - history.min_soc_pct
    return margins


def car_rows(history: SimHistory) -> list[dict[str, float | int | None]]:
    """One row per car for the report's table and cars.csv."""
    margins = floor_margins(history)
    rows: list[dict[str, float | int | None]] = []
    for i in range(len(history.min_soc_pct)):
        rows.append(
            {
                "car": i + 1,
                "floor_pct": _num(history.min_soc_pct[i]),
                "lowest_soc_pct": _num(history.lowest_soc_pct[i]),
                "floor_margin_pct": _num(margins[i]),
                "final_soc_pct": _num(history.final_soc_pct[i]),
                "charged_wh": _num(history.energy_charged_wh[i]),
                "discharged_wh": _num(history.energy_discharged_wh[i]),
                "below_floor_wh": _num(history.below_floor_discharge_wh[i]),
            }
        )
    return rows


def _num(value: float) -> float | None:
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None


def write_series_csv(history: SimHistory, path: Path, status: Sequence[str] | None = None) -> Path:
    """Every history row (one per scan period) with the columns of ``SimHistory`` (and the program's
    status when recorded); NaN is an empty cell."""
    columns = [history.series(name) for name in SCALARS]
    with_status = status is not None and len(status) == len(history)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*SCALARS, *(["status"] if with_status else [])])
        for row in range(len(history)):
            cells = [_cell(column[row]) for column in columns]
            if with_status and status is not None:
                cells.append(status[row])
            writer.writerow(cells)
    return path


def write_cars_csv(history: SimHistory, path: Path) -> Path:
    rows = car_rows(history)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        names = list(rows[0]) if rows else ["car"]
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row[name] is None else row[name] for name in names])
    return path


def _cell(value: float) -> str:
    number = float(value)
    return "" if not math.isfinite(number) else f"{number:.10g}"
