"""The report picture drawn with matplotlib (the optional extra ``plcrun[plots]``): frequency,
site/fleet power and setpoint, fleet SoC, with the reference lines an engineer checks a run against.

- frequency: the nominal frequency, the service's deadband (shaded), the trigger of the criteria and
  the service's own thresholds (FFR trigger, LFSM thresholds, very fast FCAS triggers);
- power: the site's import/export limits, the service's baseline, the expected full activation,
  and every point check of the criteria (a marker with its tolerance);
- SoC: mean and minimum of the fleet, and the highest V2X floor of the cars;
- on every panel: the trigger (a vertical line) and the activation-time check (the window from the
  trigger to ``within_s`` shaded, the moment full activation was reached marked, green when in time).

Without matplotlib ``svg_plot`` draws a simpler picture (``plcrun sim`` falls back to it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .history import SimHistory
from .scenario import Scenario

# the service's deadband when the scenario does not set deadband_hz (the program's defaults)
SERVICE_DEADBAND_HZ = {
    "fcr": 0.01,
    "fcr_n": 0.0,
    "fcr_d": 0.1,
    "fcr_d_down": 0.1,
    "dc": 0.015,
    "dm": 0.015,
    "dr": 0.015,
    "ieee1547": 0.036,
}
# where the service is fully activated (deviation from nominal) when the scenario does not say
SERVICE_FULL_AT_HZ = {
    "fcr": 0.2,
    "fcr_n": 0.1,
    "fcr_d": 0.5,
    "fcr_d_down": 0.5,
    "dc": 0.5,
    "dm": 0.2,
    "dr": 0.2,
}
THRESHOLD_KEYS = ("trigger_hz", "lfsm_o_hz", "lfsm_u_hz", "vf_raise_trigger_hz", "vf_lower_trigger_hz")


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _number(params: Any, key: str) -> float | None:
    value = params.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def write_png(
    history: SimHistory,
    path: str | Path,
    title: str,
    scenario: Scenario,
    metrics: dict[str, Any],
    verdict: str = "",
) -> Path:
    """Draw the picture to ``path`` (PNG, or SVG when the name ends in .svg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    freq_ax, power_ax, soc_ax = figure.subplots(3, 1, sharex=True, height_ratios=[3, 3, 2])
    t = history.t_s
    params = scenario.service.params
    nominal = scenario.nominal_hz

    freq_ax.plot(t, history.grid_hz, color="#999999", linewidth=0.8, label="grid (true)")
    freq_ax.plot(t, history.meter_hz, color="#1f5fbf", linewidth=0.9, label="meter (as read)")
    freq_ax.axhline(nominal, color="black", linestyle="--", linewidth=0.8, label=f"nominal {nominal:g} Hz")
    band = _number(params, "deadband_hz")
    if band is None:
        band = SERVICE_DEADBAND_HZ.get(scenario.service.name)
    if band:
        freq_ax.axhspan(
            nominal - band, nominal + band, color="#f2c94c", alpha=0.3, label=f"deadband ±{band:g} Hz"
        )
    full_at = _number(params, "full_at_hz")
    if full_at is None:
        full_at = SERVICE_FULL_AT_HZ.get(scenario.service.name)
    if full_at:
        for level in (nominal - full_at, nominal + full_at):
            freq_ax.axhline(level, color="#2a9d3a", linestyle="--", linewidth=0.7)
        freq_ax.plot([], [], color="#2a9d3a", linestyle="--", linewidth=0.7, label=f"full at ±{full_at:g} Hz")
    trigger = scenario.criteria.trigger
    if trigger is not None:
        freq_ax.axhline(
            trigger.hz, color="#c0392b", linestyle=":", linewidth=1.2, label=f"trigger {trigger.hz:g} Hz"
        )
    for key in THRESHOLD_KEYS:
        value = _number(params, key)
        if value is not None and (trigger is None or abs(value - trigger.hz) > 1e-9):
            freq_ax.axhline(
                value, color="#8e44ad", linestyle="-.", linewidth=0.9, label=f"{key} {value:g} Hz"
            )
    freq_ax.set_ylabel("frequency (Hz)")
    _limit_frequency_axis(freq_ax, history, nominal)

    kw = 1e-3
    power_ax.plot(t, history.site_power_w * kw, color="black", linewidth=0.9, label="site (meter)")
    power_ax.plot(t, history.fleet_power_w * kw, color="#2a9d3a", linewidth=1.0, label="fleet (delivered)")
    power_ax.plot(t, history.setpoint_w * kw, color="#e07b00", linewidth=0.9, label="setpoint (sum)")
    data = np.concatenate([history.site_power_w, history.fleet_power_w, history.setpoint_w]) * kw
    data = data[np.isfinite(data)]
    low, high = (float(data.min()), float(data.max())) if len(data) else (0.0, 1.0)
    span = max(high - low, 1.0)
    site = scenario.site
    limits = (
        (site.import_limit_w, "import limit", "--", 1.0),
        (site.export_limit_w, "export limit", "-.", -1.0),
    )
    for limit, name, style, sign in limits:
        if limit is None:
            continue
        level = sign * limit * kw
        if low - 0.5 * span <= level <= high + 0.5 * span:  # near the run: drawn and scaled to
            power_ax.axhline(
                level, color="#c0392b", linestyle=style, linewidth=1.0, label=f"{name} {level:g} kW"
            )
            low, high = min(low, level), max(high, level)
        else:  # far away: named only, so that the response is not squashed
            power_ax.plot([], [], color="#c0392b", linestyle=style, label=f"{name} {level:g} kW (off scale)")
    pad = max(high - low, 1.0) * 0.08
    power_ax.set_ylim(low - pad, high + pad)
    baseline = _number(params, "v2x_baseline_w" if scenario.service.name == "ocpp" else "baseline_w")
    if baseline is not None:
        power_ax.axhline(baseline * kw, color="#555555", linestyle=":", linewidth=0.9, label="baseline")
    full = scenario.criteria.full_activation
    if full is not None and full.power_w is not None and baseline is not None:
        level = (baseline + full.power_w) * kw
        power_ax.axhline(level, color="#2a9d3a", linestyle=":", linewidth=0.9, label="full activation")
    points = [
        p for p in scenario.criteria.points if p.quantity in ("setpoint_w", "fleet_power_w", "site_power_w")
    ]
    if points:
        power_ax.errorbar(
            [p.at_s for p in points],
            [p.value * kw for p in points],
            yerr=[max(p.tolerance * kw, 1e-6) for p in points],
            fmt="x",
            color="#6c3483",
            capsize=3,
            label="point checks (± tol)",
        )
    power_ax.set_ylabel("power (kW, + = import / charging)")

    soc_ax.plot(t, history.soc_mean_pct, color="#1f5fbf", linewidth=0.9, label="fleet SoC mean")
    soc_ax.plot(t, history.soc_min_pct, color="#c0392b", linewidth=0.9, label="fleet SoC min")
    floors = history.min_soc_pct[np.isfinite(history.min_soc_pct)]
    if len(floors) and floors.max() > floors.min():
        label = f"V2X floors {floors.min():g}-{floors.max():g} %"
        soc_ax.axhspan(float(floors.min()), float(floors.max()), color="#c0392b", alpha=0.08, label=label)
    elif len(floors):
        soc_ax.axhline(float(floors.max()), color="#c0392b", linestyle="--", linewidth=0.8, label="V2X floor")
    soc_ax.set_ylabel("SoC (%)")
    soc_ax.set_xlabel("scenario time (s)")

    _mark_activation(figure.axes, metrics, full.within_s if full is not None else None)
    for ax in (freq_ax, power_ax, soc_ax):
        ax.grid(True, color="#e0e0e0", linewidth=0.6)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.85)
    figure.suptitle(f"{title}: {verdict}" if verdict else title)
    target = Path(path)
    figure.savefig(target)
    return target


