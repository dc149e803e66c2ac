"""Garbage collection moved out of the scans: freeze after start-up, then collect only in idle slack.

With the default collector a full collection (14 ms with numpy/pymodbus/paho imported, 40-70 ms with
a few hundred thousand objects) lands inside a scan several times a minute. ``GcController.start``
collects once, moves everything that survived start-up into the permanent generation
(``gc.freeze()``) and turns automatic collection off. The scheduler then calls ``idle`` in the slack
after a scan: a young-generation collection when enough new objects have accumulated, the middle
generation when it is due, and a full collection only when it is due *and* the slack is long compared
with what the last full collection cost. Every collection, ours or anybody's, is timed through
``gc.callbacks`` and recorded in ``ExecutorStats`` (attributed to the running scan, if any).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .stats import ExecutorStats

GcRecorder = Callable[[int, int], None]
"""``record(duration_ns, generation)``, e.g. ``ExecutorStats.record_gc_pause``."""


@dataclass(frozen=True, slots=True)
class GcPolicy:
    """When ``GcController.idle`` collects.

    ``young_min_objects``: collect generation 0 once this many tracked objects were allocated (net)
    since the last collection. ``middle_every``: collect generation 1 instead after this many young
    collections (Python's own default threshold is 10). ``full_every_ns``: at most one full
    collection per this much time; it also needs ``slack >= full_min_slack_ns`` and
    ``slack >= full_cost_factor * (duration of the last full collection)``.
    """

    young_min_objects: int = 100
    middle_every: int = 10
    full_every_ns: int = 60_000_000_000
    full_min_slack_ns: int = 5_000_000
    full_cost_factor: float = 3.0


class GcController:
    """Owns the interpreter's collector while the executor runs (``start`` ... ``stop``)."""

    def __init__(
        self,
        record: GcRecorder | ExecutorStats,
        policy: GcPolicy | None = None,
        time_source: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._record: GcRecorder = record.record_gc_pause if isinstance(record, ExecutorStats) else record
        self.policy = policy or GcPolicy()
        self._time = time_source
        self._started_at: int | None = None
        self._was_enabled = True
        self._active = False
        self._young_since_middle = 0
        self._last_full_ns: int | None = None
        self.last_full_duration_ns = 0
        self.frozen_objects = 0
        self.full_deferred = 0
        self.collections_in_idle = 0
        self._gc_started_ns = 0

    @property
    def active(self) -> bool:
        return self._active

    def start(self, now_ns: int) -> None:
        """After start-up (program loaded, drivers created): collect, freeze, disable automatic GC.
        ``now_ns`` is the executor clock's time, from which the full-collection interval counts."""
        if self._active:
            return
        self._active = True
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        self.frozen_objects = gc.get_freeze_count()
        # What a full collection costs now that start-up objects are frozen: the estimate for ``idle``.
        # Start-up collections are not scan-time pauses, so recording begins only after them.
        self.last_full_duration_ns = self._timed_collect(2)
        self._last_full_ns = now_ns
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        """Give the collector back: unfreeze, re-enable if it was enabled, stop recording."""
        if not self._active:
            return
        self._active = False
        gc.callbacks.remove(self._on_gc)
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()

    def idle(self, now_ns: int, slack_ns: int) -> None:
        """Idle hook for ``Scheduler.add_idle_hook``: collect what fits into ``slack_ns``."""
        if not self._active:
            return
        policy = self.policy
        last_full = self._last_full_ns
        if last_full is not None and now_ns - last_full >= policy.full_every_ns:
            needed_ns = max(policy.full_min_slack_ns, policy.full_cost_factor * self.last_full_duration_ns)
            if slack_ns >= needed_ns:
                self.last_full_duration_ns = self._timed_collect(2)
                self._last_full_ns = now_ns
                self._young_since_middle = 0
                self.collections_in_idle += 1
                return
            self.full_deferred += 1
        if gc.get_count()[0] < policy.young_min_objects:
            return
        if self._young_since_middle + 1 >= policy.middle_every:
            gc.collect(1)
            self._young_since_middle = 0
        else:
            gc.collect(0)
            self._young_since_middle += 1
        self.collections_in_idle += 1

    def _timed_collect(self, generation: int) -> int:
        begin = self._time()
        gc.collect(generation)
        return self._time() - begin

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # gc.callbacks hands in "start"/"stop" and an info dict; we time the pair.
        if phase == "start":
            self._gc_started_ns = self._time()
        elif phase == "stop" and self._gc_started_ns:
            duration = self._time() - self._gc_started_ns
            self._gc_started_ns = 0
            generation = info.get("generation", -1)
            self._record(duration, generation if isinstance(generation, int) else -1)
