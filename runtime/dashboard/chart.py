"""The live chart's data: a background thread samples grid frequency, site power and EV power into a
ring buffer a few times a second while a client is there.

The thread samples only while someone uses the dashboard (a request within ``CLIENT_GONE_S``); with
nobody there it waits without a timeout, so an unwatched gateway pays nothing for it (it woke ~10
times a second, 0.2 % of a core in the 10-EV main job). The request that finds it parked takes a
sample itself, so the page opens with current figures; the chart then fills from that moment.

Sampling reads a handful of variables (plus three fields per EV slot in use) through the program
state's accessors; it never waits for the scan thread. While the executor is not scanning (stopped,
or between runs in virtual time) no samples are added. Clients ask for the samples after the last
sequence number they have (``since``), so a poll only carries what is new.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..executor.driver_api import Quality
from ..executor.engine import Executor
from ..executor.slack_gate import SlackGate
from ..state.program import PathError
from .views import ResolvedViews

SERIES = ("t_s", "grid_hz", "site_w", "ev_present_w", "ev_setpoint_w", "ev_connected")
SCANNING_TIMEOUT_S = 1.0
CLIENT_GONE_S = 30.0  # no request for this long: nobody is looking, the sampler parks


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


class ChartSampler:
    def __init__(
        self,
        executor: Executor,
        views: ResolvedViews,
        sample_hz: float,
        seconds: float,
        gate: SlackGate,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.executor = executor
        self.gate = gate
        self.views = views
        self.period_s = 1.0 / sample_hz
        self._lock = threading.Lock()
        self._samples: deque[list[Any]] = deque(maxlen=max(2, round(seconds * sample_hz)))
        self._seq = 0
        self._t0_ns = executor.clock.now_ns()
        self._last_scans = 0  # no sample before the first scan (nothing but start-up values to show)
        self._last_progress_s: float | None = None  # when a sample last saw new scans
        self._monotonic = monotonic
        self._sampling = threading.Lock()  # a request's own sample and the thread's
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._presence = threading.Lock()
        self._last_client_s: float | None = None
        self.parked = False  # the thread waits for a client (no timeout)
        self.wakeups = 0  # how often the thread woke up (to sample, or because a client came)
        self._thread: threading.Thread | None = None
        self.latest_evs: dict[str, Any] = {}

    # ------------------------------------------------------------ thread
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._wake.clear()
            self._thread = threading.Thread(target=self._loop, name="plcrun-dashboard-chart", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._park_unless_watched():
                self._wake.wait()  # no timeout: only a client (client_seen) or stop wakes it
                self._wake.clear()
                self.wakeups += 1
                continue
            if self._stop.wait(self.period_s):
                return
            self.wakeups += 1
            self.sample_now()

    def watched(self) -> bool:
        """Whether a client asked for anything within ``CLIENT_GONE_S``."""
        last = self._last_client_s
        return last is not None and self._monotonic() - last < CLIENT_GONE_S

    def _park_unless_watched(self) -> bool:
        with self._presence:
            self.parked = not self.watched()
            return self.parked

    def client_seen(self) -> None:
        """A request came (called inside the slack gate): sample while clients are there. A parked
        thread is woken, and this request takes a sample first so that it sees current figures."""
        with self._presence:
            self._last_client_s = self._monotonic()
            was_parked, self.parked = self.parked, False
            if was_parked:
                self._wake.set()
        if was_parked:
            self._sample()

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
        with self._sampling:
            self._sample_locked()

    def _sample_locked(self) -> None:
        scans = self._total_scans()
        if scans == self._last_scans:
            return
        self._last_scans = scans
        self._last_progress_s = self._monotonic()
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
        progress = self._last_progress_s
        return progress is not None and self._monotonic() - progress < SCANNING_TIMEOUT_S

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
