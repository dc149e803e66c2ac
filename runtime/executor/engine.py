"""The executor: runs a compiled program's tasks on the scheduler, with I/O, watchdog and retain.

One scan of a task: inputs of its drivers are copied into the program (frozen for the scan) ->
queued external writes and forces are applied -> the task's program instances run -> forces are
re-applied -> outputs are handed to the drivers. Housekeeping (retain snapshots, garbage
collection) runs in the slack after scans. A runtime fault or the watchdog faults the task: its
outputs go to their safe values at once, an alarm is raised, the other tasks keep running.

The same executor runs in real time (``MonotonicClock``) and in virtual time (``VirtualClock``,
as fast as the CPU allows, deterministic).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler import st_types as T
from ..errors import PlcrunError
from ..state.faults import describe_fault
from ..state.program import CompiledProgram, PathError, ProgramState
from ..state.support import ScanAborted, TaskInfo
from .alarms import AlarmBus, Severity
from .clock import Clock, VirtualClock
from .config import ExecutorConfig as ExecutorConfig  # re-exported: its home was here
from .driver_api import Driver
from .image_store import attribute_reader
from .journal import Journal
from .online_change import OnlineChangeResult, prepare_online_change
from .process_image import ProcessImage
from .retain_store import RetainStore
from .scheduler import CostModel, ScanRecord, Scheduler, StopReason
from .slack_gate import SlackGate
from .watchdog import RunawayMonitor, TaskState, TaskSupervisor

log = logging.getLogger("plcrun.executor")


class NothingToRun(PlcrunError, ValueError):
    """The program declares no task (no PROGRAM, or a CONFIGURATION without program instances)."""


_RUNNING = TaskState.RUNNING
_PLACEHOLDER = re.compile(r"\[([A-Za-z_][A-Za-z0-9_]*)\]")


def _fill(text: str, fields: list[tuple[str, Any]]) -> str:
    for name, accessor in fields:
        value = accessor.get()
        shown = f"{value:.0f}" if isinstance(value, float) else str(value)
        text = text.replace("[" + name + "]", shown)
    return text


def _out_of_type(value: object, t: T.Type) -> str | None:
    """Why a restored value does not fit ``t`` (an integer out of range, a number that is not finite)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        limits = T.int_range(T.underlying(t)) or T.int_range(t)
        if limits is not None and not limits[0] <= value <= limits[1]:
            return f"{value} is outside {limits[0]}..{limits[1]} ({t.display})"
    if isinstance(value, float) and not math.isfinite(value) and T.is_real_like(T.underlying(t)):
        return f"{value} is not a finite number"
    return None


@dataclass
class _PendingChange:
    state: ProgramState
    image: ProcessImage
    result: OnlineChangeResult
    program: CompiledProgram
    done: threading.Event = field(default_factory=threading.Event)


