"""What the dashboard changes in the running program: writes, forces, releases, statistics reset and
task restarts.

Nothing here touches program state directly. Writes and forces are checked (path, type, value) on
the request thread and then queued in the executor's journal, which applies them at the next scan
boundary. A task restart must run on the scan thread, so it is queued for the scheduler's idle slot
after a scan (``ScanThreadQueue``). Every command answers at once with what was queued.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..compiler.value_check import ValueProblem, parse_value
from ..executor.engine import Executor
from ..executor.watchdog import TaskState
from ..state.program import PathError
from .routes import ApiError
from .variables import canonical, kind_of, resolve

SOURCE = "dashboard"


class ScanThreadQueue:
    """Runs queued callables on the scan thread, in the slack after a scan (an idle hook)."""

    def __init__(self, executor: Executor) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Callable[[], None]] = deque()
        executor.scheduler.add_idle_hook(self._run_pending)

    def submit(self, action: Callable[[], None]) -> None:
        with self._lock:
            self._queue.append(action)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _run_pending(self, now_ns: int, slack_ns: int) -> None:
        if not self._queue:
            return
        with self._lock:
            actions = list(self._queue)
            self._queue.clear()
        for action in actions:
            action()


class Commands:
    def __init__(self, executor: Executor, source: str = SOURCE) -> None:
        self.executor = executor
        self.source = source
        self.scan_thread = ScanThreadQueue(executor)
        self._restarts_queued: set[str] = set()

    def _writable(self, path: object) -> tuple[str, Any]:
        if not isinstance(path, str) or not path.strip():
            raise ApiError(400, "'path' must be a variable path such as main.grid_hz")
        program = self.executor.program
        try:
            node = resolve(program, path)
        except PathError as error:
            raise ApiError(404, str(error)) from None
        if node.type is None:
            raise ApiError(400, f"'{node.path}' is a program instance, not a variable")
        if not node.elementary:
            raise ApiError(
                400,
                f"'{node.path}' is a {kind_of(node)} ({node.type.display}); write its elements one by one",
            )
        if node.var is not None and node.var.constant:
            raise ApiError(400, f"'{node.path}' is a CONSTANT")
        return node.path, node.type

    def _checked(self, body: dict[str, Any]) -> tuple[str, Any]:
        path, var_type = self._writable(body.get("path"))
        if "value" not in body:
            raise ApiError(400, "'value' is missing")
        try:
            return path, parse_value(body["value"], var_type)
        except ValueProblem as error:
            raise ApiError(400, f"{path}: {error}") from None

    def write(self, body: dict[str, Any]) -> dict[str, Any]:
        path, value = self._checked(body)
        self.executor.journal.write(path, value, self.source)
        return {"queued": True, "action": "write", "path": path, "value": value}

    def force(self, body: dict[str, Any]) -> dict[str, Any]:
        path, value = self._checked(body)
        self.executor.journal.force(path, value, self.source)
        return {"queued": True, "action": "force", "path": path, "value": value}

    def release(self, body: dict[str, Any]) -> dict[str, Any]:
        journal = self.executor.journal
        if body.get("all") is True:
            forced = sorted(journal.forces())
            journal.release_all(self.source)
            return {"queued": True, "action": "release", "paths": forced}
        path = body.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ApiError(400, "'path' must be a variable path (or send {\"all\": true})")
        program = self.executor.program
        try:
            wanted = resolve(program, path).path
        except PathError as error:
            raise ApiError(404, str(error)) from None
        for forced_path in journal.forces():
            if canonical(program, forced_path) == wanted:
                journal.release(forced_path, self.source)
                return {"queued": True, "action": "release", "path": wanted}
        raise ApiError(409, f"'{wanted}' is not forced")

    def reset_stats(self) -> dict[str, Any]:
        self.executor.request_stats_reset()
        return {"queued": True, "action": "reset statistics"}

    def restart_task(self, name: str) -> dict[str, Any]:
        supervisors = self.executor.supervisors
        supervisor = supervisors.get(name)
        if supervisor is None:
            raise ApiError(404, f"no task named '{name}' (tasks: {', '.join(supervisors)})")
        if supervisor.state is not TaskState.FAULTED:
            raise ApiError(
                409, f"task '{name}' is {supervisor.state.value}; only a faulted task is restarted"
            )
        if name not in self._restarts_queued:
            self._restarts_queued.add(name)
            self.scan_thread.submit(lambda: self._restart_on_scan_thread(name))
        return {"queued": True, "action": "restart", "task": name}

    def _restart_on_scan_thread(self, name: str) -> None:
        self._restarts_queued.discard(name)
        if self.executor.supervisors[name].state is TaskState.FAULTED:
            self.executor.restart_task(name)
