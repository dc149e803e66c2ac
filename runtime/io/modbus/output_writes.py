"""Writing one device's outputs, for its worker (``worker.DeviceWorker``): changed values and heartbeat
re-writes on the polling connection, and with ``write_connection`` the changes on the setpoint
connection (``write_link.WriteLink``), the first of them sent from the scan thread when that
connection is idle. A value is encoded (scaled, clamped to the point's limits) when it is written; the
device's answer decides what ``last_written`` reports. A change written on the setpoint connection
while a heartbeat re-write of the same output waits for its answer on the polling connection is
written once more after that answer: the device may apply the two in either order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ...executor.alarms import Severity
from .handover import Handover
from .model import PointSpec
from .points import PointProblem, encode_output
from .transport import CommError, DeviceException, ModbusTransport
from .write_link import WriteLink

_MS = 1_000_000


@dataclass
class OutputState:
    spec: PointSpec
    # (register address, scale factor): published in one assignment by the polling thread when it
    # resolves the output, read once per write by the scan and setpoint threads (never half updated)
    target: tuple[int, int | None] | None = None
    problem: str = ""
    last_write_ns: int = -(2**62)
    written: object = None  # the last value the device accepted
    written_ns: int | None = None  # when, in the executor's clock
    refreshing: bool = False  # a heartbeat re-write is waiting for its answer on the poll connection
    overtaken: bool = False  # meanwhile a change went out on the setpoint connection


class OutputWrites:
    def __init__(
        self,
        source: str,
        outputs: dict[str, OutputState],
        handover: Handover,
        heartbeat_ms: int | None,
        clock: Callable[[], int],
        counters: dict[str, int],
        raise_alarm: Callable[[str, str, Severity], None],
        clear_alarm: Callable[[str], None],
        accepted: Callable[[], None],
    ) -> None:
        self._source = source
        self._outputs = outputs
        self._handover = handover
        self._heartbeat_ms = heartbeat_ms
        self._clock = clock  # the executor's clock (what last_written reports)
        self._counters = counters
        self._raise = raise_alarm
        self._clear = clear_alarm
        self._accepted = accepted  # the device answered: it is not lost

    def send_change(self, link: WriteLink, now: int) -> Callable[[], None] | None:
        """The scan thread, the setpoint connection idle: the first changed output's request leaves
        now; returns what takes its answer (on the setpoint thread). Other changes stay for that thread:
        one request at a time on a connection."""
        desired, dirty = self._handover.take_outputs()
        names = [name for name in dirty if name in self._outputs]
        if not names:
            return None
        self._handover.redo(names[1:])
        output, value = self._outputs[names[0]], desired[names[0]]
        if output.refreshing:  # the device may apply the refresh after this change: write again
            output.overtaken = True
        encoded = self._encoded(output, value, now)
        if encoded is None:
            return None
        address, words, clamped = encoded
        spec = output.spec
        try:
            pending = link.send(spec.table, address, words, spec.write_function)
        except CommError:
            self._handover.redo([spec.name])
            raise
        return lambda: self._settle(output, value, clamped, lambda: link.answer(pending))

    def write(self, now: int, transport: ModbusTransport | WriteLink, heartbeats: bool) -> None:
        """The changed outputs (and, with ``heartbeats``, those due for a re-write), newest values."""
        desired, dirty = self._handover.take_outputs()
        heartbeat = self._heartbeat_ms if heartbeats else None
        for name, value in desired.items():
            output = self._outputs.get(name)
            if output is None:
                continue
            due = name in dirty or (heartbeat is not None and now - output.last_write_ns >= heartbeat * _MS)
            if not due:
                continue
            if output.refreshing:  # the device may apply the refresh after this change: write again
                output.overtaken = True
            self._write_one(output, value, now, transport)

    def refresh(self, now: int, transport: ModbusTransport, wake: threading.Event) -> None:
        """With a setpoint connection, the heartbeat re-writes go out here, between polls: a refresh
        waiting for its answer never holds a change back. A change written on the other connection
        while a refresh of the same output was in flight goes out once more after the refresh's answer
        (the device may have applied the two in either order)."""
        heartbeat = self._heartbeat_ms
        if heartbeat is None:
            return
        for name, output in self._outputs.items():
            if now - output.last_write_ns < heartbeat * _MS:
                continue
            output.refreshing, output.overtaken = True, False  # before reading the value (see above)
            value = self._handover.desired(name)
            try:
                if value is not None:
                    self._write_one(output, value, now, transport)
            finally:
                output.refreshing = False
            if output.overtaken:
                self._handover.redo([name])
                wake.set()  # the setpoint thread writes it again

    def _write_one(
        self, output: OutputState, value: object, now: int, transport: ModbusTransport | WriteLink
    ) -> None:
        encoded = self._encoded(output, value, now)
        if encoded is None:
            return
        address, words, clamped = encoded
        spec = output.spec
        self._settle(
            output, value, clamped, lambda: transport.write(spec.table, address, words, spec.write_function)
        )

    def _settle(
        self, output: OutputState, value: object, clamped: bool, answered: Callable[[], None]
    ) -> None:
        """Waits for the device's answer to a write (``answered``) and records what it means: accepted,
        refused (an alarm), or no answer (the change stays due; the ``CommError`` goes on up)."""
        try:
            answered()
        except DeviceException as exc:
            self._write_refused(output, exc)
            return
        except CommError:
            self._handover.redo([output.spec.name])
            raise
        self._write_accepted(output, value, clamped)

    def _encoded(
        self, output: OutputState, value: object, now: int
    ) -> tuple[int, list[int] | list[bool], bool] | None:
        """The address, the registers (or bits) of ``value`` and whether it was clamped; None when it
        cannot be written."""
        output.last_write_ns = now  # also after a failure: retried with the next heartbeat or change
        target = output.target
        if target is None:
            output.problem = output.problem or "output address unknown"
            return None
        address, sf = target
        try:
            words, clamped = encode_output(output.spec, value, sf)
        except PointProblem as exc:
            self._write_refused(output, exc)
            return None
        return address, words, clamped

    def _write_refused(self, output: OutputState, exc: Exception) -> None:
        output.problem = str(exc)
        self._raise(
            f"{self._source}:point:{output.spec.name}",
            f"output '{output.spec.name}': {exc}",
            Severity.WARNING,
        )

    def _write_accepted(self, output: OutputState, value: object, clamped: bool) -> None:
        self._accepted()
        self._counters["clamped"] += int(clamped)
        output.written, output.written_ns = value, self._clock()
        if output.problem:
            output.problem = ""
            self._clear(f"{self._source}:point:{output.spec.name}")
