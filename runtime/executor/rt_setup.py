"""Optional real-time tuning of the scan thread, applied where the OS allows it and reported where not.

Each measure helped on the target VMs (docs/executor.md has the figures) but none is required: a
measure the OS refuses (not root, no CAP_SYS_NICE, not Linux, ...) is skipped and the report says why.

* ``sched_fifo``: SCHED_FIFO for the calling thread (call ``apply_rt_setup`` on the scan thread).
* ``mlockall``: lock current and future memory, so no page fault of the scan waits for the disk.
* ``cpu_affinity``: pin the calling thread to a set of CPUs.
* ``cpu_dma_latency``: hold ``/dev/cpu_dma_latency`` open at 0 µs, which keeps idle vCPUs from halting
  (p99 wake-up 1.5 ms -> 79 µs measured) but makes both vCPUs look busy to the host: off by default.
* ``switch_interval``: ``sys.setswitchinterval``: how long another Python thread may hold the GIL before
  the scan thread gets it back (default 5 ms; 0.5 ms measured fine).
* ``timer_slack``: ``prctl(PR_SET_TIMERSLACK)`` for the calling thread, so the kernel does not add up
  to 50 µs to every sleep of a non-real-time thread.

``apply_rt_setup`` returns an ``RtSession``: the report plus ``close()``, which undoes what was applied.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import resource
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from ..errors import PlcrunError

_MCL_CURRENT = 1
_MCL_FUTURE = 2
_MCL_ONFAULT = 4  # Linux 4.4+: lock pages as they are touched, not whole reservations
_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30
DMA_LATENCY_PATH = "/dev/cpu_dma_latency"


@dataclass(frozen=True, slots=True)
class RtConfig:
    """What to try. ``None``/``False`` leaves that setting alone."""

    fifo_priority: int | None = 40
    lock_memory: bool = True
    cpus: frozenset[int] | None = None
    hold_cpu_dma_latency: bool = False
    switch_interval_s: float | None = 0.0005
    timer_slack_ns: int | None = 1


@dataclass(frozen=True, slots=True)
class RtItem:
    """One measure: whether it was asked for, whether it is in effect, and what happened."""

    name: str
    requested: bool
    applied: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "requested": self.requested,
            "applied": self.applied,
            "detail": self.detail,
        }


@dataclass(slots=True)
class RtSession:
    """The report of ``apply_rt_setup``; ``close()`` (or leaving the ``with`` block) undoes it."""

    items: list[RtItem] = field(default_factory=list)
    _undo: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def item(self, name: str) -> RtItem:
        for entry in self.items:
            if entry.name == name:
                return entry
        raise KeyError(f"no real-time measure named {name!r}")

    def applied(self, name: str) -> bool:
        return self.item(name).applied

    def to_json(self) -> dict[str, object]:
        return {"items": [entry.to_json() for entry in self.items]}

    def summary(self) -> str:
        lines = []
        for entry in self.items:
            state = "applied" if entry.applied else ("not applied" if entry.requested else "off")
            lines.append(f"{entry.name}: {state}: {entry.detail}")
        return "\n".join(lines)

    def close(self) -> None:
        """Undo in reverse order; failures while undoing are ignored (the process may be exiting)."""
        while self._undo:
            undo = self._undo.pop()
            with contextlib.suppress(OSError):
                undo()

    def __enter__(self) -> RtSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RealtimeRequired(PlcrunError, RuntimeError):
    """Real-time priority was required (``--require-realtime``) but the OS refused it."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"real-time priority is required (--require-realtime / [runtime] require_realtime) but was not "
            f"applied: {detail}. Under systemd give the service LimitRTPRIO= or CAP_SYS_NICE "
            "(see docs/deployment.md)"
        )


# measures whose absence costs the scan its timing: reported as warnings, not information
ESSENTIAL = ("sched_fifo", "mlockall")


def log_rt_report(session: RtSession, log: logging.Logger) -> None:
    """One line per measure: a requested real-time priority or memory lock that the OS refused is a
    WARNING (the scan's timing is then not what the figures in docs/executor.md say)."""
    for entry in session.items:
        state = "applied" if entry.applied else ("not applied" if entry.requested else "off")
        level = (
            logging.WARNING
            if entry.requested and not entry.applied and entry.name in ESSENTIAL
            else logging.INFO
        )
        log.log(level, "real-time setup: %s: %s: %s", entry.name, state, entry.detail)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _why(error: int, permission_hint: str) -> str:
    if error in (errno.EPERM, errno.EACCES):
        return f"not permitted ({os.strerror(error)}): {permission_hint}"
    return os.strerror(error)


def _who() -> str:
    return "running as root" if os.geteuid() == 0 else f"running as uid {os.geteuid()}, not root"


def _sched_fifo(priority: int, session: RtSession) -> RtItem:
    name = "sched_fifo"
    if not hasattr(os, "sched_setscheduler"):
        return RtItem(name, True, False, f"os.sched_setscheduler is not available on {sys.platform}")
    low, high = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not low <= priority <= high:
        return RtItem(name, True, False, f"priority {priority} outside SCHED_FIFO range {low}..{high}")
    previous_policy = os.sched_getscheduler(0)
    previous_param = os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as error:
        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        hint = f"needs CAP_SYS_NICE or RLIMIT_RTPRIO >= {priority} (is {soft}); {_who()}"
        return RtItem(name, True, False, _why(error.errno or 0, hint))
    session._undo.append(lambda: os.sched_setscheduler(0, previous_policy, previous_param))
    return RtItem(name, True, True, f"SCHED_FIFO priority {priority} for this thread")


