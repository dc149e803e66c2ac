"""Read-only views of the executor for the API: scan statistics, tasks and watchdog, I/O, alarms,
the journal of external changes.

Computing the statistics (percentiles and histograms over up to 100,000 samples per series) costs a
few milliseconds, so the result is shared by all clients for ``ttl_s``; with N pages open the scan
thread sees the same load as with one. Large I/O lists are summarised (counts per quality, the
first inputs that are not GOOD) and paged on request.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..executor.driver_api import Quality
from ..executor.engine import Executor
from ..state.program import to_json

PROBLEM_LIMIT = 50


class TtlValue:
    """The result of ``compute()``, recomputed at most once per ``ttl_s`` whoever asks."""

    def __init__(self, compute: Callable[[], dict[str, Any]], ttl_s: float) -> None:
        self._compute = compute
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = -1.0e9
        self._value: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.ttl_s:
                self._value = self._compute()
                self._at = now
            return self._value


def tasks_view(executor: Executor, stats: dict[str, Any], scanning: bool) -> dict[str, Any]:
    """One entry per task: its statistics (the layout of ``TaskStats.to_json``), its watchdog
    (``supervisor``) and the program instances it runs."""
    per_task = stats.get("tasks")
    assert isinstance(per_task, dict)
    tasks = []
    for model in executor.program.tasks:
        supervisor = executor.supervisors[model.name]
        entry = dict(per_task.get(model.name, {}))
        watchdog = supervisor.to_json()
        watchdog["consecutive_overruns"] = supervisor.consecutive_overruns
        entry["supervisor"] = watchdog
        entry["programs"] = [inst.name for inst in executor.program.instances if inst.task == model.name]
        tasks.append(entry)
    return {"scanning": scanning, "resets": stats.get("resets"), "gc": stats.get("gc"), "tasks": tasks}


def _quality_name(quality: object) -> str:
    return quality.name if isinstance(quality, Quality) else str(quality)


def drivers_view(executor: Executor) -> list[dict[str, Any]]:
    out = []
    for driver in executor.drivers:
        try:
            status = driver.status()
        except Exception as error:  # a driver's status must not break the page
            out.append(
                {
                    "name": driver.name,
                    "kind": driver.kind,
                    "connected": False,
                    "detail": f"status failed: {error}",
                }
            )
            continue
        counts = Counter(_quality_name(q) for q in status.points.values())
        problems = [
            {"path": path, "quality": _quality_name(q)}
            for path, q in status.points.items()
            if q is not Quality.GOOD
        ][:PROBLEM_LIMIT]
        out.append(
            {
                "name": status.name,
                "kind": status.kind,
                "connected": status.connected,
                "detail": status.detail,
                "counters": dict(status.counters),
                "points": len(status.points),
                "points_by_quality": dict(counts),
                "point_problems": problems,
            }
        )
    return out


def _input_rows(executor: Executor) -> list[tuple[str, str, Any]]:
    """(path, driver, InputPoint) of every bound input, without reading values."""
    rows = []
    for binding in list(executor.image.bindings):
        for path, point in list(binding.inputs.items()):
            rows.append((path, binding.driver.name, point))
    return rows


def _input_json(executor: Executor, path: str, driver: str, point: Any) -> dict[str, Any]:
    received = point.quality is not Quality.UNBOUND
    return {
        "path": path,
        "driver": driver,
        "quality": point.quality.name,
        "required": point.required,
        "age_s": (executor.clock.now_ns() - point.stamp_ns) / 1e9 if received else None,
        "value": to_json(point.accessor.get(), point.accessor.type),
    }


def io_view(executor: Executor) -> dict[str, Any]:
    rows = _input_rows(executor)
    counts = Counter(point.quality.name for _, _, point in rows)
    problems = [r for r in rows if r[2].quality is not Quality.GOOD][:PROBLEM_LIMIT]
    return {
        "drivers": drivers_view(executor),
        "inputs": {
            "total": len(rows),
            "by_quality": dict(counts),
            "not_good": [_input_json(executor, *row) for row in problems],
        },
    }


def io_inputs(executor: Executor, offset: int, limit: int, quality: str) -> dict[str, Any]:
    rows = _input_rows(executor)
    if quality:
        rows = [r for r in rows if r[2].quality.name == quality.upper()]
    page = rows[offset : offset + limit]
    return {
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "inputs": [_input_json(executor, *row) for row in page],
    }


def alarms_view(executor: Executor, history: int) -> dict[str, Any]:
    alarms = executor.alarms
    past = alarms.history()[-history:] if history else []
    return {
        "active": [a.to_json() for a in alarms.active()],
        "history": [a.to_json() for a in reversed(past)],
    }


def journal_view(executor: Executor, limit: int) -> dict[str, Any]:
    journal = executor.journal
    state = executor.state
    forces = {}
    for path, value in journal.forces().items():
        try:
            forces[path] = to_json(value, state.accessor(path).type)
        except KeyError:
            forces[path] = value
    entries = journal.entries()[-limit:] if limit else []
    return {
        "forces": forces,
        "entries": [
            {
                "time": e.wall_time,
                "action": e.action,
                "path": e.path,
                "value": e.value,
                "source": e.source,
                "result": e.result,
            }
            for e in reversed(entries)
        ],
    }
