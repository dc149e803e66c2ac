"""Per-task watchdog: fault a task after N consecutive overruns or one scan longer than its limit.

The scan thread checks finished scans (``check``). A scan that never ends is stopped from inside:
the scan context aborts WHILE/REPEAT loops at their back-edges once the watchdog time has passed
(real time) or the loop budget is spent (virtual time). As a backstop in real time, a monitor thread
raises ``ScanAborted`` asynchronously in the scan thread if a scan runs twice its limit anyway
(e.g. a huge FOR loop).
"""

from __future__ import annotations

import ctypes
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..state.support import ScanAborted
from .scheduler import ScanRecord


class TaskState(enum.Enum):
    RUNNING = "running"
    FAULTED = "faulted"
    STOPPED = "stopped"


@dataclass(frozen=True)
class WatchdogConfig:
    """``time_factor``: a single scan longer than time_factor x interval faults at once;
    ``overrun_limit``: this many consecutive overruns fault the task (0 disables it);
    ``restart``: "stay" (stay stopped until restarted by hand) or "restart" after ``restart_delay_s``."""

    time_factor: float = 10.0
    overrun_limit: int = 3
    restart: str = "stay"
    restart_delay_s: float = 5.0

    def __post_init__(self) -> None:
        if self.time_factor <= 1.0:
            raise ValueError("watchdog time_factor must be greater than 1 (a multiple of the task interval)")
        if self.overrun_limit < 0:
            raise ValueError("watchdog overrun_limit must be 0 (off) or more")
        if self.restart not in ("stay", "restart"):
            raise ValueError("watchdog restart must be 'stay' or 'restart'")
        if self.restart_delay_s < 0:
            raise ValueError("watchdog restart_delay_s must not be negative")


class TaskSupervisor:
    """Watchdog state of one task."""

    def __init__(self, name: str, interval_ns: int, config: WatchdogConfig) -> None:
        self.name = name
        self.interval_ns = interval_ns
        self.config = config
        self.time_limit_ns = int(interval_ns * config.time_factor)
        self.state = TaskState.RUNNING
        self.consecutive_overruns = 0
        self.fault_message = ""
        self.faulted_at_ns: int | None = None
        self.faults = 0

    def check(self, record: ScanRecord) -> str | None:
        """Why this finished scan faults the task, or None."""
        duration = record.end_ns - record.start_ns
        if duration > self.time_limit_ns:
            return (
                f"watchdog: scan of task '{self.name}' took {duration / 1e6:.1f} ms, "
                f"more than {self.time_limit_ns / 1e6:.1f} ms"
            )
        self.consecutive_overruns = self.consecutive_overruns + 1 if record.overrun else 0
        limit = self.config.overrun_limit
        if limit and self.consecutive_overruns >= limit:
            return f"watchdog: task '{self.name}' overran {self.consecutive_overruns} periods in a row"
        return None

    def fault(self, message: str, now_ns: int) -> None:
        self.state = TaskState.FAULTED
        self.fault_message = message
        self.faulted_at_ns = now_ns
        self.consecutive_overruns = 0
        self.faults += 1

    def restart_due(self, now_ns: int) -> bool:
        return (
            self.state is TaskState.FAULTED
            and self.config.restart == "restart"
            and self.faulted_at_ns is not None
            and now_ns - self.faulted_at_ns >= int(self.config.restart_delay_s * 1e9)
        )

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "message": self.fault_message,
            "faults": self.faults,
            "time_limit_ns": self.time_limit_ns,
            "overrun_limit": self.config.overrun_limit,
            "restart": self.config.restart,
        }


class RunawayMonitor:
    """Backstop thread (real time only): aborts a scan that runs more than twice its limit."""

    def __init__(
        self,
        current_scan: Callable[[], tuple[str, int] | None],
        limits_ns: dict[str, int],
        now_ns: Callable[[], int],
    ) -> None:
        self._current_scan = current_scan
        self._limits = limits_ns
        self._now_ns = now_ns
        self._stop = threading.Event()
        self._target: int | None = None
        self._thread: threading.Thread | None = None
        self.aborts = 0

    def start(self, scan_thread_id: int) -> None:
        self._target = scan_thread_id
        self._thread = threading.Thread(target=self._watch, name="plcrun-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _watch(self) -> None:
        shortest = min(self._limits.values(), default=100_000_000)
        period_s = max(0.005, shortest / 4e9)
        aborted_start: int | None = None
        while not self._stop.wait(period_s):
            current = self._current_scan()
            if current is None or self._target is None:
                continue
            task, started = current
            if started == aborted_start:
                continue
            if self._now_ns() - started > 2 * self._limits.get(task, shortest):
                aborted_start = started
                self.aborts += 1
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._target), ctypes.py_object(ScanAborted)
                )
