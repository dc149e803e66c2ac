"""The EV session table: one row per slot of the program's EV array, a page at a time.

Each row carries the fields an operator looks at (SoC, setpoint, measured power, limits) and the
data quality of the slot: the worst quality among its bound inputs (from the scan context's
quality table), with the age of its state-of-charge value.
"""

from __future__ import annotations

import math
from typing import Any

from ..executor.engine import Executor
from ..io.ev_session import EV_INPUT_FIELDS
from ..state.program import PathError, to_json
from .chart import ChartSampler
from .variables import quality_name

ROW_FIELDS = (
    "connected",
    "bidirectional_allowed",
    "soc_pct",
    "target_soc_pct",
    "min_soc_pct",
    "p_setpoint_w",
    "p_present_w",
    "p_charge_max_w",
    "p_discharge_max_w",
    "departure_time",
    "protocol",
    "energy_mode",
    "control_mode",
    "auth_mode",
)
# EV_SESSION fields a driver fills: the worst quality among them is the slot's quality.
QUALITY_FIELDS = EV_INPUT_FIELDS
UNBOUND = 4


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def evs_view(executor: Executor, sampler: ChartSampler, offset: int, limit: int) -> dict[str, Any]:
    views = sampler.views
    if views.ev_array_path is None:
        return {"available": False, "missing": views.missing.get("ev_array_path", "no EV array")}
    state = executor.state
    qualities = dict(state.rt.qualities)
    stamps = dict(state.rt.stamps)
    now = executor.clock.now_ns()
    in_use = sampler.ev_slots_in_use()
    first = views.ev_first_index
    rows = []
    for index in range(first + offset, first + min(in_use, offset + limit)):
        prefix = f"{views.ev_array_path}[{index}]"
        row: dict[str, Any] = {"index": index, "path": prefix}
        for field in ROW_FIELDS:
            try:
                accessor = state.accessor(f"{prefix}.{field}")
            except PathError:
                continue
            row[field] = _clean(to_json(accessor.get(), accessor.type))
        worst = -1
        for field in QUALITY_FIELDS:
            quality = qualities.get(f"{prefix}.{field}", UNBOUND)
            if quality != UNBOUND and quality > worst:
                worst = quality
        row["quality"] = quality_name(worst if worst >= 0 else UNBOUND)
        stamp = stamps.get(f"{prefix}.soc_pct")
        row["soc_age_s"] = None if stamp is None else (now - stamp) / 1e9
        rows.append(row)
    return {
        "available": True,
        "path": views.ev_array_path,
        "count_path": views.ev_count_path,
        "slots": views.ev_slots,
        "in_use": in_use,
        "offset": offset,
        "limit": limit,
        "summary": dict(sampler.latest_evs),
        "rows": rows,
    }