def _mlockall(libc: ctypes.CDLL | None, session: RtSession) -> RtItem:
    name = "mlockall"
    if libc is None:
        return RtItem(name, True, False, f"mlockall is not available on {sys.platform}")
    # MCL_ONFAULT: without it every reservation becomes resident at once (OpenBLAS's buffers under
    # numpy, thread stacks, malloc arenas: 190 MiB for the 10-EV job, 85 MiB with it). A page the
    # scan uses is touched in the first scans and stays locked from then on.
    onfault = True
    result = libc.mlockall(_MCL_CURRENT | _MCL_FUTURE | _MCL_ONFAULT)
    if result != 0 and ctypes.get_errno() == errno.EINVAL:  # kernel without MCL_ONFAULT
        onfault = False
        result = libc.mlockall(_MCL_CURRENT | _MCL_FUTURE)
    if result != 0:
        error = ctypes.get_errno()
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
        if error == errno.ENOMEM:
            detail = f"RLIMIT_MEMLOCK ({limit}) is smaller than the process; {_who()}"
        else:
            detail = _why(error, f"needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK (is {limit}); {_who()}")
        return RtItem(name, True, False, detail)
    session._undo.append(libc.munlockall)
    how = " as it is touched (MCL_ONFAULT)" if onfault else ""
    return RtItem(name, True, True, f"current and future memory locked{how}")


def _affinity(cpus: frozenset[int], session: RtSession) -> RtItem:
    name = "cpu_affinity"
    if not hasattr(os, "sched_setaffinity"):
        return RtItem(name, True, False, f"os.sched_setaffinity is not available on {sys.platform}")
    previous = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as error:
        return RtItem(name, True, False, f"CPUs {sorted(cpus)}: {_why(error.errno or 0, _who())}")
    session._undo.append(lambda: os.sched_setaffinity(0, previous))
    return RtItem(name, True, True, f"this thread pinned to CPUs {sorted(cpus)} (was {sorted(previous)})")


def _dma_latency(session: RtSession) -> RtItem:
    name = "cpu_dma_latency"
    try:
        fd = os.open(DMA_LATENCY_PATH, os.O_WRONLY)
    except OSError as error:
        return RtItem(name, True, False, f"{DMA_LATENCY_PATH}: {_why(error.errno or 0, _who())}")
    try:
        os.write(fd, struct.pack("i", 0))
    except OSError as error:
        os.close(fd)
        return RtItem(name, True, False, f"{DMA_LATENCY_PATH}: {_why(error.errno or 0, _who())}")
    session._undo.append(lambda: os.close(fd))
    return RtItem(name, True, True, f"{DMA_LATENCY_PATH} held at 0 µs (fd {fd}) until close()")


def _switch_interval(seconds: float, session: RtSession) -> RtItem:
    name = "switch_interval"
    previous = sys.getswitchinterval()
    try:
        sys.setswitchinterval(seconds)
    except ValueError as error:
        return RtItem(name, True, False, f"{seconds} s rejected: {error}")
    session._undo.append(lambda: sys.setswitchinterval(previous))
    return RtItem(name, True, True, f"GIL switch interval {seconds * 1e3:g} ms (was {previous * 1e3:g} ms)")


def _timer_slack(slack_ns: int, libc: ctypes.CDLL | None, session: RtSession) -> RtItem:
    name = "timer_slack"
    if libc is None:
        return RtItem(name, True, False, f"prctl is not available on {sys.platform}")
    previous = libc.prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    if previous < 0 or libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) != 0:
        return RtItem(name, True, False, f"prctl(PR_SET_TIMERSLACK): {os.strerror(ctypes.get_errno())}")
    session._undo.append(lambda: libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(previous), 0, 0, 0))
    return RtItem(name, True, True, f"timer slack {slack_ns} ns for this thread (was {previous} ns)")


def apply_rt_setup(config: RtConfig | None = None) -> RtSession:
    """Apply what ``config`` asks for and the OS allows, on the calling thread. Never raises for a
    refused measure: the returned session lists every measure with ``applied`` and the reason."""
    config = config or RtConfig()
    session = RtSession()
    libc = _libc()
    items = session.items
    if config.fifo_priority is None:
        items.append(RtItem("sched_fifo", False, False, "not requested"))
    else:
        items.append(_sched_fifo(config.fifo_priority, session))
    items.append(
        _mlockall(libc, session) if config.lock_memory else RtItem("mlockall", False, False, "not requested")
    )
    if config.cpus is None:
        items.append(RtItem("cpu_affinity", False, False, "not requested"))
    else:
        items.append(_affinity(config.cpus, session))
    if config.hold_cpu_dma_latency:
        items.append(_dma_latency(session))
    else:
        items.append(
            RtItem("cpu_dma_latency", False, False, "not requested (keeps idle vCPUs awake; opt-in)")
        )
    if config.switch_interval_s is None:
        items.append(RtItem("switch_interval", False, False, "not requested"))
    else:
        items.append(_switch_interval(config.switch_interval_s, session))
    if config.timer_slack_ns is None:
        items.append(RtItem("timer_slack", False, False, "not requested"))
    else:
        items.append(_timer_slack(config.timer_slack_ns, libc, session))
    return session
