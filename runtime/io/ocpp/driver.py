"""The OCPP station as an executor ``Driver``: the scan thread only swaps snapshots.

- The station (websocket, schema validation, store) runs in a process of its own (``child.py``), so
  that it never holds the scan's interpreter lock; a bridge thread of the driver passes messages.
- ``write_outputs`` (scan thread, every scan): every ``snapshot_interval_s`` the output values the
  image hands over (a new dict each scan) are appended to a deque by reference (no copy, no lock, no
  system call on the scan thread); the bridge integrates energy over every one of them in executor
  time and sends the latest session fields to the station.
- ``read_inputs`` (scan thread, every scan): the station sends a precomputed ``Plan`` (composite
  schedules for the next hour); the scan compares the wall time with the next change of the plan and
  emits samples only when a value changes, so a scan without change costs a couple of comparisons.
  A new plan (new profile, curve, transaction) is picked up at the next scan.
- The local frequency response never waits on the station (the program reads the meter itself;
  profiles stay valid offline).
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import logging
import math
import multiprocessing
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ...executor.alarms import AlarmBus, Severity
from ...executor.clock import VirtualClock
from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from ...executor.threads import start_thread
from .child import child_main
from .config import OcppConfig
from .schedule import MODES, Values
from .station import LinkState, Plan
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
        self._energy: dict[int, list[float]] = {}  # bridge thread: integrated energy per EVSE
        self._link = LinkState()
        self._counters: dict[str, int] = {}
        # scan thread -> bridge: (executor ns, wall s, the image's output values), bounded
        self._handover: collections.deque[tuple[int, float, Mapping[str, object]]] = collections.deque(
            maxlen=10_000
        )
        self._energy_ns: int | None = None  # bridge thread
        self._bridge: threading.Thread | None = None
        self._process: Any = None
        self._conn: Any = None
        self._stopping = threading.Event()
        self._real_time = True
        self._restarts = 0
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
        self._real_time = not isinstance(clock, VirtualClock)
        self._spawn()
        self._link.detail = f"connecting to {self.config.host}:{self.config.port}"
        self._bridge = start_thread(self._bridge_loop, "plcrun-ocpp-bridge")

    def _spawn(self) -> None:
        # forkserver: a clean single-threaded server forks the station (fast, no inherited threads)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["plcrun.io.ocpp.child"])
        conn, child_end = context.Pipe(duplex=True)
        level = logging.getLogger("plcrun").getEffectiveLevel()
        process = context.Process(
            target=child_main,
            args=(self.config, child_end, self._real_time, self.wall(), level),
            name="plcrun-ocpp",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._conn, self._process = conn, process

    def _bridge_loop(self) -> None:
        """Snapshots to the station, plans and state back; a station process that dies is started
        again with back-off (its store keeps the queue). Guarded: the scan goes on regardless."""
        delay = 1.0
        while not self._stopping.is_set():
            conn = self._conn
            try:
                snapshot = self._sessions()
                if snapshot is not None:
                    conn.send(("snapshot", snapshot[0], snapshot[1]))
                if conn.poll(self.config.snapshot_interval_s):
                    self._on_message(conn.recv())
                    delay = 1.0
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                process = self._process
                process.join(1.0)
                self._restarts += 1
                text = (
                    f"the OCPP station process ended (exit code {process.exitcode}); restarted in {delay:g} s"
                )
                log.error("%s", text)
                self._on_link(LinkState(detail=text, problem=text))
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, 30.0)
                with contextlib.suppress(OSError):
                    conn.close()
                self._spawn()
            except Exception:
                log.exception("OCPP bridge: message handling failed")

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "plan":
            self._plan = message[1]
        elif kind == "link":
            self._on_link(message[1])
        elif kind == "status":
            self._counters = message[1]

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._stopping.set()  # first: the bridge must not start the station again
        with contextlib.suppress(OSError, EOFError, BrokenPipeError):
            self._conn.send(("stop",))
        if self._bridge is not None:
            self._bridge.join(5)
        process = self._process
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
        with contextlib.suppress(OSError):
            self._conn.close()
        self._process = None
        self._alarms.clear(ALARM_LINK)

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        last = self._last_snapshot_ns
        if last is not None and now_ns - last < self._snapshot_every_ns:
            return
        self._last_snapshot_ns = now_ns
        # the image builds a new dict every scan: keep the reference, the bridge does the rest
        self._handover.append((now_ns, self.wall(), values))

    def _sessions(self) -> tuple[float, dict[int, Session]] | None:
        """Bridge thread: integrate energy over every handed-over snapshot, return the latest sessions."""
        latest = None
        while self._handover:
            now_ns, wall, values = self._handover.popleft()
            last = self._energy_ns
            dt_h = 0.0 if last is None else (now_ns - last) / 3.6e12
            self._energy_ns = now_ns
            for evse, fields in self.config.session_paths.items():
                energy = self._energy.setdefault(evse, [0.0, 0.0, 0.0])  # charged, discharged, last power
                if energy[2] > 0:
                    energy[0] += energy[2] * dt_h
                else:
                    energy[1] -= energy[2] * dt_h
                present = values.get(fields.get("p_present_w", ""))
                ok = bool(values.get(fields["connected"])) and isinstance(present, float | int)
                energy[2] = float(present) if ok and math.isfinite(present) else 0.0  # type: ignore[arg-type]
            latest = (wall, values)
        if latest is None:
            return None
        sessions: dict[int, Session] = {}
        for evse, fields in self.config.session_paths.items():
            session = Session()
            for name, path in fields.items():
                value = latest[1].get(path)
                if value is not None:
                    setattr(session, name, value)
            energy = self._energy[evse]
            session.charged_wh, session.discharged_wh = energy[0], energy[1]
            sessions[evse] = session
        return latest[0], sessions

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
        counters = {**self._counters, "station_restarts": self._restarts}
        return DriverStatus(self.name, self.kind, link.accepted, link.detail, counters)

    # ------------------------------------------------------------ bridge thread
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
