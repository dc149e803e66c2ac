"""The OCPP station as an executor ``Driver``: the scan thread only swaps snapshots.

- ``write_outputs`` (scan thread, every scan): every ``snapshot_interval_s`` the EV session fields of
  the configured EVSEs are copied into one immutable snapshot and handed to the station by a single
  attribute assignment (no lock, no wake-up syscall).
- ``read_inputs`` (scan thread, every scan): the station publishes a precomputed ``Plan`` (composite
  schedules for the next hour) by attribute assignment; the scan compares the wall time with the next
  change of the plan and emits samples only when a value changes, so a scan without change costs a
  couple of comparisons. A new plan (new profile, curve, transaction) is picked up at the next scan.
- The station runs in its own thread with its own asyncio loop; the local frequency response never
  waits on it (the program reads the meter itself; profiles stay valid offline).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from ...executor.alarms import AlarmBus, Severity
from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from ...executor.threads import start_thread
from .config import OcppConfig
from .schedule import MODES, Values
from .station import LinkState, Plan, Station
from .transactions import Session

log = logging.getLogger("plcrun.ocpp")

ALARM_LINK = "ocpp:link"
NO_LIMIT_W = 1.0e9  # what the program's limit variables hold when nothing limits


def mode_code(mode: str | None) -> int:
    """The ST value of an operation mode: 0 none, then MODES in order (7 = LocalFrequency)."""
    return 0 if mode is None else MODES.index(mode) + 1


class OcppDriver(Driver):
    """``OcppDriver(config, alarms)``: see the module docstring and docs/ocpp.md."""

    name = "ocpp"
    kind = "ocpp"

    def __init__(
        self, config: OcppConfig, alarms: AlarmBus, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self._alarms = alarms
        self._wall_clock = wall_clock
        self._wall_offset = 0.0
        self._clock: Clock | None = None
        self._plan: Plan | None = None  # written by the network thread
        self._active: Plan | None = None
        self._next_change = math.inf
        self._current: dict[int, Values] = {}
        self._emitted: dict[str, object] = {}
        self._snapshot_every_ns = int(config.snapshot_interval_s * 1e9)
        self._last_snapshot_ns: int | None = None
        self._energy: dict[int, list[float]] = {}  # scan thread: integrated energy per EVSE
        self._link = LinkState()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.station = Station(config, self.wall, self._publish_plan, self._on_link)
        self.plans_applied = 0

    # ------------------------------------------------------------ Driver interface
    def input_paths(self) -> frozenset[str]:
        return self.config.input_paths()

    def output_paths(self) -> frozenset[str]:
        return self.config.output_paths()

    def wall(self) -> float:
        """Epoch seconds on the executor's clock (virtual time runs the schedules in virtual time)."""
        clock = self._clock
        return self._wall_clock() if clock is None else self._wall_offset + clock.now_ns() / 1e9

    def start(self, clock: Clock) -> None:
        self._clock = clock
        self._wall_offset = self._wall_clock() - clock.now_ns() / 1e9
        self._thread = start_thread(self._run, "plcrun-ocpp")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.station.run())
        except Exception:  # guarded: the scan goes on without the CSMS
            log.exception("OCPP station stopped")
            self._link.detail = "station stopped after an internal error (see the log)"
        finally:
            loop.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.station.stop)
        thread.join(10)
        self._thread = None
        self._alarms.clear(ALARM_LINK)

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        last = self._last_snapshot_ns
        if last is not None and now_ns - last < self._snapshot_every_ns:
            return
        self._last_snapshot_ns = now_ns
        dt_h = 0.0 if last is None else (now_ns - last) / 3.6e12
        sessions: dict[int, Session] = {}
        for evse, fields in self.config.session_paths.items():
            session = Session()
            for name, path in fields.items():
                value = values.get(path)
                if value is not None:
                    setattr(session, name, value)
            energy = self._energy.setdefault(evse, [0.0, 0.0, 0.0])  # charged, discharged, last power
            power = energy[2]
            if power > 0:
                energy[0] += power * dt_h
            else:
                energy[1] -= power * dt_h
            present = session.p_present_w
            ok = session.connected and isinstance(present, float | int) and math.isfinite(present)
            energy[2] = float(present) if ok else 0.0  # type: ignore[arg-type]
            session.charged_wh, session.discharged_wh = energy[0], energy[1]
            sessions[evse] = session
        self.station.snapshot = (self.wall(), sessions)

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        plan = self._plan
        wall = self._wall_offset + now_ns / 1e9
        if plan is self._active and wall < self._next_change:
            return {}
        if plan is None:
            return {}
        self._active = plan
        self._next_change = plan.until
        for target, segments in plan.targets.items():
            index = bisect.bisect_right([start for start, _ in segments], wall) - 1
            self._current[target] = segments[max(index, 0)][1]
            if index + 1 < len(segments):
                self._next_change = min(self._next_change, segments[index + 1][0])
        self.plans_applied += 1
        return self._samples(now_ns, plan)

    def _samples(self, now_ns: int, plan: Plan) -> dict[str, Sample]:
        out: dict[str, Sample] = {}

        def put(path: str | None, value: object) -> None:
            if path is not None and self._emitted.get(path) != value:
                self._emitted[path] = value
                out[path] = Sample(value, Quality.GOOD, now_ns)

        for evse, paths in self.config.limit_paths.items():
            values = self._current.get(evse)
            if values is None:
                continue
            put(paths.get("p_limit_charge_w"), _limit(values.charge_w))
            put(paths.get("p_limit_discharge_w"), _limit(values.discharge_w))
        station = self._current.get(0, Values())
        sp = self.config.station_paths
        put(sp.get("station_charge_limit"), _limit(station.charge_w))
        put(sp.get("station_discharge_limit"), _limit(station.discharge_w))
        v2x = station
        if station.mode is None:  # no station-wide mode: the first EVSE that has one
            v2x = next(
                (self._current[e] for e in sorted(self._current) if e and self._current[e].mode), station
            )
        put(sp.get("operation_mode"), mode_code(v2x.mode))
        if v2x.setpoint_w is not None:
            put(sp.get("setpoint"), float(v2x.setpoint_w))
        if v2x.baseline_w is not None or v2x.curve:
            put(sp.get("baseline"), float(v2x.baseline_w or 0.0))
        if v2x.curve and "curve_hz" in sp:
            points = v2x.curve[: self.config.curve_slots]
            for i in range(self.config.curve_slots):
                hz, watts = points[i] if i < len(points) else (0.0, 0.0)
                put(f"{sp['curve_hz']}[{i + 1}]", float(hz))
                put(f"{sp['curve_w']}[{i + 1}]", float(watts))
            put(sp.get("curve_points"), len(points))
        if plan.threshold_mhz is not None:
            put(sp.get("update_threshold"), float(plan.threshold_mhz))
        return out

    def status(self) -> DriverStatus:
        link = self._link
        counters = dict(link.counters)
        if self.station.store is not None:
            counters["queue_pending"] = self.station.store.queue.pending_count
        return DriverStatus(self.name, self.kind, link.accepted, link.detail, counters)

    # ------------------------------------------------------------ network thread → scan thread
    def _publish_plan(self, plan: Plan) -> None:
        self._plan = plan

    def _on_link(self, link: LinkState) -> None:
        self._link = link
        try:
            if link.accepted:
                self._alarms.clear(ALARM_LINK)
            elif link.problem:
                self._alarms.raise_alarm(ALARM_LINK, "ocpp", link.problem, Severity.WARNING)
        except Exception:  # guarded: alarm subscribers must not break the link
            log.exception("OCPP: alarm update failed")


def _limit(value: float) -> float:
    return NO_LIMIT_W if not math.isfinite(value) else float(min(value, NO_LIMIT_W))
