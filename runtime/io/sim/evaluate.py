"""Judging a simulation run against its scenario's criteria (used by ``plcrun sim``).

Definitions (one history row = one scan period, so "scans" below are rows):
- trigger: the first row whose meter reading is GOOD, finite and beyond ``criteria.trigger.hz`` in
  the given direction (what the program saw, faults included);
- response: the first row from the trigger on whose total setpoint moved more than
  ``response_tolerance_w`` from the row before the trigger, in the direction that helps the grid
  (down for under-frequency, up for over-frequency);
- latency in scans = response row - trigger row (0: the setpoint was written in the scan that read
  the crossing sample; 1: in the next scan);
- time to full activation: from the trigger row until the delivered fleet power has moved by
  ``fraction`` of the expected change (``full_activation.power_w``, or else the setpoint change at
  ``within_s`` after the trigger).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...executor.driver_api import Quality
from .history import SimHistory
from .report_data import (
    availability_pct,
    floor_margins,
    reversals,
    service_baseline_w,
    service_energy,
    total_variation,
    worst_site_excursion,
)
from .scenario import Criteria, Scenario

Number = float | int | None


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    value: Number
    limit: str
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": _clean(self.value),
            "limit": self.limit,
            "detail": self.detail,
        }


@dataclass
class SimReport:
    scenario: str
    source: str
    checks: list[CheckResult] = field(default_factory=list)
    metrics: dict[str, Number] = field(default_factory=dict)
    service: str = "none"

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "source": self.source,
            "service": self.service,
            "passed": self.passed,
            "checks": [check.to_json() for check in self.checks],
            "metrics": {key: _clean(value) for key, value in self.metrics.items()},
        }

    def summary(self) -> str:
        lines = [f"scenario {self.scenario}: {'PASS' if self.passed else 'FAIL'}"]
        for check in self.checks:
            mark = "ok  " if check.passed else "FAIL"
            value = "-" if check.value is None else f"{check.value:g}"
            lines.append(f"  {mark} {check.name}: {value} (limit {check.limit}) {check.detail}".rstrip())
        return "\n".join(lines)


def _clean(value: Number) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _trigger_row(history: SimHistory, criteria: Criteria) -> int | None:
    trigger = criteria.trigger
    if trigger is None:
        return None
    hz = history.meter_hz
    with np.errstate(invalid="ignore"):
        valid = (history.meter_quality == int(Quality.GOOD)) & np.isfinite(hz)
        beyond = hz < trigger.hz if trigger.direction == "below" else hz > trigger.hz
    rows = np.flatnonzero(valid & beyond)
    return int(rows[0]) if len(rows) else None


def _activation_checks(history: SimHistory, criteria: Criteria, report: SimReport) -> None:
    trigger = criteria.trigger
    if trigger is None:
        return
    row = _trigger_row(history, criteria)
    report.metrics["trigger_row"] = row
    report.metrics["trigger_time_s"] = None if row is None else float(history.t_s[row])
    sign = -1.0 if trigger.direction == "below" else 1.0
    if row is None:
        detail = f"the meter never read {trigger.direction} {trigger.hz:g} Hz"
        if criteria.max_latency_scans is not None:
            report.checks.append(CheckResult("activation_latency_scans", False, None, "", detail))
        if criteria.full_activation is not None:
            report.checks.append(CheckResult("time_to_full_activation_s", False, None, "", detail))
        return
    base_setpoint = float(history.setpoint_w[row - 1]) if row > 0 else 0.0
    moved = (history.setpoint_w[row:] - base_setpoint) * sign > criteria.response_tolerance_w
    responses = np.flatnonzero(moved)
    latency = int(responses[0]) if len(responses) else None
    report.metrics["activation_latency_scans"] = latency
    if criteria.max_latency_scans is not None:
        max_scans = criteria.max_latency_scans
        ok = latency is not None and latency <= max_scans
        detail = "" if latency is not None else "the setpoint never responded"
        report.checks.append(CheckResult("activation_latency_scans", ok, latency, f"<= {max_scans}", detail))

    full = criteria.full_activation
    if full is None:
        return
    base_power = float(history.fleet_power_w[row - 1]) if row > 0 else float(history.fleet_power_w[0])
    if full.power_w is not None:
        expected = full.power_w
    else:
        end = min(len(history) - 1, row + round(full.within_s / history.scan_period_s))
        expected = float(history.setpoint_w[end]) - base_setpoint
    report.metrics["full_activation_expected_w"] = expected
    name, limit = "time_to_full_activation_s", f"<= {full.within_s:g}"
    if expected == 0:
        report.checks.append(CheckResult(name, False, None, limit, "no activation was requested"))
        return
    change = (history.fleet_power_w[row:] - base_power) * math.copysign(1.0, expected)
    reached = np.flatnonzero(change >= full.fraction * abs(expected))
    seconds = float(history.t_s[row + reached[0]] - history.t_s[row]) if len(reached) else None
    report.metrics["time_to_full_activation_s"] = seconds
    ok = seconds is not None and seconds <= full.within_s + 1e-9
    detail = f"{full.fraction:.0%} of {expected:g} W" + ("" if seconds is not None else ", never reached")
    report.checks.append(CheckResult(name, ok, seconds, limit, detail))


def _site_checks(history: SimHistory, scenario: Scenario, report: SimReport) -> None:
    site, criteria = scenario.site, scenario.criteria
    power = history.site_power_w
    report.metrics["max_import_w"] = float(max(power.max(initial=0.0), 0.0))
    report.metrics["max_export_w"] = float(max((-power).max(initial=0.0), 0.0))
    tol = criteria.site_limit_tolerance_w
    over = np.zeros(len(power), dtype=np.bool_)
    excess = 0.0
    if site.import_limit_w is not None:
        over |= power > site.import_limit_w + tol
        excess = max(excess, float((power - site.import_limit_w).max(initial=0.0)))
    if site.export_limit_w is not None:
        over |= -power > site.export_limit_w + tol
        excess = max(excess, float((-power - site.export_limit_w).max(initial=0.0)))
    report.metrics["site_limit_violation_scans"] = int(over.sum())
    if criteria.site_limits_held:
        limits = f"import <= {site.import_limit_w}, export <= {site.export_limit_w} W (+{tol:g})"
        detail = f"{int(over.sum())} scans over, worst by {excess:.0f} W" if over.any() else ""
        report.checks.append(CheckResult("site_limits_held", not over.any(), excess, limits, detail))
    worst = worst_site_excursion(history, scenario)
    report.metrics["site_limit_worst_excursion_w"] = worst
    if criteria.max_site_excursion_w is not None:
        ok = worst is not None and worst <= criteria.max_site_excursion_w
        detail = "" if worst is None or worst > 0 else f"inside by {-worst:.0f} W at the closest"
        limit = f"<= {criteria.max_site_excursion_w:g} W"
        report.checks.append(CheckResult("site_limit_worst_excursion_w", ok, worst, limit, detail))


def _floor_checks(history: SimHistory, criteria: Criteria, report: SimReport) -> None:
    below = float(history.below_floor_discharge_wh.sum())
    requests = int(history.floor_discharge_requests.sum())
    report.metrics["below_floor_discharge_wh"] = below
    report.metrics["floor_discharge_requests"] = requests
    if criteria.soc_floors_held:
        cars = int((history.below_floor_discharge_wh > 1e-6).sum())
        detail = f"{cars} cars discharged under their floor" if cars else ""
        report.checks.append(CheckResult("soc_floors_held", cars == 0, below, "0 Wh below floor", detail))
    if criteria.no_discharge_below_floor:
        detail = "scans x cars asking a car at its floor to discharge" if requests else ""
        report.checks.append(CheckResult("no_discharge_below_floor", requests == 0, requests, "0", detail))
    margins = floor_margins(history)
    discharged = (history.energy_discharged_wh > 1e-6) & np.isfinite(margins)
    lowest = float(margins[discharged].min()) if discharged.any() else None
    report.metrics["floor_margin_min_pct"] = lowest
    if criteria.min_floor_margin_pct is not None:
        limit = f">= {criteria.min_floor_margin_pct:g} % (cars that discharged)"
        ok = lowest is None or lowest >= criteria.min_floor_margin_pct
        detail = "no car discharged" if lowest is None else ""
        report.checks.append(CheckResult("floor_margin_min_pct", ok, lowest, limit, detail))


def _chatter_checks(history: SimHistory, criteria: Criteria, report: SimReport) -> None:
    check = criteria.chatter
    tolerance = check.tolerance_w if check is not None else criteria.response_tolerance_w
    mask = np.ones(len(history), dtype=np.bool_)
    if check is not None:
        mask = (history.t_s >= check.from_s - 1e-9) & (history.t_s <= check.to_s + 1e-9)
    setpoint = history.setpoint_w[mask]
    count = reversals(setpoint, tolerance)
    variation = total_variation(setpoint)
    report.metrics["setpoint_reversals"] = count
    report.metrics["setpoint_total_variation_w"] = variation
    if check is None:
        return
    window = f"{check.from_s:g}..{check.to_s:g}s"
    if check.max_reversals is not None:
        limit = f"<= {check.max_reversals} (moves back > {tolerance:g} W)"
        report.checks.append(
            CheckResult(f"setpoint_reversals[{window}]", count <= check.max_reversals, count, limit)
        )
    if check.max_total_variation_w is not None:
        ok = variation <= check.max_total_variation_w
        limit = f"<= {check.max_total_variation_w:g} W"
        report.checks.append(CheckResult(f"setpoint_total_variation_w[{window}]", ok, variation, limit))


def _point_and_range_checks(history: SimHistory, criteria: Criteria, report: SimReport) -> None:
    for point in criteria.points:
        row = max(0, int(np.searchsorted(history.t_s, point.at_s + 1e-9, side="right")) - 1)
        value = float(history.series(point.quantity)[row]) if len(history) else math.nan
        ok = math.isfinite(value) and abs(value - point.value) <= point.tolerance
        name = f"{point.quantity}@{point.at_s:g}s"
        limit = f"{point.value:g} ± {point.tolerance:g}"
        report.checks.append(CheckResult(name, ok, value, limit))
    for check in criteria.ranges:
        mask = (history.t_s >= check.from_s - 1e-9) & (history.t_s <= check.to_s + 1e-9)
        values = history.series(check.quantity)[mask]
        low = -math.inf if check.minimum is None else check.minimum
        high = math.inf if check.maximum is None else check.maximum
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values < low) | (values > high)
        name = f"{check.quantity}[{check.from_s:g}..{check.to_s:g}s]"
        limit = f"in [{check.minimum}, {check.maximum}]"
        if not len(values):
            report.checks.append(CheckResult(name, False, None, limit, "no rows in this window"))
            continue
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            worst = float(values[first])
            at = float(history.t_s[mask][first])
            detail = f"{int(bad.sum())} rows outside, first at {at:g} s"
            report.checks.append(CheckResult(name, False, worst, limit, detail))
        else:
            spread = float(values.max() if check.maximum is not None else values.min())
            report.checks.append(CheckResult(name, True, spread, limit))


def evaluate(history: SimHistory, scenario: Scenario, status: Sequence[str] | None = None) -> SimReport:
    """Metrics of the run and one pass/fail result per criterion of the scenario. ``status``: the
    program's status in every row, when it was recorded (for the availability)."""
    report = SimReport(scenario.name, scenario.source, service=scenario.service.name)
    dt = history.scan_period_s
    report.metrics["rows"] = len(history)
    report.metrics["simulated_s"] = float(history.t_s[-1]) if len(history) else 0.0
    report.metrics["energy_charged_wh"] = float(history.energy_charged_wh.sum())
    report.metrics["energy_discharged_wh"] = float(history.energy_discharged_wh.sum())
    report.metrics["fleet_power_min_w"] = float(history.fleet_power_w.min()) if len(history) else None
    report.metrics["fleet_power_max_w"] = float(history.fleet_power_w.max()) if len(history) else None
    soc_min = history.soc_min_pct[np.isfinite(history.soc_min_pct)]
    report.metrics["soc_min_pct"] = float(soc_min.min()) if len(soc_min) else None
    report.metrics["scan_period_s"] = dt
    criteria = scenario.criteria
    _activation_checks(history, criteria, report)
    _site_checks(history, scenario, report)
    _floor_checks(history, criteria, report)
    _chatter_checks(history, criteria, report)
    _point_and_range_checks(history, criteria, report)
    raise_wh, lower_wh = service_energy(history, scenario)
    report.metrics["service_baseline_w"] = service_baseline_w(scenario)
    report.metrics["service_energy_raise_wh"] = raise_wh
    report.metrics["service_energy_lower_wh"] = lower_wh
    report.metrics["availability_pct"] = availability_pct(history, status)
    return report