def _limit_frequency_axis(ax: Any, history: SimHistory, nominal: float) -> None:
    """Scale to the true frequency and the plausible readings, so a x10 fault does not flatten it."""
    values = np.concatenate([history.grid_hz, history.meter_hz])
    values = values[np.isfinite(values) & (np.abs(values - nominal) < 0.3 * nominal)]
    if len(values):
        low, high = float(values.min()), float(values.max())
        pad = max((high - low) * 0.08, 0.01)
        ax.set_ylim(low - pad, high + pad)


def _mark_activation(axes: list[Any], metrics: dict[str, Any], within_s: float | None) -> None:
    start = metrics.get("trigger_time_s")
    if not isinstance(start, int | float):
        return
    reached = metrics.get("time_to_full_activation_s")
    latency = metrics.get("activation_latency_scans")
    for ax in axes:
        ax.axvline(start, color="#c0392b", linewidth=1.0, linestyle="-", label=None)
        if within_s is not None:
            ax.axvspan(start, start + within_s, color="#c0392b", alpha=0.15)
        if isinstance(reached, int | float):
            ok = within_s is None or reached <= within_s + 1e-9
            ax.axvline(start + reached, color="#2a9d3a" if ok else "#c0392b", linewidth=1.0, linestyle="--")
    top = axes[0]
    top.annotate(
        f"trigger {start:g} s" + (f", response after {latency} scans" if isinstance(latency, int) else ""),
        xy=(start, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(3, -12),
        textcoords="offset points",
        fontsize=8,
        color="#c0392b",
    )
    if within_s is not None:
        text = f"full activation within {within_s:g} s: "
        text += f"reached after {reached:.2f} s" if isinstance(reached, int | float) else "not reached"
        top.annotate(
            text,
            xy=(start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -24),
            textcoords="offset points",
            fontsize=8,
            color="#2a9d3a" if isinstance(reached, int | float) and reached <= within_s + 1e-9 else "#c0392b",
        )
