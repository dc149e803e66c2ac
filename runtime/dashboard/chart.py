"""The live chart's data: a background thread samples grid frequency, site power and EV power into a
ring buffer a few times a second.

Sampling reads a handful of variables (plus three fields per EV slot in use) through the program
state's accessors; it never waits for the scan thread. While the executor is not scanning (stopped,
or between runs in virtual time) no samples are added. Clients ask for the samples after the last
sequence number they have (``since``), so a poll only carries what is new.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

from ..executor.driver_api import Quality
from ..executor.engine import Executor
from ..executor.slack_gate import SlackGate
from ..state.program import PathError
from .views import ResolvedViews

SERIES = ("t_s", "grid_hz", "site_w", "ev_present_w", "ev_setpoint_w", "ev_connected")
SCANNING_TIMEOUT_S = 1.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


class ChartSampler:
    def __init__(
        self, executor: Executor, views: ResolvedViews, sample_hz: float, seconds: float, gate: SlackGate
    ) -> None:
        self.executor = executor
        self.gate = gate
        self.views = views
        self.period_s = 1.0 / sample_hz
        self._lock = threading.Lock()
        self._samples: deque[list[Any]] = deque(maxlen=max(2, round(seconds * sample_hz)))
        self._seq = 0
        self._t0_ns = executor.clock.now_ns()
        self._last_scans = -1
        self._idle_samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest_evs: dict[str, Any] = {}

    # ------------------------------------------------------------ thread
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="plcrun-dashboard-chart", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample_now()

    # ------------------------------------------------------------ sampling
    def _total_scans(self) -> int:
        return sum(stats.scans for stats in list(self.executor.scheduler.stats.tasks.values()))

    def sample_now(self) -> None:
        """Take one sample if the executor scanned since the last one (in the scan thread's slack)."""
        self.gate.enter()
        try:
            self._sample()
        finally:
            self.gate.leave()

    def _sample(self) -> None:
        scans = self._total_scans()
        if scans == self._last_scans:
            self._idle_samples += 1
            return
        self._last_scans = scans
        self._idle_samples = 0
        views = self.views
        evs = self._ev_totals()
        t_s = (self.executor.clock.now_ns() - self._t0_ns) / 1e9
        row = [
            round(t_s, 3),
            self._read(views.frequency_path),
            self._read(views.site_power_path),
            evs.get("present_w"),
            evs.get("setpoint_w"),
            evs.get("connected"),
        ]
        with self._lock:
            self._seq += 1
            self._samples.append([self._seq, *row])
            self.latest_evs = evs

    def _read(self, path: str | None) -> float | None:
        if path is None:
            return None
        quality = self.executor.image.input_quality(path)
        if quality is not None and quality is not Quality.GOOD:
            return None  # no device has delivered it (or not lately): a gap, never a made-up 0 Hz
        try:
            return _number(self.executor.state.accessor(path).get())
        except PathError:  # gone after an online change
            return None

    def ev_slots_in_use(self) -> int:
        """Slots of the EV array in use: the count variable's value, clamped, or every slot."""
        views = self.views
        if views.ev_array_path is None:
            return 0
        if views.ev_count_path is None:
            return views.ev_slots
        count = self._read(views.ev_count_path)
        return views.ev_slots if count is None else max(0, min(views.ev_slots, int(count)))

    def _ev_totals(self) -> dict[str, Any]:
        views = self.views
        if views.ev_array_path is None:
            return {}
        state = self.executor.state
        present = setpoint = 0.0
        connected = 0
        base = views.ev_array_path
        try:
            for index in range(views.ev_first_index, views.ev_first_index + self.ev_slots_in_use()):
                prefix = f"{base}[{index}]."
                if not state.accessor(prefix + "connected").get():
                    continue
                connected += 1
                present += _number(state.accessor(prefix + "p_present_w").get()) or 0.0
                setpoint += _number(state.accessor(prefix + "p_setpoint_w").get()) or 0.0
        except PathError:  # a structure without these fields: no totals
            return {}
        return {"connected": connected, "present_w": present, "setpoint_w": setpoint}

    # ------------------------------------------------------------ reading
    @property
    def scanning(self) -> bool:
        """True when the executor scanned within about the last second (as seen by the sampler)."""
        return self._last_scans >= 0 and self._idle_samples * self.period_s < SCANNING_TIMEOUT_S

    def since(self, seq: int) -> dict[str, Any]:
        with self._lock:
            rows = [row for row in self._samples if row[0] > seq]
            last = self._seq
        return {
            "columns": ["seq", *SERIES],
            "rows": rows,
            "last_seq": last,
            "period_s": self.period_s,
            "paths": {
                "grid_hz": self.views.frequency_path,
                "site_w": self.views.site_power_path,
                "ev_array": self.views.ev_array_path,
            },
            "missing": {
                k: v
                for k, v in self.views.missing.items()
                if k in ("frequency_path", "site_power_path", "ev_array_path")
            },
        }
