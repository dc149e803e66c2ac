"""The thread that talks to one device: connect, discover, poll, write, heartbeat, reconnect.

Everything the scan thread sees goes through two small locked hand-overs: ``take_samples()`` swaps
out the input samples that changed since the last call, ``set_outputs()`` drops the newest output
values in. The thread itself may block on the network as long as it likes; the scan never waits.

Quality: GOOD after a successful read with a usable value; BAD when the device answered but the value
is unusable (exception response, "not implemented", NaN, implausible, broken scale factor); STALE when
a GOOD value has not been refreshed within its poll group's freshness limit; COMM_LOST when the
device stopped answering. A sample's timestamp is the time of the answer that carried it: a steady
value is fresh as long as the device answers (a point's ``stuck_ms`` option turns a value that never
changes STALE, for devices known to freeze their registers).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...executor.alarms import AlarmBus, Severity
from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.driver_api import DriverStatus, Quality, Sample
from .codec import decode, encode
from .errors import GATEWAY_EXCEPTIONS, POINT_EXCEPTIONS
from .handover import Handover
from .model import DeviceSpec, PointSpec, PollGroupSpec
from .output_writes import OutputState, OutputWrites
from .plan import Block, Item, plan_blocks
from .points import PointProblem, decode_input, scale_power
from .setpoint_writer import SetpointWriter
from .sunspec import SunSpecError, SunSpecMap, discover
from .transport import CommError, DeviceException, ModbusTransport
from .write_link import WriteLink

log = logging.getLogger("plcrun.io.modbus")
_MS = 1_000_000


@dataclass
class _Input:
    spec: PointSpec
    item: Item | None = None  # None while unresolved (SunSpec point not found)
    sf_item: Item | None = None
    unresolved: str = ""


@dataclass
class _Group:
    spec: PollGroupSpec
    points: list[_Input]
    blocks: list[Block] = field(default_factory=list)
    due_ns: int = 0


class DeviceWorker:
    """Owns the connection to one device and the thread that uses it."""

    def __init__(
        self, spec: DeviceSpec, alarms: AlarmBus | None = None, worker_time: WorkerTime = REAL_TIME
    ) -> None:
        self.spec = spec
        self._time = worker_time  # schedules polls, retries, backoff and heartbeats; tests inject ManualTime
        self._alarms = alarms
        self._source = f"modbus:{spec.name}"
        self._stopping = threading.Event()
        self._transport = ModbusTransport(
            spec.name, spec.host, spec.port, spec.unit, spec.timeout_ms / 1000, worker_time, self._stopping
        )
        self._clock: Callable[[], int] = worker_time.now_ns
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._inputs = [_Input(p) for p in spec.inputs()]
        self._outputs = {p.name: OutputState(p) for p in spec.outputs()}
        self._groups = [
            _Group(group, [i for i in self._inputs if i.spec.poll_group == name])
            for name, group in spec.poll_groups.items()
        ]
        self._bad_items: dict[Item, tuple[str, int]] = {}  # item -> (problem, next retry, monotonic ns)
        self._sunspec: SunSpecMap | None = None
        self._failures = 0
        self._lost = False
        self._last_error = ""
        self._counters = {"polls": 0, "writes": 0, "clamped": 0, "reconnects": 0}
        groups = spec.poll_groups
        stale_limits = {p.name: (p.stale_ms or groups[p.poll_group].stale_ms) * _MS for p in spec.inputs()}
        self._handover = Handover(spec.inputs(), stale_limits)
        self._writer = SetpointWriter(self) if spec.write_connection and self._outputs else None
        self._writes = OutputWrites(
            self._source,
            self._outputs,
            self._handover,
            spec.heartbeat_ms,
            lambda: self._clock(),
            self._counters,
            self._raise,
            self._clear,
            self._write_accepted,
        )

    # ---- scan-thread side -------------------------------------------------------------------------------
    def start(self, clock_ns: Callable[[], int]) -> None:
        self._clock = clock_ns
        self._handover.clock = clock_ns
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"modbus-{self.spec.name}", daemon=True)
        self._thread.start()
        if self._writer is not None:
            self._writer.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def take_samples(self, now_ns: int) -> dict[str, Sample]:
        """The samples that changed since the last call (GOOD ones not refreshed in time are STALE)."""
        return self._handover.take(now_ns)

    def set_outputs(self, values: Mapping[str, object], force: bool = False) -> None:
        """Newest output values by point name; changed ones (all with ``force``) are written at once
        (with a setpoint connection that is idle, the request leaves from this thread)."""
        if self._handover.set_outputs(values, force):
            if self._writer is None:
                self._wake.set()
            else:
                self._writer.poke()

    def status(self) -> DriverStatus:
        qualities = self._handover.qualities(self.spec.points)
        problems = self.problems()
        counters = dict(self._counters)
        counters.update(
            requests=self._transport.requests,
            timeouts=self._transport.timeouts,
            exceptions=self._transport.exceptions,
            connects=self._transport.connects,
        )
        detail = self._last_error if self._lost else (self._sunspec.summary() if self._sunspec else "")
        if problems and not self._lost:
            detail = "; ".join(f"{name}: {text}" for name, text in sorted(problems.items()))
        connected = self._transport.connected and not self._lost
        return DriverStatus(self.spec.name, "modbus-tcp", connected, detail, counters, qualities)

    def problems(self) -> dict[str, str]:
        problems = self._handover.problems()
        problems.update({name: o.problem for name, o in self._outputs.items() if o.problem})
        return problems

    def last_written(self, name: str) -> tuple[object, int] | None:
        """The value the device last accepted for output ``name`` and when (executor clock), if any."""
        output = self._outputs.get(name)
        if output is None or output.written_ns is None:
            return None
        return output.written, output.written_ns

    @property
    def sunspec_map(self) -> SunSpecMap | None:
        return self._sunspec

    # ---- publishing ---------------------------------------------------------------------------------------
    def _publish(self, point: PointSpec, quality: Quality, value: object = None, problem: str = "") -> None:
        # the alarm first: a scan that sees the point BAD (or GOOD again) finds its alarm raised (or cleared);
        # only this worker publishes this device's points, so the answer cannot change in between
        if self._handover.would_report(point, quality, problem):
            self._point_alarm(point, quality, problem)
        self._handover.publish(point, quality, value, problem)

    def _point_alarm(self, point: PointSpec, quality: Quality, problem: str) -> None:
        key = f"{self._source}:point:{point.name}"
        where = f" ({point.path})" if point.path else ""
        if quality is Quality.BAD:
            if self._alarms is None:  # with an alarm bus the alarm is the log line (no duplicate)
                log.warning("device '%s' point '%s'%s is BAD: %s", self.spec.name, point.name, where, problem)
            self._raise(key, f"point '{point.name}'{where}: {problem}", Severity.WARNING)
        elif quality is Quality.GOOD and self._alarms is not None:
            self._alarms.clear(key)

    def _raise(self, key: str, message: str, severity: Severity = Severity.CRITICAL) -> None:
        if self._alarms is not None:
            self._alarms.raise_alarm(key, self._source, message, severity)

    # ---- the thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff_ms = self.spec.reconnect_min_ms
        while not self._stopping.is_set():
            self._wake.clear()
            opening = setting_up = not self._transport.connected
            try:
                if opening:
                    self._transport.connect()
                    opening = False
                    self._set_up()
                    backoff_ms = self.spec.reconnect_min_ms
                    setting_up = False
                self._cycle()
            except CommError as exc:
                if opening:  # no connection at all (refused, unreachable): lost at once
                    self._transport.close()
                    self._declare_lost(str(exc))
                else:  # a request failed, while setting up or polling: one of comm_lost_after
                    self._request_failed(exc)
                if opening or (setting_up and self._lost):  # back off; else reconnect at once
                    self._time.wait(self._wake, backoff_ms / 1000)
                    backoff_ms = min(backoff_ms * 2, self.spec.reconnect_max_ms)
                continue
            except Exception as exc:  # a malformed answer or a bug must not end the device thread
                log.exception("device '%s': unexpected error", self.spec.name)
                self._transport.close()
                self._declare_lost(f"internal error: {type(exc).__name__}: {exc}")
                self._time.wait(self._wake, self.spec.reconnect_max_ms / 1000)
                continue
            self._wait_until_due()
        self._flush_on_stop()

    def _flush_on_stop(self) -> None:
        if self._writer is not None:  # it writes the pending (safe) values on its own connection
            self._writer.join(max(2.0, 3 * self.spec.timeout_ms / 1000))
            self._transport.close()
            return
        if self._transport.connected and self._handover.has_dirty():
            try:
                self._write_outputs(self._time.now_ns())
            except CommError as exc:
                log.warning("device '%s': safe values not written before stop: %s", self.spec.name, exc)
        self._transport.close()

    def _request_failed(self, exc: CommError) -> None:
        self._transport.close()
        self._failures += 1
        self._last_error = str(exc)
        self._handover.redo()  # re-send everything once the device is back
        if self._failures >= self.spec.comm_lost_after:
            self._declare_lost(str(exc))
        else:
            log.info("device '%s': %s (retrying)", self.spec.name, exc)

    def _declare_lost(self, reason: str) -> None:
        self._last_error = reason
        spec = self.spec
        message = (
            f"device '{spec.name}' at {spec.host}:{spec.port} (unit {spec.unit}) is not answering: {reason}"
        )
        if not self._lost and self._alarms is None:  # with an alarm bus the alarm is the log line
            log.warning("%s", message)
        self._lost = True
        self._raise(f"{self._source}:comm", message)
        for point in self._inputs:
            self._publish(point.spec, Quality.COMM_LOST, problem=reason)

    def _answered(self) -> None:
        self._failures = 0
        if self._lost:
            self._lost = False
            if self._alarms is None:
                log.info("device '%s' answers again", self.spec.name)
            else:
                self._alarms.clear(f"{self._source}:comm", f"device '{self.spec.name}' answers again")

    def _read(self, item: Item | Block) -> list[int] | list[bool]:
        words = self._transport.read(item.table, item.address, item.count)
        self._answered()
        return words

    def _wait_until_due(self) -> None:
        now = self._time.now_ns()
        due = [g.due_ns for g in self._groups if g.blocks]
        heartbeat = self.spec.heartbeat_ms
        if heartbeat is not None:
            wanted = self._handover.wanted()
            due += [o.last_write_ns + heartbeat * _MS for n, o in self._outputs.items() if n in wanted]
        due += [retry for _problem, retry in self._bad_items.values()]
        due.append(now + 1000 * _MS)
        self._time.wait(self._wake, max(0, min(due) - now) / 1e9)

    # ---- connecting ---------------------------------------------------------------------------------------
    def _set_up(self) -> None:
        """On a new connection: SunSpec discovery, addresses, init writes, then poll at once."""
        self._counters["reconnects"] += 1
        self._sunspec = None
        if self.spec.sunspec_bases is not None:
            try:
                self._sunspec = discover(
                    lambda a, n: self._read(Item("holding", a, n)), self.spec.sunspec_bases
                )
            except SunSpecError as exc:
                self._raise(f"{self._source}:sunspec", f"device '{self.spec.name}': {exc}")
                sunspec_problem = str(exc)
            else:
                sunspec_problem = ""
                log.info("device '%s': %s", self.spec.name, self._sunspec.summary())
                if self._alarms is not None:
                    self._alarms.clear(f"{self._source}:sunspec")
        for point in self._inputs:
            self._resolve_input(point, sunspec_problem if self.spec.sunspec_bases is not None else "")
        for output in self._outputs.values():
            self._resolve_output(output)
        self._init_writes()
        if self._writer is not None:  # it connects now, so that the first change can leave at once
            self._writer.ready.set()
            self._writer.wake.set()
        self._bad_items.clear()
        self._replan()
        now = self._time.now_ns()
        for group in self._groups:
            group.due_ns = now
        self._handover.redo()

    def _resolve_input(self, point: _Input, sunspec_problem: str) -> None:
        spec = point.spec
        point.item = point.sf_item = None
        point.unresolved = ""
        if spec.sunspec is None:
            assert spec.address is not None
            point.item = Item(spec.table, spec.address, spec.registers)
            if spec.scale_register is not None:
                point.sf_item = Item(spec.table, spec.scale_register, 1)
            return
        try:
            if self._sunspec is None:
                raise SunSpecError(sunspec_problem)
            resolved = self._sunspec.resolve(spec.sunspec, spec.sunspec_sf)
        except SunSpecError as exc:
            point.unresolved = str(exc)
            self._publish(spec, Quality.BAD, problem=point.unresolved)
            return
        point.item = Item("holding", resolved.address, spec.registers)
        if resolved.sf_address is not None:
            point.sf_item = Item("holding", resolved.sf_address, 1)

    def _resolve_output(self, output: OutputState) -> None:
        """Resolves the output's address and scale factor into locals and publishes them in one
        assignment: the scan and setpoint threads keep writing with the previous target meanwhile
        (a reconnect re-resolves), never with an address whose scale factor is still being read."""
        spec = output.spec
        output.problem = ""
        address, sf_address = spec.address, spec.scale_register
        if spec.sunspec is not None:
            if self._sunspec is None:
                output.problem, output.target = "SunSpec map not available", None
                return
            try:
                resolved = self._sunspec.resolve(spec.sunspec, spec.sunspec_sf)
            except SunSpecError as exc:
                output.problem, output.target = str(exc), None
                self._raise(
                    f"{self._source}:point:{spec.name}", f"output '{spec.name}': {exc}", Severity.WARNING
                )
                return
            address, sf_address = resolved.address, resolved.sf_address
        sf: int | None = None
        if sf_address is not None:
            try:
                sf = int(decode(self._read(Item(spec.table, sf_address, 1)), "int16"))
                scale_power(sf)
            except (DeviceException, PointProblem) as exc:
                output.problem = f"scale factor at {sf_address} unusable: {exc}"
                output.target = None
                return
        if address is None:
            output.target = None
            return
        output.target = (address, sf)

    def _init_writes(self) -> None:
        for write in self.spec.init_writes:
            address = write.address
            if write.sunspec is not None:
                try:
                    if self._sunspec is None:
                        raise SunSpecError("SunSpec map not available")
                    address = self._sunspec.resolve(write.sunspec).address
                except SunSpecError as exc:
                    self._raise(
                        f"{self._source}:init", f"device '{self.spec.name}': {write.description}: {exc}"
                    )
                    continue
            assert address is not None
            try:
                self._transport.write(write.table, address, encode(write.value, write.dtype), None)
                self._answered()
            except DeviceException as exc:
                self._raise(f"{self._source}:init", f"device '{self.spec.name}': {write.description}: {exc}")

    def _replan(self) -> None:
        exclude = frozenset(self._bad_items)
        for group in self._groups:
            items = [
                i for p in group.points if p.item is not None for i in (p.item, p.sf_item) if i is not None
            ]
            group.blocks = plan_blocks(items, self.spec.max_block, self.spec.max_gap, exclude)

    # ---- one pass of work ---------------------------------------------------------------------------------
    def _cycle(self) -> None:
        now = self._time.now_ns()
        if self._writer is None:
            self._write_outputs(now)
        else:
            self._refresh_outputs(now)
        for group in self._groups:
            if group.due_ns <= now:
                self._poll(group)
                group.due_ns += group.spec.period_ms * _MS
                if group.due_ns <= now:  # fell behind: skip the missed polls instead of bunching them
                    group.due_ns = now + group.spec.period_ms * _MS
        self._retry_bad_items(now)

    def _poll(self, group: _Group) -> None:
        values: dict[Item, list[int] | list[bool]] = {}
        failed: dict[Item, str] = {}
        replan = False
        for block in group.blocks:
            if self._writer is None and self._handover.has_dirty():
                self._write_outputs(self._time.now_ns())  # a new setpoint before the rest of the poll
            try:
                words = self._read(block)
            except DeviceException as exc:
                if exc.code in GATEWAY_EXCEPTIONS:
                    raise CommError(exc.message) from None
                if exc.code not in POINT_EXCEPTIONS:
                    failed.update((item, exc.message) for item in block.items)
                elif len(block.items) == 1:
                    self._mark_bad(block.items[0], exc.message)
                    replan = True
                else:
                    replan |= self._split(block, values, failed)
                continue
            for item in block.items:
                values[item] = words[item.address - block.address : item.end - block.address]
        self._counters["polls"] += 1
        if replan:
            self._replan()
        now = self._time.now_ns()
        for point in group.points:
            self._evaluate(point, values, failed, now)

    def _split(
        self, block: Block, values: dict[Item, list[int] | list[bool]], failed: dict[Item, str]
    ) -> bool:
        """A request failed for some address in it: read item by item to find the culprit."""
        found = False
        for item in block.items:
            try:
                values[item] = self._read(item)
            except DeviceException as exc:
                if exc.code in POINT_EXCEPTIONS:
                    self._mark_bad(item, exc.message)
                    found = True
                else:
                    failed[item] = exc.message
        return found

    def _mark_bad(self, item: Item, message: str) -> None:
        self._bad_items[item] = (message, self._time.now_ns() + self.spec.retry_bad_ms * _MS)

    def _retry_bad_items(self, now: int) -> None:
        recovered = False
        for item, (message, retry_at) in list(self._bad_items.items()):
            if retry_at > now:
                continue
            try:
                self._read(item)
            except DeviceException:
                self._bad_items[item] = (message, now + self.spec.retry_bad_ms * _MS)
                continue
            del self._bad_items[item]
            recovered = True
        if recovered:
            self._replan()

    def _evaluate(
        self, point: _Input, values: dict[Item, list[int] | list[bool]], failed: dict[Item, str], now: int
    ) -> None:
        spec = point.spec
        if point.item is None:
            self._publish(spec, Quality.BAD, problem=point.unresolved)
            return
        for item in (point.item, point.sf_item):
            if item is None:
                continue
            if item in self._bad_items:
                self._publish(spec, Quality.BAD, problem=self._bad_items[item][0])
                return
            if item in failed:
                self._publish(spec, Quality.BAD, problem=failed[item])
                return
            if item not in values:
                return  # not read in this poll
        self._handover.refreshed(spec)
        try:
            sf = None
            if point.sf_item is not None:
                sf = int(decode([int(w) for w in values[point.sf_item]], "int16"))
            value = decode_input(spec, values[point.item], sf)
        except PointProblem as problem:
            current = self._handover.current(spec.name)
            if problem.detail and (current is None or current.quality is not Quality.BAD):
                log.warning("device '%s' point '%s': %s", self.spec.name, spec.name, problem.detail)
            self._publish(spec, Quality.BAD, problem=problem.problem)
            return
        self._publish(spec, Quality.GOOD, value)

    # ---- the setpoint connection (SetpointWriter's thread) -----------------------------------------------
    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    @property
    def handover(self) -> Handover:
        return self._handover

    @property
    def time(self) -> WorkerTime:
        return self._time

    def write_changes_via(self, link: WriteLink) -> None:
        """The changed outputs, newest values, on the setpoint connection (the writer's thread)."""
        self._writes.write(self._time.now_ns(), link, heartbeats=False)

    def send_change_via(self, link: WriteLink) -> Callable[[], None] | None:
        """The scan thread: the first changed output's request now, on the idle setpoint connection."""
        return self._writes.send_change(link, self._time.now_ns())

    def _write_outputs(self, now: int) -> None:
        self._writes.write(now, self._transport, heartbeats=True)

    def _refresh_outputs(self, now: int) -> None:
        if self._writer is not None:
            self._writes.refresh(now, self._transport, self._writer.wake)

    def _write_accepted(self) -> None:
        self._answered()
        self._counters["writes"] += 1

    def _clear(self, key: str) -> None:
        if self._alarms is not None:
            self._alarms.clear(key)
