"""Real-time runs for the command line: real-time setup, GC control, status lines, clean stop.

``RealtimeSession`` wraps an ``Executor`` with what a long-running process needs: SCHED_FIFO and
friends where the OS allows them, garbage collection kept out of scans, a status line every few
seconds, Ctrl-C/SIGTERM handled at a scan boundary (outputs to safe values, retain saved), and the
final statistics written as JSON.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TextIO

from ..compiler.diagnostics import CompileError
from ..state.program import CompiledProgram
from .engine import Executor
from .gc_control import GcController, GcPolicy
from .rt_setup import RealtimeRequired, RtConfig, RtSession, apply_rt_setup, log_rt_report
from .sd_notify import NotifySocket, ServiceNotifier, watchdog_interval_ns
from .stats import format_ns
from .threads import COMPILE_STACK_BYTES, start_thread

log = logging.getLogger("plcrun.run")


def status_line(executor: Executor) -> str:
    parts = []
    for name, sup in executor.supervisors.items():
        stats = executor.scheduler.stats.task(name)
        wake = stats.wake_latency.summary()
        execution = stats.execution.summary()
        parts.append(
            f"{name}: {stats.scans} scans, exec p99 {format_ns(execution.get('p99'))}, "
            f"wake p99 {format_ns(wake.get('p99'))}, overruns {stats.overruns}, {sup.state.value}"
        )
    return " | ".join(parts)


class RealtimeSession:
    def __init__(
        self,
        executor: Executor,
        *,
        status_every_s: float = 10.0,
        status_out: TextIO = sys.stderr,
        rt_config: RtConfig | None = None,
        on_started: Callable[[], None] | None = None,
        reload: Callable[[], CompiledProgram] | None = None,
        watch: Path | None = None,
        require_realtime: bool = False,
        service_env: Mapping[str, str] | None = None,
    ) -> None:
        self.executor = executor
        self.status_every_s = status_every_s
        self.status_out = status_out
        self.rt_config = rt_config or RtConfig()
        self.on_started = on_started
        self.reload = reload
        self.watch = watch
        self.require_realtime = require_realtime
        self.service_env = service_env  # None: the process environment (NOTIFY_SOCKET, WATCHDOG_USEC)
        self.notifier: ServiceNotifier | None = None
        self._stop_status = threading.Event()
        self._reloading = threading.Lock()
        self._reload_again = False

    def reload_program(self) -> None:
        """Compile the program again and swap it in at a scan boundary (SIGHUP, --watch). A request
        while one runs (a native build takes 30-50 s) makes that one read the file again at its end."""
        if self.reload is None:
            return
        self._reload_again = True
        while self._reload_again:
            if not self._reloading.acquire(blocking=False):
                log.info("online change: a reload is running; the file is read again when it ends")
                return
            try:
                self._reload_again = False
                self._reload_once()
            finally:
                self._reloading.release()

    def _reload_once(self) -> None:
        assert self.reload is not None
        try:
            program = self.reload()
        except CompileError as error:
            log.error("online change refused, the running program stays:\n%s", error.render())
            return
        running = self.executor.program
        if running.native is not None and program.native is running.native:
            if program.sources == running.sources:  # its one native module is the running state's
                log.info("online change: the program is unchanged; nothing to swap")
                return
            # the same generated code (a safe value, RETAIN or a task changed): the running
            # state holds the module, so the new state runs interpreted (ProgramState says so)
        result = self.executor.online_change(program)
        if result.accepted:
            log.info("online change: %s", result.summary())
            for item in result.initialised:
                log.info("online change: initialised %s", item)
        else:
            log.error("online change refused: %s", result.reason)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        start_thread(self.reload_program, "plcrun-reload", stack_bytes=COMPILE_STACK_BYTES)

    def _watch_loop(self) -> None:
        assert self.watch is not None
        last = self.watch.stat().st_mtime_ns
        while not self._stop_status.wait(1.0):
            try:
                current = self.watch.stat().st_mtime_ns
            except OSError:
                continue
            if current != last:
                last = current
                # compiling recurses deeply: on a thread with a large stack, not this small one
                start_thread(self.reload_program, "plcrun-reload", stack_bytes=COMPILE_STACK_BYTES).join()

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("stopping (signal %d) at the next scan boundary", signum)
        self.executor.stop()

    def _status_loop(self) -> None:
        while not self._stop_status.wait(self.status_every_s):
            print(status_line(self.executor), file=self.status_out, flush=True)

    def _attach_notifier(self) -> ServiceNotifier | None:
        """Under systemd (``Type=notify``): READY after the first scans, watchdog pings from the scan
        thread while scans keep their deadlines (see ``sd_notify``)."""
        sock = NotifySocket.from_environment(self.service_env)
        if sock is None:
            return None
        executor = self.executor
        tasks = ", ".join(f"{t.name} every {t.interval_ns / 1e6:g} ms" for t in executor.program.tasks)
        notifier = ServiceNotifier(
            sock,
            executor.scheduler.stats,
            executor.supervisors,
            watchdog_ns=watchdog_interval_ns(self.service_env),
            status=f"scanning {executor.program.main_file} ({tasks})",
        )
        executor.scheduler.add_scan_observer(notifier)
        self.notifier = notifier
        return notifier

    def run(self, duration_s: float | None = None) -> None:
        executor = self.executor
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._handle_signal)
            if self.reload is not None:
                previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        rt: RtSession | None = None
        notifier: ServiceNotifier | None = None
        gc_controller: GcController | None = None
        try:
            # Every thread first, the real-time setup after: a new thread inherits its creator's
            # SCHED_FIFO priority and CPU affinity, which belong to the scan thread alone.
            executor.start()
            threading.Thread(target=self._status_loop, name="plcrun-status", daemon=True).start()
            if self.watch is not None and self.reload is not None:
                threading.Thread(target=self._watch_loop, name="plcrun-watch", daemon=True).start()
            rt = apply_rt_setup(self.rt_config)
            log_rt_report(rt, log)
            if self.require_realtime and not rt.applied("sched_fifo"):
                raise RealtimeRequired(rt.item("sched_fifo").detail)
            notifier = self._attach_notifier()
            gc_controller = GcController(executor.scheduler.stats, GcPolicy())
            gc_controller.start(executor.clock.now_ns())
            executor.scheduler.add_idle_hook(gc_controller.idle)
            if self.on_started is not None:
                self.on_started()
            executor.run(duration_ns=None if duration_s is None else int(duration_s * 1e9))
        finally:
            self._stop_status.set()
            if notifier is not None:
                notifier.stopping()
            executor.shutdown()
            if gc_controller is not None:
                gc_controller.stop()
            if rt is not None:
                rt.close()
            if notifier is not None:
                notifier.sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print(status_line(executor), file=self.status_out, flush=True)


def write_stats_json(executor: Executor, path: str) -> None:
    data = {
        "written_at": time.time(),
        "program": executor.program.main_file,
        "stats": executor.scheduler.stats.to_json(),
        "watchdog": {name: sup.to_json() for name, sup in executor.supervisors.items()},
    }
    Path(path).write_text(json.dumps(data, indent=2, allow_nan=False, default=str))
