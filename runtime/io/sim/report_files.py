"""The report folder ``plcrun sim`` writes: ``report.json`` (checks, metrics, per-car rows and the
paths below), ``series.csv`` (every row of the run), ``cars.csv`` (per car: floor, lowest SoC, floor
margin, energies), the picture (``report.png`` with matplotlib, else ``report.svg``) and
``report.html`` (all of it on one page)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from .evaluate import SimReport
from .history import SimHistory
from .mpl_plot import available as matplotlib_available
from .mpl_plot import write_png
from .report_data import car_rows, write_cars_csv, write_series_csv
from .scenario import Scenario
from .svg_plot import write_svg

MAX_CAR_ROWS_HTML = 200


def write_report(
    folder: Path,
    title: str,
    scenario: Scenario,
    history: SimHistory,
    report: SimReport,
    status: Sequence[str] | None = None,
    faults: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """Write every file of the report into ``folder``; returns what ``report.json`` holds."""
    folder.mkdir(parents=True, exist_ok=True)
    series = write_series_csv(history, folder / "series.csv", _aligned(status, len(history)))
    cars = write_cars_csv(history, folder / "cars.csv")
    if matplotlib_available():
        verdict = "PASS" if report.passed else "FAIL"
        picture = write_png(history, folder / "report.png", title, scenario, report.metrics, verdict)
    else:
        picture = write_svg(history, folder / "report.svg", title)
    data = report.to_json()
    data["faults"] = dict(faults or {})
    data["picture"] = str(picture)
    data["series_csv"] = str(series)
    data["cars_csv"] = str(cars)
    data["html"] = str(folder / "report.html")
    data["cars"] = car_rows(history)
    (folder / "report.json").write_text(json.dumps(data, indent=2, allow_nan=False, default=str))
    (folder / "report.html").write_text(render_html(title, scenario, report, data), encoding="utf-8")
    return data


def _aligned(status: Sequence[str] | None, rows: int) -> list[str] | None:
    if not status:
        return None
    values = list(status[:rows])
    return values + [values[-1]] * (rows - len(values))


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value))


def render_html(title: str, scenario: Scenario, report: SimReport, data: Mapping[str, object]) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    colour = "#2a9d3a" if report.passed else "#c0392b"
    picture = Path(str(data["picture"])).name
    checks = "".join(
        f'<tr class="{"ok" if c.passed else "fail"}"><td>{"ok" if c.passed else "FAIL"}</td>'
        f"<td>{escape(c.name)}</td><td>{_cell(c.value)}</td><td>{escape(c.limit)}</td>"
        f"<td>{escape(c.detail)}</td></tr>"
        for c in report.checks
    )
    metrics = "".join(f"<tr><td>{escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in report.metrics.items())
    cars = data.get("cars")
    car_list = cars if isinstance(cars, list) else []
    names = list(car_list[0]) if car_list else []
    car_rows_html = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(n))}</td>" for n in names) + "</tr>"
        for row in car_list[:MAX_CAR_ROWS_HTML]
    )
    more = (
        f"<p>{len(car_list) - MAX_CAR_ROWS_HTML} more cars in cars.csv</p>"
        if len(car_list) > MAX_CAR_ROWS_HTML
        else ""
    )
    faults = data.get("faults") or {}
    fault_html = (
        "".join(
            f"<p class=fail>task {escape(str(k))} faulted: {escape(str(v))}</p>" for k, v in faults.items()
        )
        if isinstance(faults, dict)
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
tr.fail td {{ background: #fdecea; }} .fail {{ color: #c0392b; }}
.verdict {{ color: {colour}; font-weight: bold; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
<h1>{escape(title)}: <span class="verdict">{verdict}</span></h1>
<p>{escape(scenario.description)} — service <b>{escape(report.service)}</b>, {scenario.n_evs} cars,
{scenario.duration_s:g} s simulated. Source: {escape(report.source)}</p>
{fault_html}
<p>Files: <a href="report.json">report.json</a>, <a href="series.csv">series.csv</a> (every scan),
<a href="cars.csv">cars.csv</a> (per car), <a href="{escape(picture)}">{escape(picture)}</a></p>
<img src="{escape(picture)}" alt="frequency, power and SoC over the run">
<h2>Checks</h2>
<table><tr><th></th><th>criterion</th><th>value</th><th>limit</th><th>detail</th></tr>{checks}</table>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>value</th></tr>{metrics}</table>
<h2>Cars (floor margin = lowest SoC − floor, percentage points)</h2>
<table><tr>{"".join(f"<th>{escape(n)}</th>" for n in names)}</tr>{car_rows_html}</table>{more}
</body></html>
"""
