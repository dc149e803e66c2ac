"""A dependency-free SVG picture of a run: frequency, site/fleet power and fleet SoC over time.

Three stacked panels sharing the time axis. Long runs are thinned to at most ``MAX_POINTS`` per line
(keeping each bucket's minimum and maximum so short spikes stay visible); NaN breaks a line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .history import SimHistory

FloatArray = npt.NDArray[np.float64]
MAX_POINTS = 1500
WIDTH, PANEL_HEIGHT, LEFT, RIGHT, TOP, GAP = 900, 190, 70, 20, 40, 40


def _thin(t: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    if len(t) <= MAX_POINTS:
        return t, y
    buckets = MAX_POINTS // 2
    edges = np.linspace(0, len(t), buckets + 1).astype(int)
    keep: list[int] = []
    for a, b in itertools.pairwise(edges.tolist()):
        chunk = y[a:b]
        if b <= a:
            continue
        if np.isnan(chunk).any():
            keep.append(a + int(np.flatnonzero(np.isnan(chunk))[0]))
        if np.isfinite(chunk).any():
            keep.extend(sorted((a + int(np.nanargmin(chunk)), a + int(np.nanargmax(chunk)))))
    index = np.array(sorted(set(keep)), dtype=int)
    return t[index], y[index]


def _range(series: Sequence[FloatArray]) -> tuple[float, float]:
    finite = [s[np.isfinite(s)] for s in series]
    values = np.concatenate(finite) if finite else np.zeros(0)
    if not len(values):
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        low, high = low - 0.5 * max(abs(low) * 0.01, 1e-3), high + 0.5 * max(abs(high) * 0.01, 1e-3)
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _panel(
    index: int,
    t: FloatArray,
    lines: Sequence[tuple[str, FloatArray, str]],
    label: str,
    y_range: tuple[float, float],
) -> list[str]:
    top = TOP + index * (PANEL_HEIGHT + GAP)
    plot_w = WIDTH - LEFT - RIGHT
    t_max = float(t[-1]) if len(t) and t[-1] > 0 else 1.0
    low, high = y_range

    def x(v: float) -> float:
        return LEFT + v / t_max * plot_w

    def y(v: float) -> float:
        clipped = min(max(v, low), high)
        return top + PANEL_HEIGHT - (clipped - low) / (high - low) * PANEL_HEIGHT

    out = [
        f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#888"/>',
        f'<text x="{LEFT}" y="{top - 6}" font-size="13">{escape(label)}</text>',
        f'<text x="{LEFT - 6}" y="{top + 10}" font-size="11" text-anchor="end">{high:.4g}</text>',
        f'<text x="{LEFT - 6}" y="{top + PANEL_HEIGHT}" font-size="11" text-anchor="end">{low:.4g}</text>',
    ]
    legend_x = WIDTH - RIGHT
    for name, values, colour in reversed(lines):
        out.append(
            f'<text x="{legend_x}" y="{top - 6}" font-size="11" text-anchor="end" fill="{colour}">'
            f"{escape(name)}</text>"
        )
        legend_x -= 9 * len(name) + 16
        tt, vv = _thin(t, values)
        run: list[str] = []
        for ti, vi in zip(tt.tolist(), vv.tolist(), strict=True):
            if math.isfinite(vi):
                run.append(f"{x(ti):.1f},{y(vi):.1f}")
                continue
            if len(run) > 1:
                out.append(f'<polyline fill="none" stroke="{colour}" points="{" ".join(run)}"/>')
            run = []
        if len(run) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" points="{" ".join(run)}"/>')
    return out


def _time_axis(t_end: float) -> list[str]:
    """Tick labels under the last panel at a round step (1, 2 or 5 x 10^n seconds)."""
    axis_y = TOP + 3 * (PANEL_HEIGHT + GAP) - GAP + 16
    if t_end <= 0:
        return [f'<text x="{LEFT}" y="{axis_y}" font-size="11">0 s</text>']
    raw = t_end / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    plot_w = WIDTH - LEFT - RIGHT
    out = []
    for tick in np.arange(0.0, t_end + step * 1e-6, step).tolist():
        x = LEFT + tick / t_end * plot_w
        out.append(f'<text x="{x:.1f}" y="{axis_y}" font-size="11" text-anchor="middle">{tick:g} s</text>')
    return out


def render_svg(history: SimHistory, title: str = "") -> str:
    """The picture as SVG text."""
    t = history.t_s
    height = TOP + 3 * (PANEL_HEIGHT + GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="15">{escape(title)}</text>',
    ]
    freq_range = _range([history.grid_hz])
    parts += _panel(
        0,
        t,
        [("grid Hz", history.grid_hz, "#999"), ("meter Hz", history.meter_hz, "#1f5fbf")],
        "frequency (Hz)",
        freq_range,
    )
    kw = [history.site_power_w / 1000, history.fleet_power_w / 1000, history.setpoint_w / 1000]
    parts += _panel(
        1,
        t,
        [("site", kw[0], "#000"), ("fleet", kw[1], "#2a9d3a"), ("setpoint", kw[2], "#e07b00")],
        "power (kW, + = import/charging)",
        _range(kw),
    )
    soc = [history.soc_mean_pct, history.soc_min_pct]
    parts += _panel(
        2, t, [("mean", soc[0], "#1f5fbf"), ("min", soc[1], "#c0392b")], "fleet SoC (%)", _range(soc)
    )
    parts += _time_axis(float(t[-1]) if len(t) else 0.0)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_svg(history: SimHistory, path: str | Path, title: str = "") -> Path:
    target = Path(path)
    target.write_text(render_svg(history, title), encoding="utf-8")
    return target
