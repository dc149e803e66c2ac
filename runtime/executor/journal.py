"""External writes and forces (dashboard, Modbus server, CLI), applied only at scan boundaries.

Other threads append commands; the scan thread drains them at the start of a scan. A force holds
its value until released: it is re-applied after the inputs are copied (so the program sees it) and
again after the scan (so outputs and the dashboard carry it). Every applied command is kept in a
short journal with its source and time, for the operator to see who changed what.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..state.program import PathError, ProgramState


@dataclass(frozen=True)
class JournalEntry:
    wall_time: float
    action: str  # write, force, release
    path: str
    value: Any
    source: str
    result: str  # "ok" or the reason it was refused


class Journal:
    def __init__(self, history: int = 500) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, Any, str]] = []
        self._forces: dict[str, Any] = {}
        self.history: deque[JournalEntry] = deque(maxlen=history)
        # commands queued or forces in place: the scan calls apply_pending only then; set under the
        # lock with every queued command, recomputed under it after a drain (nothing is missed)
        self.busy = False

    # ------------------------------------------------------------ any thread
    def write(self, path: str, value: Any, source: str = "api") -> None:
        with self._lock:
            self._pending.append(("write", path, value, source))
            self.busy = True

    def force(self, path: str, value: Any, source: str = "api") -> None:
        with self._lock:
            self._pending.append(("force", path, value, source))
            self.busy = True

    def release(self, path: str, source: str = "api") -> None:
        with self._lock:
            self._pending.append(("release", path, None, source))
            self.busy = True

    def release_all(self, source: str = "api") -> None:
        with self._lock:
            for path in list(self._forces):
                self._pending.append(("release", path, None, source))
                self.busy = True

    def forces(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._forces)

    def forcing(self) -> bool:
        """Whether any force is in place (the scan thread's check after every scan: no lock, no copy;
        only the scan thread changes the forces)."""
        return bool(self._forces)

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            return list(self.history)

    # ------------------------------------------------------------ scan thread
    def apply_pending(self, state: ProgramState) -> list[str]:
        """Drain the queued commands into ``state`` (start of scan), then apply the forces.
        Returns the paths whose force was released (the caller restores their input value)."""
        released: list[str] = []
        if self._pending:
            with self._lock:
                pending, self._pending = self._pending, []
            for action, path, value, source in pending:
                if self._apply(state, action, path, value, source) and action == "release":
                    released.append(path)
        if self._forces:
            self.apply_forces(state)
        with self._lock:
            self.busy = bool(self._pending or self._forces)
        return released

    def apply_forces(self, state: ProgramState) -> None:
        for path, value in self._forces.items():
            state.accessor(path).set(value)

    def _apply(self, state: ProgramState, action: str, path: str, value: Any, source: str) -> bool:
        result = "ok"
        try:
            if action == "release":
                with self._lock:
                    if self._forces.pop(path, None) is None:
                        result = "not forced"
            else:
                state.write(path, value)
                if action == "force":
                    stored = state.accessor(path).get()
                    with self._lock:
                        self._forces[path] = stored
        except (PathError, ValueError, TypeError) as error:
            result = str(error)
        with self._lock:
            self.history.append(JournalEntry(time.time(), action, path, value, source, result))
        return result == "ok"

    def rebind(self, state: ProgramState) -> list[str]:
        """After an online change: drop forces of paths the new program no longer has."""
        dropped = []
        with self._lock:
            for path in list(self._forces):
                try:
                    state.accessor(path)
                except PathError:
                    dropped.append(path)
                    del self._forces[path]
        return dropped
