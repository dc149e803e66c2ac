"""A second TCP connection to a device that only writes changed outputs (``write_connection = true``).

On one connection a setpoint that changes while a poll is waiting for a slow answer (a charger
answering in 5-50 ms, a poll of several blocks) waits for that answer, tens of ms. With its own
connection it goes out at once; the device must accept two Modbus TCP clients (most gateways and many
chargers do; check yours). The polling thread still connects first, discovers SunSpec models and
resolves output addresses, and sends the heartbeat re-writes between its polls (so a refresh waiting
for its answer never holds a change back here). When the connection is idle, the scan thread itself
puts a changed setpoint's request on the wire (``poke``: no thread wake-up between the scan and the
device); this module's thread waits for the answer, writes the newest value of every other changed
output one request at a time (changes that come while a write is out coalesce into one), and
reconnects with the device's backoff. On stop it writes pending (safe) values first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from ...executor.clock import WorkerTime
from .handover import Handover
from .model import DeviceSpec
from .transport import CommError
from .write_link import WriteLink


class DeviceWorker(Protocol):
    """What the writer needs of ``worker.DeviceWorker`` (no import: the worker imports this module)."""

    spec: DeviceSpec

    @property
    def stopping(self) -> threading.Event: ...

    @property
    def handover(self) -> Handover: ...

    @property
    def time(self) -> WorkerTime: ...

    def write_changes_via(self, link: WriteLink) -> None: ...

    def send_change_via(self, link: WriteLink) -> Callable[[], None] | None: ...


log = logging.getLogger("plcrun.io.modbus")
_MS = 1_000_000


class SetpointWriter:
    def __init__(self, worker: DeviceWorker) -> None:
        spec = worker.spec
        self.worker = worker
        self.link = WriteLink(
            spec.name,
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
        self._lock = threading.Lock()  # whoever holds it owns the connection (scan thread: never waits)
        self._finish: Callable[[], None] | None = None  # takes the answer to what the scan thread sent

    def poke(self) -> None:
        """The scan thread: outputs changed. If the connection is idle, the first change leaves now."""
        if self.ready.is_set() and self._lock.acquire(blocking=False):
            try:
                # stopping is looked at under the lock: the setpoint thread's last pass and its close
                # hold it, so nothing leaves after that pass
                if not self.worker.stopping.is_set() and self._finish is None and self.link.connected:
                    self._finish = self.worker.send_change_via(self.link)
            except CommError:  # the setpoint thread reconnects and writes it again
                pass
            except Exception:  # a bug here must not end the scan: the setpoint thread writes the change
                log.exception(
                    "device '%s': sending a setpoint from the scan thread failed", self.worker.spec.name
                )
                self.worker.handover.redo()
            finally:
                self._lock.release()
        self.wake.set()

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
                    with self._lock:
                        finish, self._finish = self._finish, None
                        if finish is not None:
                            finish()
                        if not self.link.connected:
                            self.link.connect()
                        worker.write_changes_via(self.link)
                    backoff_ms = spec.reconnect_min_ms
                except CommError as exc:
                    with self._lock:
                        self.link.close()
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
        with self._lock:
            self.link.close()
