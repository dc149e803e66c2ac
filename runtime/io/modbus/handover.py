"""The only state the scan thread and a device thread share, behind one lock held for microseconds.

Inputs: the device thread publishes a sample for every answer of the device (a steady value is fresh:
its time is the time of the poll that read it); the scan thread swaps out the newest ones since its
previous call and, on the way, turns GOOD values that were not refreshed in time into STALE ones (the
device thread may be stuck in a slow request, so it cannot be the one to notice). A point with a
stuck-value limit turns STALE when its value has not changed for that long although the device answers. Outputs: the scan
thread drops in the newest values; the device thread takes the ones it has to write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from ...executor.driver_api import Quality, Sample
from .model import PointSpec
from .points import default_value

NEVER = 2**63
STALE_PROBLEM = "not refreshed within its freshness limit"


def stuck_problem(limit_ms: int) -> str:
    return f"value unchanged for {limit_ms} ms although the device answers (stuck-value detector)"


class Handover:
    def __init__(self, inputs: Iterable[PointSpec], stale_limit_ns: Mapping[str, int]) -> None:
        self._lock = threading.Lock()
        self._changed_ns: dict[str, int] = {}  # point name -> when its GOOD value last changed
        self._inputs = list(inputs)
        self._stale_limit_ns = dict(stale_limit_ns)
        self._pending: dict[str, Sample] = {}  # path -> newest changed sample
        self._current: dict[str, Sample] = {}  # point name -> last published sample
        self._problems: dict[str, str] = {}
        self._refresh_ns: dict[str, int] = {}
        self._next_stale_ns = NEVER
        self._desired: dict[str, object] = {}
        self._dirty: set[str] = set()
        self.clock: Callable[[], int] = lambda: 0

    # ---- inputs ---------------------------------------------------------------------------------------
    def would_report(self, point: PointSpec, quality: Quality, problem: str = "") -> bool:
        """Whether ``publish`` with this quality and problem would report a change (the same rule), so the
        publisher can raise or clear the alarm that explains a quality before the scan can see it."""
        with self._lock:
            previous = self._current.get(point.name)
            if quality is Quality.GOOD:
                return previous is None or previous.quality is not Quality.GOOD
            same = previous is not None and previous.quality is quality
            return not (same and self._problems.get(point.name) == problem)

    def publish(self, point: PointSpec, quality: Quality, value: object = None, problem: str = "") -> bool:
        """Record what the device answered for ``point``; False when its quality and problem did not change
        (then no alarm needs to change). A GOOD answer is always handed to the scan with the time of this
        answer, even when the value repeats: fresh means the device answered, not that the value moved."""
        now = self.clock()
        with self._lock:
            previous = self._current.get(point.name)
            if quality is Quality.GOOD:
                same_value = previous is not None and previous.value == value
                if not same_value:
                    self._changed_ns[point.name] = now
                elif point.stuck_ms is not None:
                    since = self._changed_ns.setdefault(point.name, now)
                    if now - since > point.stuck_ms * 1_000_000:
                        return self._publish_locked(
                            point, previous, Quality.STALE, stuck_problem(point.stuck_ms), now
                        )
                changed = previous is None or previous.quality is not Quality.GOOD
                sample = Sample(value, quality, now)
                self._current[point.name] = sample
                if point.path is not None:
                    self._pending[point.path] = sample
                if changed:
                    self._problems.pop(point.name, None)
                return changed
            return self._publish_locked(point, previous, quality, problem, now)

    def _publish_locked(
        self, point: PointSpec, previous: Sample | None, quality: Quality, problem: str, now: int
    ) -> bool:
        """A sample that is not GOOD (with the lock held): keeps the last value and its acquisition time,
        so AGE_OF tells how old it is; reported only when quality or problem changes."""
        same = previous is not None and previous.quality is quality
        if same and self._problems.get(point.name) == problem:
            return False
        sample = (
            Sample(previous.value, quality, previous.timestamp_ns)
            if previous is not None
            else Sample(default_value(point), quality, now)
        )
        self._current[point.name] = sample
        if point.path is not None:
            self._pending[point.path] = sample
        if problem:
            self._problems[point.name] = problem
        else:
            self._problems.pop(point.name, None)
        return True

    def refreshed(self, point: PointSpec) -> None:
        """The device just answered for this point (whatever the value): it is fresh again."""
        now = self.clock()
        with self._lock:
            self._refresh_ns[point.name] = now
            self._next_stale_ns = min(self._next_stale_ns, now + self._stale_limit_ns[point.name])

    def take(self, now_ns: int) -> dict[str, Sample]:
        """The samples that changed since the last call; GOOD values not refreshed in time turn STALE."""
        with self._lock:
            if now_ns >= self._next_stale_ns:
                self._mark_stale(now_ns)
            samples, self._pending = self._pending, {}
        return samples

    def _mark_stale(self, now_ns: int) -> None:
        """With the lock held; runs only when a freshness deadline has passed (cheap on every scan)."""
        next_deadline = NEVER
        for point in self._inputs:
            current = self._current.get(point.name)
            if current is None or current.quality is not Quality.GOOD:
                continue
            deadline = self._refresh_ns.get(point.name, NEVER) + self._stale_limit_ns[point.name]
            if now_ns <= deadline:
                next_deadline = min(next_deadline, deadline)
                continue
            sample = Sample(current.value, Quality.STALE, current.timestamp_ns)
            self._current[point.name] = sample
            self._problems[point.name] = STALE_PROBLEM
            if point.path is not None:
                self._pending[point.path] = sample
        self._next_stale_ns = next_deadline

    def current(self, name: str) -> Sample | None:
        with self._lock:
            return self._current.get(name)

    def qualities(self, points: Iterable[PointSpec]) -> dict[str, Quality]:
        with self._lock:
            return {p.path or p.name: s.quality for p in points if (s := self._current.get(p.name))}

    def problems(self) -> dict[str, str]:
        with self._lock:
            return dict(self._problems)

    # ---- outputs --------------------------------------------------------------------------------------
    def set_outputs(self, values: Mapping[str, object], force: bool) -> bool:
        """Newest output values by point name; True if any has to be written."""
        changed = False
        with self._lock:
            for name, value in values.items():
                if force or name not in self._desired or self._desired[name] != value:
                    self._desired[name] = value
                    self._dirty.add(name)
                    changed = True
        return changed

    def take_outputs(self) -> tuple[dict[str, object], set[str]]:
        """All wanted output values, and the names among them that changed since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            return dict(self._desired), dirty

    def desired(self, name: str) -> object | None:
        """The newest value the scan wants for output ``name`` (None before the first)."""
        with self._lock:
            return self._desired.get(name)

    def redo(self, names: Iterable[str] | None = None) -> None:
        """Write these outputs (all of them when None) again at the next opportunity."""
        with self._lock:
            self._dirty.update(self._desired if names is None else names)

    def has_dirty(self) -> bool:
        with self._lock:
            return bool(self._dirty)

    def wanted(self) -> set[str]:
        with self._lock:
            return set(self._desired)
