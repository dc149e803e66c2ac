"""Per-task watchdog: fault a task after N consecutive overruns or one scan longer than its limit.

The scan thread checks finished scans (``check``). A scan that never ends is stopped from inside:
the scan context aborts WHILE/REPEAT loops at their back-edges once the watchdog time has passed
(real time) or the loop budget is spent (virtual time). As a backstop in real time, a monitor thread
raises ``ScanAborted`` asynchronously in the scan thread if a program body runs twice its limit
anyway (e.g. a huge FOR loop).
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


# PyThreadState_SetAsyncExc(unsigned long id, PyObject *exc): its own prototype (not the shared
# ctypes.pythonapi attribute), so a NULL ``exc`` (ctypes.py_object()) clears a pending exception.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def _drop_pending_abort() -> None:
    """Leave no abort pending in this thread once ``leave_body`` has returned.

    An abort still pending when this is called is not dropped: CPython (3.11 and later, what
    plcrun supports) checks for asynchronous exceptions as a function starts, so it is raised at
    this function's entry, before the ``try`` below, and comes out of ``leave_body``. The engine
    calls ``leave_body`` inside the ``try`` whose ``except`` catches a body's ``ScanAborted``, so the
    task faults as aborted: the body had run twice its limit, a scan the single-scan limit faults
    anyway (tests/executor/test_backstop.py shows the path). With nothing pending (the abort was delivered in the body, the
    usual case), one is injected and caught at once, which leaves nothing behind.

    What it does not do is clear the abort with ``PyThreadState_SetAsyncExc(id, NULL)``: that left
    the interpreter's "asynchronous exception pending" signal set for good, every later check of
    the eval loop took its slow path, and a thread under ``sys.settrace`` then hung (the full suite
    did, in bench/fixed_blocks.py's smoke test after tests/executor/test_backstop.py). On an
    interpreter that did not check at a function's entry, the injection below would replace the
    pending abort and be caught here, at the call's return or the loop's back-edge."""
    try:
        _set_async_exc(threading.get_ident(), ctypes.py_object(ScanAborted))
        for _ in range(2):  # the back-edge where the eval loop delivers it
            pass
    except ScanAborted:
        pass


_Body = tuple[str, int]
"""One run of a task's program body: (task, start ns). Compared by identity: each entry is a new
tuple, made in C (a class with ``__init__`` costs a Python call per scan, cold in real time)."""


MIN_LOOK_NS = 1_000_000  # the monitor never looks more often than this


class RunawayMonitor:
    """Backstop thread (real time only): aborts a program body that runs more than twice its limit.

    Only the program body is ever interrupted (``enter_body``/``leave_body`` mark it on the scan
    thread), never I/O or scheduler code. The decision and the injection happen under a lock that
    ``leave_body`` also takes, so nothing is injected once the body has returned; an abort injected
    just before that and not yet delivered is raised by ``leave_body`` itself (``_drop_pending_abort``),
    inside the engine's ``try`` around the body, never in the code after it.
    """

    def __init__(self, limits_ns: dict[str, int], now_ns: Callable[[], int]) -> None:
        self._limits = limits_ns
        self._now_ns = now_ns
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._target: int | None = None
        self._body: _Body | None = None
        self._aborted: _Body | None = None
        self._thread: threading.Thread | None = None
        self.aborts = 0
        self.aborted_thread: int | None = None  # the thread the last abort went to

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="plcrun-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def set_target(self, scan_thread_id: int | None) -> None:
        """The thread that runs scans (``Executor.run``), or None while nobody scans."""
        with self._lock:
            self._target = scan_thread_id
            self._body = None

    def enter_body(self, task: str, start_ns: int) -> None:
        """Called on the scan thread as the task's program body starts."""
        self._body = (task, start_ns)

    def leave_body(self) -> None:
        """Called on the scan thread when the body returned or raised; idempotent. Raises the
        body's ``ScanAborted`` if one was injected and not yet delivered."""
        with self._lock:
            body, self._body = self._body, None
            if body is not None and body is self._aborted:
                _drop_pending_abort()  # if not yet delivered

    def poll(self) -> bool:
        """One look at the running body; True if a ``ScanAborted`` was injected into it."""
        body = self._body
        if body is None or body is self._aborted:
            return False
        shortest = min(self._limits.values(), default=100_000_000)
        task, start_ns = body
        if self._now_ns() - start_ns <= 2 * self._limits.get(task, shortest):
            return False
        with self._lock:
            target = self._target
            if self._body is not body or target is None:
                return False  # the body returned meanwhile: nothing to abort
            self._aborted = body
            self.aborts += 1
            self.aborted_thread = target
            _set_async_exc(target, ctypes.py_object(ScanAborted))
        return True

    def next_look_ns(self, now_ns: int) -> int:
        """How long the monitor may sleep before its next look: until the running body has run twice
        its limit, else twice the shortest limit (a body that starts meanwhile is younger than that
        at the next look, which then sleeps until it would be overdue). An abort lands just after
        two limits; at 10 ms (100 ms limits) the thread wakes about 5 times a second (it polled
        every half limit, 20 times, before: 0.08 % of a core in the 10-EV main job)."""
        shortest = min(self._limits.values(), default=100_000_000)
        body = self._body
        if body is None or body is self._aborted:
            return 2 * shortest
        task, start_ns = body
        overdue_at = start_ns + 2 * self._limits.get(task, shortest) + 1
        return min(2 * shortest, max(MIN_LOOK_NS, overdue_at - now_ns))

    def _watch(self) -> None:
        while not self._stop.wait(self.next_look_ns(self._now_ns()) / 1e9):
            self.poll()
