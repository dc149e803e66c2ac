"""Cyclic tasks on absolute deadlines, run one at a time on one scan thread by fixed priority.

Model (details and definitions in docs/executor.md):

* Task ``t`` is released at ``epoch + t.offset + k * t.interval`` (k = 0, 1, ...). The epoch is taken
  once, on the first ``run``: the next whole ``align_ns`` of the clock plus ``phase_offset_ns`` (0.5 ms
  by default, which keeps deadlines off the kernel's 4 ms tick).
* Non-preemptive: a scan always runs to its end. When several tasks are due, the one with the lowest
  priority number (0 = highest, as in IEC 61131-3) runs first; equal priorities go by earliest
  release, then by the order the tasks were added.
* A scan that starts one or more whole periods after its release serves the latest release that has
  passed; the releases in between are *skipped* and counted, never caught up in a burst.
* *Wake latency* = scan start − the release it serves. *Overrun* = the scan ends strictly after the
  next release of its own task (end > release + interval).
* After each scan, if the time to the next release of any task exceeds ``idle_threshold`` (a fraction
  of the shortest interval), the idle hooks run (garbage collection, retain flush trigger, ...).

``run`` behaves the same with ``MonotonicClock`` and ``VirtualClock``; with a virtual clock an optional
cost model says how much virtual time each scan takes, so tests can produce overruns on purpose.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .clock import Clock, VirtualClock
from .stats import DEFAULT_WINDOW, ExecutorStats, TaskStats

ScanFunction = Callable[[int, int], None]
"""``run_scan(scan_start_ns, deadline_ns)``: ``deadline_ns`` is the release time the scan serves."""
CostModel = Callable[[str, int], int]
"""``cost(task_name, scan_index)`` -> virtual ns the scan takes (scan_index counts from 0 per task)."""
IdleHook = Callable[[int, int], None]
"""``hook(now_ns, slack_ns)``: called in the slack after a scan; must return well within ``slack_ns``."""

DEFAULT_PHASE_OFFSET_NS = 500_000
DEFAULT_ALIGN_NS = 1_000_000
DEFAULT_IDLE_FRACTION = 0.3


class StopReason(enum.Enum):
    UNTIL = "until"  # the clock reached until_ns
    MAX_SCANS = "max_scans"
    STOPPED = "stopped"  # stop_event was set


class ScanRecord(NamedTuple):
    """One finished scan, given to scan observers (e.g. the executor's watchdog). A named tuple:
    one is made per scan, and a frozen dataclass costs three times as much to build."""

    task: str
    deadline_ns: int
    start_ns: int
    end_ns: int
    skipped: int
    overrun: bool


ScanObserver = Callable[[ScanRecord], None]
OnTimeObserver = Callable[[str, int], None]
"""``on_time(task_name, release_ns)``: a scan observer's short form for a scan that started on its
release, took no time, skipped nothing and did not overrun (virtual time without a cost model); it
must do exactly what the observer would do with that scan's ``ScanRecord``."""

_STATS_BATCH = 256  # on-time scans recorded at once in the virtual-time run path


@dataclass(slots=True, eq=False)
class Task:
    """A cyclic task. ``run_scan`` may be replaced between scans (online change)."""

    name: str
    interval_ns: int
    priority: int
    run_scan: ScanFunction
    offset_ns: int
    stats: TaskStats
    order: int
    next_release_ns: int = 0
    scan_index: int = 0


class Scheduler:
    """Runs cyclic tasks on one thread (the one calling ``run``)."""

    def __init__(
        self,
        clock: Clock,
        *,
        cost_model: CostModel | None = None,
        phase_offset_ns: int = DEFAULT_PHASE_OFFSET_NS,
        align_ns: int = DEFAULT_ALIGN_NS,
        idle_threshold_fraction: float = DEFAULT_IDLE_FRACTION,
        stats_window: int = DEFAULT_WINDOW,
    ) -> None:
        if cost_model is not None and not isinstance(clock, VirtualClock):
            raise ValueError("a scan cost model needs a VirtualClock (real scans take real time)")
        if align_ns <= 0:
            raise ValueError(f"align_ns must be > 0, got {align_ns}")
        if phase_offset_ns < 0:
            raise ValueError(f"phase_offset_ns must be >= 0, got {phase_offset_ns}")
        if not 0.0 <= idle_threshold_fraction <= 1.0:
            raise ValueError(f"idle_threshold_fraction must be in [0, 1], got {idle_threshold_fraction}")
        self.clock = clock
        self.stats = ExecutorStats(stats_window)
        self._virtual = clock if isinstance(clock, VirtualClock) else None
        self._cost_model = cost_model
        self._phase_offset_ns = phase_offset_ns
        self._align_ns = align_ns
        self._idle_fraction = idle_threshold_fraction
        self._tasks: list[Task] = []
        self._idle_hooks: list[IdleHook] = []
        self._observers: list[ScanObserver] = []
        self._on_time: list[OnTimeObserver | None] = []  # beside _observers, None: no short form
        self._observers_added = 0  # observers ever added (the virtual-time run path looks for new ones)
        self._unrecorded = 0  # on-time scans of _unrecorded_task not yet in its statistics
        self._unrecorded_first_ns = 0  # ... the first one's start
        self._unrecorded_task: Task | None = None
        self._epoch_ns: int | None = None
        self._running: Task | None = None
        self._running_since_ns = 0
        self._idle_threshold_ns = 0
        self.single_task_path = True
        """One task on a real clock runs through ``_run_one`` (False: ``run``'s general loop,
        which the tests compare it with)."""

    # --- configuration -------------------------------------------------------------------------

    def add_task(
        self, name: str, interval_ns: int, run_scan: ScanFunction, *, priority: int = 0, offset_ns: int = 0
    ) -> Task:
        if any(task.name == name for task in self._tasks):
            raise ValueError(f"task {name!r} is defined twice")
        if not isinstance(interval_ns, int) or interval_ns <= 0:
            raise ValueError(f"task {name!r}: interval must be a positive number of ns, got {interval_ns!r}")
        if not isinstance(priority, int) or priority < 0:
            raise ValueError(f"task {name!r}: priority must be an integer >= 0, got {priority!r}")
        if not 0 <= offset_ns < interval_ns:
            raise ValueError(f"task {name!r}: offset must be in [0, interval), got {offset_ns}")
        if self._epoch_ns is not None:
            raise RuntimeError(f"task {name!r}: tasks must be added before the scheduler first runs")
        stats = self.stats.add_task(name, interval_ns, priority)
        task = Task(name, interval_ns, priority, run_scan, offset_ns, stats, len(self._tasks))
        self._tasks.append(task)
        return task

    def add_idle_hook(self, hook: IdleHook) -> None:
        self._idle_hooks.append(hook)

    def remove_idle_hook(self, hook: IdleHook) -> None:
        """Take ``hook`` out (the others keep their order); nothing when it is not there."""
        if hook in self._idle_hooks:
            self._idle_hooks.remove(hook)

    def add_scan_observer(self, observer: ScanObserver, on_time: OnTimeObserver | None = None) -> None:
        """``observer(record)`` after every scan; ``on_time``, when given, instead of it for the
        on-time scans of the virtual-time run path (no record is built for those)."""
        self._observers.append(observer)
        self._on_time.append(on_time)
        self._observers_added += 1

    def reset_stats(self) -> None:
        """Reset the statistics, including on-time scans the virtual-time run path has not
        recorded yet (the scan thread only: e.g. from a scan observer)."""
        self._unrecorded = 0
        self.stats.reset()

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(self._tasks)

    @property
    def epoch_ns(self) -> int | None:
        """Release time of the first scan of every task with offset 0 (None before the first run)."""
        return self._epoch_ns

    @property
    def idle_threshold_ns(self) -> int:
        """Slack needed after a scan before the idle hooks run."""
        if not self._tasks:
            return 0
        return int(min(task.interval_ns for task in self._tasks) * self._idle_fraction)

    def current_scan(self) -> tuple[str, int] | None:
        """(task name, start ns) of the scan running now, or None; readable from other threads."""
        task = self._running
        return None if task is None else (task.name, self._running_since_ns)

    def restart_schedule(self) -> None:
        """Begin a new release grid at the next run, without counting the time in between as skips
        (e.g. after the executor was stopped)."""
        self._epoch_ns = None
        for task in self._tasks:
            task.stats.break_period_chain()

    # --- running -------------------------------------------------------------------------------

    def run(
        self,
        until_ns: int | None = None,
        max_scans: int | None = None,
        stop_event: threading.Event | None = None,
        scans_per_task: int | None = None,
    ) -> StopReason:
        """Run scans until the clock reaches ``until_ns`` (scans released at or after it are not run),
        ``max_scans`` scans ran in this call, every task ran ``scans_per_task`` scans in this call (a
        task that has is not run again; returns ``MAX_SCANS``), or ``stop_event`` is set. Exceptions
        from a scan or hook propagate; the schedule then continues where it was at the next ``run``."""
        if not self._tasks:
            raise RuntimeError("the scheduler has no tasks")
        if max_scans is not None and max_scans < 0:
            raise ValueError(f"max_scans must be >= 0, got {max_scans}")
        clock = self.clock
        if self._epoch_ns is None:
            self._start_schedule(clock.now_ns())
        scans = 0
        active = list(self._tasks)
        first_index = {task.name: task.scan_index for task in active}
        if len(active) == 1 and self._virtual is not None and self._cost_model is None:
            limit = None if scans_per_task is None else active[0].scan_index + scans_per_task
            try:
                reason, scans = self._run_on_time(active[0], until_ns, max_scans, stop_event, limit)
            finally:
                self._record_unrecorded()
            if reason is not None:
                return reason
        elif len(active) == 1 and self._cost_model is None and self.single_task_path:
            limit = None if scans_per_task is None else active[0].scan_index + scans_per_task
            return self._run_one(active[0], until_ns, max_scans, stop_event, limit)
        while True:
            if stop_event is not None and stop_event.is_set():
                return StopReason.STOPPED
            if max_scans is not None and scans >= max_scans:
                return StopReason.MAX_SCANS
            if scans_per_task is not None:
                active = [t for t in active if t.scan_index - first_index[t.name] < scans_per_task]
                if not active:
                    return StopReason.MAX_SCANS
            now = clock.now_ns()
            task = self._due_task(now, active)
            if task is None:
                wake_ns = min(t.next_release_ns for t in active)
                if until_ns is not None and wake_ns >= until_ns:
                    if not clock.sleep_until(until_ns, stop_event):
                        return StopReason.STOPPED
                    return StopReason.UNTIL
                if not clock.sleep_until(wake_ns, stop_event):
                    continue  # woken by the stop event
                if stop_event is not None and stop_event.is_set():
                    return StopReason.STOPPED
                # nothing else changed while asleep: pick the task now rather than going round
                now = clock.now_ns()
                task = self._due_task(now, active)
                if task is None:
                    continue
            interval = task.interval_ns
            skipped = (now - task.next_release_ns) // interval
            release = task.next_release_ns + skipped * interval
            if until_ns is not None and release >= until_ns:
                return StopReason.UNTIL
            self._run_scan(task, now, release, skipped)
            scans += 1
            if self._idle_hooks:
                self._idle(clock.now_ns())

    def _run_on_time(
        self,
        task: Task,
        until_ns: int | None,
        max_scans: int | None,
        stop_event: threading.Event | None,
        index_limit: int | None,
    ) -> tuple[StopReason | None, int]:
        """The virtual-time run path of one task without a cost model: the same scans, stops,
        statistics, observers and idle hooks as ``run``'s loop, with less work per scan (no task
        selection, on-time scans recorded in batches, observers' short forms, a ``VirtualClock``'s
        time read and moved in place). Returns (None, scans run) when a scan did not start on its
        release or took time: ``run``'s loop goes on."""
        clock = self._virtual
        assert clock is not None
        # VirtualClock itself (not a subclass that may do more): now_ns() and sleep_until() in place;
        # sleep_until's look at the stop event is the one at the top of the loop
        plain = type(clock) is VirtualClock
        interval = task.interval_ns
        idle = interval > self._idle_threshold_ns  # the slack after an on-time scan is one interval
        hooks = self._idle_hooks  # the lists themselves: a hook or observer added meanwhile counts
        observers = list(zip(self._observers, self._on_time, strict=True))
        added = self._observers_added
        # one observer with a short form (the executor's): called without the loop
        only = observers[0][1] if len(observers) == 1 else None
        is_set = None if stop_event is None else stop_event.is_set
        stats = self.stats
        name = task.name
        run_scan = task.run_scan
        task_stats = task.stats
        first_index = task.scan_index
        # max_scans (scans of this call) and index_limit as one bound on the task's scan index: this
        # loop moves the index by one per scan
        last_index = None if max_scans is None else first_index + max_scans
        if index_limit is not None:
            last_index = index_limit if last_index is None else min(last_index, index_limit)
        while True:
            if is_set is not None and is_set():
                return StopReason.STOPPED, task.scan_index - first_index
            if last_index is not None and task.scan_index >= last_index:
                return StopReason.MAX_SCANS, task.scan_index - first_index
            release = task.next_release_ns
            now = clock._now if plain else clock.now_ns()
            if now > release:
                return (
                    None,
                    task.scan_index - first_index,
                )  # late (the clock was moved): run's loop counts skips
            if until_ns is not None and release >= until_ns:
                if not clock.sleep_until(until_ns, stop_event):
                    return StopReason.STOPPED, task.scan_index - first_index
                return StopReason.UNTIL, task.scan_index - first_index
            if plain:
                clock._now = release  # sleep_until(release): never backwards (now <= release)
            elif not clock.sleep_until(release, stop_event):
                return StopReason.STOPPED, task.scan_index - first_index
            if run_scan is not task.run_scan:  # replaced between scans
                return None, task.scan_index - first_index
            self._running_since_ns = release
            self._running = task
            stats.current = task_stats
            try:
                run_scan(release, release)
            finally:
                stats.current = None
                self._running = None
                task.scan_index += 1
                task.next_release_ns = release + interval
            if self._observers_added != added:
                added = self._observers_added
                observers = list(zip(self._observers, self._on_time, strict=True))
                only = None
            end = clock._now if plain else clock.now_ns()
            if end != release:  # a scan that took virtual time: recorded as run's loop does
                self._record_unrecorded()
                overrun = end > release + interval
                task_stats.record_scan(release, end, release, 0, overrun)
                record = ScanRecord(name, release, release, end, 0, overrun)
                for observer, _ in observers:
                    observer(record)
                if hooks:
                    self._idle(end)
                continue
            unrecorded = self._unrecorded
            if not unrecorded or self._unrecorded_task is not task:
                self._record_unrecorded()
                self._unrecorded_task = task
                self._unrecorded_first_ns = release
                unrecorded = 0
            if unrecorded >= _STATS_BATCH - 1:
                self._unrecorded = unrecorded + 1
                self._record_unrecorded()
            else:
                self._unrecorded = unrecorded + 1
            if only is not None:
                only(name, release)
            else:
                for observer, on_time in observers:
                    if on_time is not None:
                        on_time(name, release)
                    else:
                        observer(ScanRecord(name, release, release, release, 0, False))
            if idle:
                for hook in hooks:
                    hook(release, interval)

    def _run_one(
        self,
        task: Task,
        until_ns: int | None,
        max_scans: int | None,
        stop_event: threading.Event | None,
        index_limit: int | None,
    ) -> StopReason:
        """The run path of one task on a real clock (``plcrun run``): ``run``'s loop and
        ``_run_scan``/``_idle`` in one function, with the same waits, scans, stops, statistics,
        observers and idle hooks. After the scan thread's sleep every function, object and cache
        line a period touches is cold, at several µs each on the gateway VM (bench/README.md,
        "Where the main job's CPU goes"), so the period's bookkeeping runs here, not in calls."""
        clock = self.clock
        now_ns = clock.now_ns
        sleep_until = clock.sleep_until
        is_set = None if stop_event is None else stop_event.is_set
        interval = task.interval_ns
        stats = task.stats
        record_scan = stats.record_scan
        executor_stats = self.stats
        observers = self._observers  # the lists themselves: one added meanwhile counts
        hooks = self._idle_hooks
        threshold = self._idle_threshold_ns
        name = task.name
        scans = 0
        while True:
            if is_set is not None and is_set():
                return StopReason.STOPPED
            if max_scans is not None and scans >= max_scans:
                return StopReason.MAX_SCANS
            if index_limit is not None and task.scan_index >= index_limit:
                return StopReason.MAX_SCANS
            release = task.next_release_ns
            now = now_ns()
            if now < release:
                if until_ns is not None and release >= until_ns:
                    if not sleep_until(until_ns, stop_event):
                        return StopReason.STOPPED
                    return StopReason.UNTIL
                if not sleep_until(release, stop_event):
                    continue  # woken by the stop event
                if is_set is not None and is_set():
                    return StopReason.STOPPED
                now = now_ns()
                if now < release:
                    continue
            skipped = (now - release) // interval
            if skipped:
                release += skipped * interval
            if until_ns is not None and release >= until_ns:
                return StopReason.UNTIL
            self._running_since_ns = now
            self._running = task
            executor_stats.current = stats
            try:
                task.run_scan(now, release)
            finally:
                executor_stats.current = None
                self._running = None
                task.scan_index += 1
                next_release = task.next_release_ns = release + interval
            end = now_ns()
            overrun = end > next_release
            record_scan(now, end, release, skipped, overrun)
            if observers:
                scan = ScanRecord(name, release, now, end, skipped, overrun)
                for observer in observers:
                    observer(scan)
            scans += 1
            if hooks:
                now = now_ns()
                slack = task.next_release_ns - now
                if slack > threshold:
                    for hook in hooks:
                        hook(now, slack)

    def _record_unrecorded(self) -> None:
        """Put the on-time scans of the virtual-time run path into the statistics."""
        task = self._unrecorded_task
        if task is not None and self._unrecorded:
            task.stats.record_on_time(self._unrecorded, self._unrecorded_first_ns, task.interval_ns)
        self._unrecorded = 0

    def _start_schedule(self, now_ns: int) -> None:
        align = self._align_ns
        epoch = -(-now_ns // align) * align + self._phase_offset_ns
        self._epoch_ns = epoch
        self._idle_threshold_ns = int(min(t.interval_ns for t in self._tasks) * self._idle_fraction)
        for task in self._tasks:
            task.next_release_ns = epoch + task.offset_ns

    def _due_task(self, now_ns: int, tasks: list[Task]) -> Task | None:
        if len(tasks) == 1:  # most programs have one task
            only = tasks[0]
            return only if only.next_release_ns <= now_ns else None
        best: Task | None = None
        for task in tasks:
            if task.next_release_ns > now_ns:
                continue
            if best is None or (task.priority, task.next_release_ns, task.order) < (
                best.priority,
                best.next_release_ns,
                best.order,
            ):
                best = task
        return best

    def _run_scan(self, task: Task, start_ns: int, release: int, skipped: int) -> None:
        stats = task.stats
        self._running_since_ns = start_ns
        self._running = task
        self.stats.current = stats
        try:
            task.run_scan(start_ns, release)
            if self._cost_model is not None and self._virtual is not None:
                self._virtual.advance(self._cost_model(task.name, task.scan_index))
        finally:
            self.stats.current = None
            self._running = None
            task.scan_index += 1
            next_release = release + task.interval_ns
            task.next_release_ns = next_release
        end_ns = self.clock.now_ns()
        overrun = end_ns > next_release
        stats.record_scan(start_ns, end_ns, release, skipped, overrun)
        if self._observers:
            record = ScanRecord(task.name, release, start_ns, end_ns, skipped, overrun)
            for observer in self._observers:
                observer(record)

    def _idle(self, now_ns: int) -> None:
        tasks = self._tasks
        slack = (
            tasks[0].next_release_ns if len(tasks) == 1 else min(t.next_release_ns for t in tasks)
        ) - now_ns
        if slack > self._idle_threshold_ns:
            for hook in self._idle_hooks:
                hook(now_ns, slack)
