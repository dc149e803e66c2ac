"""A second TCP connection to a device that only writes changed outputs (``write_connection = true``).

On one connection a setpoint that changes while a poll is waiting for a slow answer (a charger
answering in 5-50 ms, a poll of several blocks) waits for that answer, tens of ms. With its own
connection and thread it goes out at once; the device must accept two Modbus TCP clients (most
gateways and many chargers do; check yours). The polling thread still connects first, discovers
SunSpec models and resolves output addresses, and sends the heartbeat re-writes between its polls
(so a refresh waiting for its answer never holds a change back here); this thread writes the newest
value of every changed output (changes that come while a write is out coalesce into one), and
reconnects on its own with the device's backoff. On stop it writes pending (safe) values first.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from ...executor.clock import WorkerTime
from .handover import Handover
from .model import DeviceSpec
from .transport import CommError, ModbusTransport


class DeviceWorker(Protocol):
    """What the writer needs of ``worker.DeviceWorker`` (no import: the worker imports this module)."""

    spec: DeviceSpec

    @property
    def stopping(self) -> threading.Event: ...

    @property
    def handover(self) -> Handover: ...

    @property
    def time(self) -> WorkerTime: ...

    def write_changes_via(self, transport: ModbusTransport) -> None: ...


log = logging.getLogger("plcrun.io.modbus")
_MS = 1_000_000


class SetpointWriter:
    def __init__(self, worker: DeviceWorker) -> None:
        spec = worker.spec
        self.worker = worker
        self.transport = ModbusTransport(
            f"{spec.name} (setpoints)",
            spec.host,
            spec.port,
            spec.unit,
            spec.timeout_ms / 1000,
            worker.time,
            worker.stopping,
        )
        self.wake = threading.Event()
        self.ready = threading.Event()  # set once the polling thread resolved the output addresses
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"modbus-{self.worker.spec.name}-setpoints", daemon=True
        )
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        worker, spec = self.worker, self.worker.spec
        backoff_ms = spec.reconnect_min_ms
        while True:
            stopping = worker.stopping.is_set()
            self.wake.clear()
            if self.ready.is_set():
                try:
                    if not self.transport.connected:
                        self.transport.connect()
                    worker.write_changes_via(self.transport)
                    backoff_ms = spec.reconnect_min_ms
                except CommError as exc:
                    self.transport.close()
                    worker.handover.redo()
                    if stopping:
                        log.warning("device '%s': safe values not written before stop: %s", spec.name, exc)
                        break
                    log.info("device '%s': setpoint connection: %s (retrying)", spec.name, exc)
                    worker.time.wait(self.wake, backoff_ms / 1000)
                    backoff_ms = min(backoff_ms * 2, spec.reconnect_max_ms)
                    continue
            if stopping:
                break
            worker.time.wait(self.wake, 1.0)  # woken by every change
        self.transport.close()