class Executor:
    """Owns the program state and runs it; ``run`` is called on the scan thread."""

    def __init__(
        self,
        program: CompiledProgram,
        *,
        clock: Clock,
        drivers: list[Driver] | None = None,
        config: ExecutorConfig | None = None,
        alarms: AlarmBus | None = None,
        cost_model: CostModel | None = None,
    ) -> None:
        if not program.tasks:
            raise NothingToRun(
                f"{program.main_file}: nothing to run: declare a PROGRAM (or a CONFIGURATION with program instances)"
            )
        self.program = program
        self.clock = clock
        self.virtual = isinstance(clock, VirtualClock)
        self.drivers = list(drivers or [])
        self.config = config or ExecutorConfig()
        self.alarms = alarms or AlarmBus()
        self.journal = Journal()
        self.scheduler = Scheduler(clock, cost_model=cost_model)
        self.state = program.new_state()
        self.state.rt.loop_budget = self.config.loop_budget
        self.image = self._image(program, self.state)
        self.supervisors: dict[str, TaskSupervisor] = {}
        self._runners: dict[str, list[Callable[[], None]]] = {}
        self._pending: _PendingChange | None = None
        self._stop = threading.Event()
        self._monitor: RunawayMonitor | None = None
        self._retain: RetainStore | None = None
        self._slack_gate: SlackGate | None = None
        self._gate_lock = threading.Lock()
        self._retain_paths: list[str] = []
        self._last_retain_ns = 0
        self._retain_failures = 0
        self._started = False
        self._shut_down = False
        self._scan_thread: int | None = None  # ident of the thread inside run(), if any
        self._stats_reset_requested = False
        self._st_alarms = self._alarm_variables()
        self._alarm_seen: list[Any] | None = None  # the alarm variables' values at the last full check
        self._read_alarms = self._alarm_reader()
        self._located: dict[str, object] = {}  # located variables, published after every scan
        for task in program.tasks:
            wd = self.config.watchdog_per_task.get(task.name, self.config.watchdog)
            self.supervisors[task.name] = TaskSupervisor(task.name, task.interval_ns, wd)
            self.scheduler.add_task(
                task.name, task.interval_ns, self._make_scan(task.name), priority=task.priority
            )
            self.scheduler.stats.task(task.name).watchdog = "running"
        # each task's statistics and supervisor (both kept for good), for the on-time observer
        self._task_parts = {
            name: (self.scheduler.stats.tasks[name], supervisor)
            for name, supervisor in self.supervisors.items()
        }
        self._bind_runners()
        self.scheduler.add_scan_observer(self._after_scan, self._after_on_time_scan)
        self.scheduler.add_idle_hook(self._idle)

    def _image(self, program: CompiledProgram, state: ProgramState) -> ProcessImage:
        return ProcessImage(
            program, state, self.drivers, self.config.required_inputs, self.config.safe_overrides
        )

    def _bind_runners(self) -> None:
        self._runners = {
            t.name: [body for _, body in self.state.task_runners(t.name)] for t in self.program.tasks
        }

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Restore RETAIN values, start drivers (and, in real time, the runaway monitor)."""
        if self._started:
            return
        self._started = True
        self._open_retain()
        if self._retain is None:  # the idle hook only writes retain snapshots: not called for nothing
            self.scheduler.remove_idle_hook(self._idle)
        self._apply_parameters(self.state)
        for driver in self.drivers:
            driver.start(self.clock)
        if not self.virtual:
            limits = {name: sup.time_limit_ns for name, sup in self.supervisors.items()}
            self._monitor = RunawayMonitor(limits, self.clock.now_ns)
            self._monitor.start()  # it targets the thread inside run(), which may not be this one
            self.state.rt.wall_ns = self.clock.now_ns

    def run(
        self, duration_ns: int | None = None, max_scans: int | None = None, scans_per_task: int | None = None
    ) -> StopReason:
        """Run scans (on the calling thread) until ``duration_ns`` passed, ``max_scans`` scans ran,
        every task ran ``scans_per_task`` scans, or ``stop()``."""
        self.start()
        until = None
        if duration_ns is not None:
            until = self.clock.now_ns() + duration_ns
        self._scan_thread = threading.get_ident()
        monitor = self._monitor
        if monitor is not None:
            monitor.set_target(self._scan_thread)
        try:
            return self.scheduler.run(
                until_ns=until, max_scans=max_scans, stop_event=self._stop, scans_per_task=scans_per_task
            )
        finally:
            if monitor is not None:
                monitor.set_target(None)
            self._scan_thread = None

    def stop(self) -> None:
        """Ask ``run`` to return at the next scan boundary (any thread, e.g. a signal handler)."""
        self._stop.set()

    def shutdown(self) -> None:
        """Outputs to their safe values, final retain snapshot, drivers stopped (once: a second call,
        e.g. by the composition root after a real-time session, does nothing)."""
        if self._shut_down:
            return
        self._shut_down = True
        applied = self.image.apply_safe_state()
        if applied:
            log.info("%d outputs set to their safe values", len(applied))
        if self._monitor is not None:
            self._monitor.stop()
        if self._retain is not None:
            self._retain.submit(self._retain_snapshot())
            if not self._retain.flush(10.0):
                log.error("retain: the final snapshot could not be written")
            self._retain.close()
            self._retain = None
        for driver in self.drivers:
            try:
                driver.stop()
            except Exception:  # a driver failing to stop must not prevent the others
                log.exception("driver %s failed to stop", driver.name)

    # ------------------------------------------------------------ the scan
    def _make_scan(self, task: str) -> Callable[[int, int], None]:
        supervisor_of = self.supervisors
        scheduler = self.scheduler
        journal = self.journal
        running = TaskState.RUNNING
        if self.virtual:
            return self._make_virtual_scan(task)

        def scan(start_ns: int, release_ns: int) -> None:
            if self._pending is not None:
                self._apply_online_change()
            supervisor = supervisor_of[task]
            if supervisor.state is not running:
                self._scan_while_faulted(task, start_ns)
                return
            state = self.state
            rt = state.rt
            info = state.task_infos[task]
            rt.begin_scan(release_ns - (scheduler.epoch_ns or 0), info)
            rt.clock_now = start_ns
            rt.time_limit = start_ns + supervisor.time_limit_ns
            image = self.image
            unsafe = image.read_inputs(task, start_ns)
            if journal.busy:  # queued commands or forces
                released = journal.apply_pending(state)
                if released:
                    image.restore_inputs(released)
            monitor = self._monitor
            try:
                try:
                    if monitor is not None:
                        monitor.enter_body(task, start_ns)
                    for body in self._runners[task]:
                        body()
                finally:
                    rt.time_limit = None
                    if monitor is not None:
                        monitor.leave_body()
            except (Exception, ScanAborted) as error:
                self._body_fault(task, error, start_ns)
                return
            self._scan_outputs(task, state, info, unsafe, start_ns)

        return scan

    def _make_virtual_scan(self, task: str) -> Callable[[int, int], None]:
        """``_make_scan``'s scan on a virtual clock: the same steps without what virtual time never
        has (the runaway monitor and the wall-clock time limit, which stay None there: see
        ``start``), the task's supervisor looked up once (the executor keeps it for good), the
        schedule's epoch read without the property."""
        supervisor = self.supervisors[task]
        scheduler = self.scheduler
        journal = self.journal
        running = TaskState.RUNNING

        def scan(start_ns: int, release_ns: int) -> None:
            if self._pending is not None:
                self._apply_online_change()
            if supervisor.state is not running:
                self._scan_while_faulted(task, start_ns)
                return
            state = self.state
            rt = state.rt
            info = state.task_infos[task]
            rt.begin_scan(release_ns - (scheduler._epoch_ns or 0), info)
            rt.clock_now = start_ns
            image = self.image
            unsafe = image.read_inputs(task, start_ns)
            if journal.busy:  # queued commands or forces
                released = journal.apply_pending(state)
                if released:
                    image.restore_inputs(released)
            try:
                for body in self._runners[task]:
                    body()
            except (Exception, ScanAborted) as error:
                self._body_fault(task, error, start_ns)
                return
            self._scan_outputs(task, state, info, unsafe, start_ns)

        return scan

    def _scan_outputs(
        self, task: str, state: ProgramState, info: TaskInfo, unsafe: bool, start_ns: int
    ) -> None:
        """Both scans' end, after a body that returned: forces, the safe state of bad inputs, the
        outputs, the located variables, the ST alarms."""
        journal = self.journal
        image = self.image
        try:
            if journal.busy and journal.forcing():  # busy: set whenever a force is in place
                journal.apply_forces(state)
            if unsafe:
                image.apply_safe_state(task)
            image.write_outputs(task, start_ns)
            info.scans += 1
            if self.program.located:
                self._publish_located()
            if self._st_alarms:
                self._check_st_alarms()
        except ScanAborted as error:  # the backstop's abort arrived just after the body returned
            self._body_fault(task, error, start_ns)

    def _body_fault(self, task: str, error: BaseException, start_ns: int) -> None:
        if self._monitor is not None:
            self._monitor.leave_body()  # again: an abort may have arrived inside the first call
        if isinstance(error, ScanAborted) and not str(error):  # the backstop injects the bare class
            limit_ms = 2 * self.supervisors[task].time_limit_ns / 1e6
            error = ScanAborted(
                f"watchdog: scan ran more than {limit_ms:.1f} ms and was aborted"
            ).with_traceback(error.__traceback__)
        fault = describe_fault(error, self.program.sources)
        self._fault(task, str(fault), start_ns)

    def _scan_while_faulted(self, task: str, now_ns: int) -> None:
        """A faulted task keeps its outputs safe every period; restarts when its policy says so."""
        supervisor = self.supervisors[task]
        if supervisor.restart_due(now_ns):
            self.restart_task(task)
            return
        self.image.apply_safe_state(task)

    def _alarm_variables(self) -> list[list[Any]]:
        """BOOL variables declared with ``{attribute 'alarm' := 'text'}``: [path, accessor, text,
        severity, last value, placeholders, last message]. Severity: a text starting with 'warning:'
        or 'info:' (else critical). ``[name]`` in the text shows the value of the variable ``name`` of
        the same instance (e.g. ``short by [p_shortfall_w] W``); the message follows it while active."""
        found: list[list[Any]] = []
        for desc in self.program.variables(leaves=True):
            text = desc.attributes.get("alarm")
            if text is None or desc.type_name != "BOOL":
                continue
            severity = Severity.CRITICAL
            for name, level in (("warning:", Severity.WARNING), ("info:", Severity.INFO)):
                if text.lower().startswith(name):
                    severity, text = level, text[len(name) :].strip()
            text = text or desc.path
            owner = desc.path.rpartition(".")[0]
            fields: list[tuple[str, Any]] = []
            for name in _PLACEHOLDER.findall(text):
                try:
                    fields.append((name, self.state.accessor(f"{owner}.{name.lower()}")))
                except PathError:
                    continue
            found.append([desc.path, self.state.accessor(desc.path), text, severity, False, fields, ""])
        return found

    def _rebind_st_alarms(self) -> None:
        """After fresh instances (a task restart): the alarm entries read the new objects and keep
        what was last raised, so an alarm that was active is cleared by the fresh FALSE."""
        previous = {entry[0]: entry for entry in self._st_alarms}
        self._st_alarms = self._alarm_variables()
        for entry in self._st_alarms:
            old = previous.get(entry[0])
            if old is not None:
                entry[4], entry[6] = old[4], old[6]
        self._alarm_seen = None
        self._read_alarms = self._alarm_reader()

    def _alarm_reader(self) -> Callable[[], list[Any]]:
        """Reads every alarm BOOL at once: straight from where they live when the accessors say."""
        accessors = [entry[1] for entry in self._st_alarms]
        holders = [acc.holder for acc in accessors]
        keys = [acc.key for acc in accessors]
        if all(type(key) is str for key in keys) and None not in holders:
            return attribute_reader(holders, [str(key) for key in keys])
        return lambda: [acc.get() for acc in accessors]

    def _check_st_alarms(self) -> None:
        # one C-level pass over the alarm BOOLs; the per-alarm work only when one changed or an
        # active alarm's message shows values ([name] placeholders) that may have moved
        values = self._read_alarms()
        if values == self._alarm_seen:
            return
        live = False
        for entry in self._st_alarms:
            path, accessor, text, severity, last, fields, shown = entry
            now = bool(accessor.get())
            if now and fields:
                live = True
            if now == last and not (now and fields):
                continue
            entry[4] = now
            if now:
                message = _fill(text, fields) if fields else text
                if message != shown:
                    entry[6] = message
                    self.alarms.raise_alarm(f"st:{path}", "program", message, severity)
            else:
                entry[6] = ""
                self.alarms.clear(f"st:{path}")
        self._alarm_seen = None if live else values

    def _publish_located(self) -> None:
        located = self.program.located
        if located:
            state = self.state
            self._located = {address: state.accessor(address).get() for address in located}

    def read_values(self, paths: Sequence[str]) -> dict[str, object]:
        """Stored values (enums as numbers, TIME in ns) of elementary variables; any thread, not
        consistent across variables. Unknown paths are left out."""
        state = self.state
        out: dict[str, object] = {}
        for path in paths:
            try:
                out[path] = state.accessor(path).get()
            except PathError:
                continue
        return out

    def located_values(self) -> dict[str, object]:
        """Values of the located variables (%I, %Q, %M) as of the end of the last scan; any thread."""
        return self._located

    def slack_gate(self) -> SlackGate:
        """The one gate through which other threads' work (dashboard, SCADA server) waits for this
        executor's slack (slack_gate.py); made on first use."""
        with self._gate_lock:
            if self._slack_gate is None:
                self._slack_gate = SlackGate(self)
            return self._slack_gate

    def request_stats_reset(self) -> None:
        """Reset the scan statistics at the next scan boundary (safe from any thread)."""
        self._stats_reset_requested = True

    def _after_on_time_scan(self, task: str, release_ns: int) -> None:
        """``_after_scan`` of a scan that started on its release and took no time (the scheduler's
        virtual-time run path): the watchdog has nothing to see, the last execution time is 0."""
        info = self.state.task_infos.get(task)
        if self._stats_reset_requested or (info is not None and info.reset_requested):
            self._after_scan(ScanRecord(task, release_ns, release_ns, release_ns, 0, False))
            return
        stats, supervisor = self._task_parts[task]
        if info is not None:
            info.overruns = stats.overruns
            info.last_exec_ns = 0
        if supervisor.state is _RUNNING:
            supervisor.consecutive_overruns = 0  # what check() does with a short scan on time

    def _after_scan(self, record: ScanRecord) -> None:
        if self._stats_reset_requested:
            self._stats_reset_requested = False
            self.scheduler.reset_stats()
        info = self.state.task_infos.get(record.task)
        stats = self.scheduler.stats.tasks[record.task]
        if info is not None:
            if info.reset_requested:
                stats.overruns = 0
                info.reset_requested = False
            info.overruns = stats.overruns
            info.last_exec_ns = record.end_ns - record.start_ns
        supervisor = self.supervisors[record.task]
        if supervisor.state is not TaskState.RUNNING:
            return
        reason = supervisor.check(record)
        if reason is not None:
            self._fault(record.task, reason, record.end_ns)

    def _fault(self, task: str, message: str, now_ns: int) -> None:
        supervisor = self.supervisors[task]
        supervisor.fault(message, now_ns)
        self.scheduler.stats.task(task).watchdog = "faulted"
        applied = self.image.apply_safe_state(task)
        self.alarms.raise_alarm(
            f"task:{task}", "executor", f"task '{task}' faulted: {message}", Severity.CRITICAL
        )
        log.error("task %s faulted: %s; %d outputs set to safe values", task, message, len(applied))

    def restart_task(self, task: str) -> None:
        """Cold-restart a faulted task's program instances (RETAIN values restored) and run it again."""
        names = [inst.name for inst in self.program.instances if inst.task == task]
        kept = self._retain_snapshot()
        self.state.reset_instances(names)
        for path, value in kept.items():
            if any(path.startswith(n.lower() + ".") for n in names):
                self.state.accessor(path).set(value)
        self.image = self._image(self.program, self.state)
        self._bind_runners()
        self._rebind_st_alarms()
        supervisor = self.supervisors[task]
        supervisor.state = TaskState.RUNNING
        self.scheduler.stats.task(task).watchdog = "running"
        self.alarms.clear(f"task:{task}", f"task '{task}' restarted")

    # ------------------------------------------------------------ housekeeping
    def _idle(self, now_ns: int, slack_ns: int) -> None:
        if self._retain is not None and now_ns - self._last_retain_ns >= self.config.retain_interval_s * 1e9:
            self._last_retain_ns = now_ns
            self._retain.submit(self._retain_snapshot())
            self._check_retain_writes(self._retain)

    def _check_retain_writes(self, store: RetainStore) -> None:
        """A snapshot that could not be written raises an alarm; the next good write clears it."""
        status = store.status()
        failures = int(status["failures"])  # type: ignore[call-overload]
        if failures > self._retain_failures:
            self.alarms.raise_alarm(
                "retain:write",
                "executor",
                f"retain snapshot not written: {status['last_error']}",
                Severity.CRITICAL,
            )
        elif failures == self._retain_failures and status["last_error"] is None:
            self.alarms.clear("retain:write")
        self._retain_failures = failures

    def _open_retain(self) -> None:
        layout = self.program.retain_layout()
        self._retain_paths = [path for path, _ in layout]
        if not layout or self.config.retain_path is None:
            return
        store = RetainStore(
            Path(self.config.retain_path),
            self.program.layout_hash(layout),
            layout,
            key=self.config.retain_key,
        )
        loaded = store.load()
        for message in loaded.messages:
            log.info("retain: %s", message)
        unusable = [
            m
            for m in loaded.messages
            if "no retain file" not in m and not m.startswith(("cold start", "using the backup"))
        ]
        if loaded.layout_changes:
            self.alarms.raise_alarm("retain", "executor", "; ".join(loaded.messages[-1:]), Severity.WARNING)
        elif unusable:  # a corrupt file: a cold start (or the backup) is worth an operator's look
            what = "cold start" if loaded.values is None else f"restored from the {loaded.source}"
            self.alarms.raise_alarm(
                "retain", "executor", f"retain file unusable ({unusable[0]}); {what}", Severity.WARNING
            )
        rejected: list[str] = []
        for path, value in (loaded.values or {}).items():
            try:
                accessor = self.state.accessor(path)
                why = _out_of_type(value, accessor.type)
                if why is not None:
                    raise ValueError(why)
                accessor.set(value)
            except (PathError, KeyError, ValueError, TypeError) as error:
                log.warning("retain: %s not restored: %s", path, error)
                rejected.append(path)
        if rejected:
            self.alarms.raise_alarm(
                "retain:values",
                "executor",
                f"{len(rejected)} retained values did not fit their types and kept their initial values: "
                + ", ".join(rejected[:5]),
                Severity.WARNING,
            )
        store.start()
        self._retain = store
        self._retain_failures = 0

    def _retain_snapshot(self) -> dict[str, object]:
        return {path: self.state.accessor(path).get() for path in self._retain_paths}

    # ------------------------------------------------------------ online change
    def online_change(self, program: CompiledProgram, timeout_s: float = 10.0) -> OnlineChangeResult:
        """Swap in ``program`` at the next scan boundary, keeping variables whose path and type are
        unchanged. Prepared on the calling thread; refused (old program keeps running) on mismatch."""
        prepared = prepare_online_change(self.program, program, self.drivers, self.config)
        if not prepared.result.accepted or prepared.state is None or prepared.image is None:
            return prepared.result
        pending = _PendingChange(prepared.state, prepared.image, prepared.result, program)
        self._pending = pending
        scan_thread = self._scan_thread
        if scan_thread is None or scan_thread == threading.get_ident():
            return pending.result  # nobody is scanning now: it applies at the start of the next scan
        if not pending.done.wait(timeout_s):
            self._pending = None
            pending.result.accepted = False
            pending.result.reason = "no scan boundary within the timeout; nothing changed"
        return pending.result

    def _apply_online_change(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        try:
            pending.result.transfer(self.state, pending.state)
        except Exception as error:  # the old state is read, never written: it scans on unchanged
            pending.result.accepted = False
            pending.result.reason = f"the kept values could not be carried over ({error}); nothing changed"
            log.error("online change refused: %s", pending.result.reason)
            pending.done.set()
            return
        self._apply_parameters(pending.state)
        pending.state.rt.loop_budget = self.state.rt.loop_budget
        pending.state.rt.wall_ns = self.state.rt.wall_ns
        for name, info in self.state.task_infos.items():
            pending.state.task_infos[name] = info
        self.program = pending.program
        old_state, self.state = self.state, pending.state
        if old_state.namespace is not self.state.namespace:
            old_state.release()
        self.image = pending.image
        self._retain_paths = [p for p, _ in pending.program.retain_layout()]
        self.journal.rebind(self.state)
        self._bind_runners()
        self._st_alarms = self._alarm_variables()
        self._alarm_seen = None
        self._read_alarms = self._alarm_reader()
        log.info("online change applied: %s", pending.result.summary())
        pending.done.set()

    def _apply_parameters(self, state: ProgramState) -> None:
        for path, value in self.config.parameters.items():
            try:
                state.accessor(path).set(value)
            except (PathError, TypeError, ValueError, OverflowError) as error:  # a changed program
                log.warning("parameter %s = %r not applied: %s", path, value, error)

    # ------------------------------------------------------------ views
    def status(self) -> dict[str, Any]:
        return {
            "tasks": {name: sup.to_json() for name, sup in self.supervisors.items()},
            "forces": self.journal.forces(),
            "alarms": [a.to_json() for a in self.alarms.active()],
        }

    def read(self, path: str) -> Any:
        return self.state.read(path)

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()
