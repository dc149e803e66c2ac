"""Checks of the host that plcrun runs on, read from ``/proc`` and ``/sys`` under an injectable root.

Every check returns one ``Check``: PASS, WARN (works, but the scan's timing or the site's safety is
not what it should be) or FAIL (plcrun will not run as deployed). ``root`` is ``/`` on a gateway and
a fake tree in tests; nothing here reads the running process except through ``root/proc/self``.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..io.host.thermal import read_thermal_zones

RT_PRIORITY_NEEDED = 40  # the scan thread's SCHED_FIFO priority (executor/rt_setup.py)
CAP_IPC_LOCK, CAP_SYS_NICE = 14, 23
GOOD_CLOCKSOURCES = ("tsc", "arch_sys_counter", "kvm-clock", "riscv_clocksource")
THERMAL_WARN_C, THERMAL_FAIL_C = 70.0, 85.0


class Status(enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status.value, "detail": self.detail}


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def parse_cpu_list(text: str) -> frozenset[int]:
    """``0-2,5`` → {0, 1, 2, 5} (the kernel's cpu-list format; flags such as ``domain,`` skipped)."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if re.fullmatch(r"\d+-\d+", part):
            low, high = (int(x) for x in part.split("-"))
            cpus.update(range(low, high + 1))
        elif part.isdigit():
            cpus.add(int(part))
    return frozenset(cpus)


def _cpus(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus)) or "none"


def check_kernel(root: Path) -> Check:
    version = _text(root / "proc/version") or ""
    release = _text(root / "proc/sys/kernel/osrelease") or (
        version.split()[2] if len(version.split()) > 2 else "?"
    )
    if _text(root / "sys/kernel/realtime") == "1" or "PREEMPT_RT" in version:
        return Check("kernel", Status.PASS, f"{release}, PREEMPT_RT")
    model = next(
        (m for m in ("PREEMPT_DYNAMIC", "PREEMPT") if m in version.split()), "no preemption model shown"
    )
    return Check(
        "kernel",
        Status.WARN,
        f"{release}, {model}: not a PREEMPT_RT kernel (latency peaks of milliseconds are possible; "
        "docs/deployment.md: kernel set-up)",
    )


def check_isolation(root: Path, scan_cpu: int | None) -> Check:
    cmdline = _text(root / "proc/cmdline") or ""
    isolated = parse_cpu_list(_text(root / "sys/devices/system/cpu/isolated") or "")
    nohz = parse_cpu_list(_text(root / "sys/devices/system/cpu/nohz_full") or "")
    if not isolated:
        match = re.search(r"(?:^|\s)isolcpus=(\S+)", cmdline)
        isolated = parse_cpu_list(match.group(1)) if match else frozenset()
    if not nohz:
        match = re.search(r"(?:^|\s)nohz_full=(\S+)", cmdline)
        nohz = parse_cpu_list(match.group(1)) if match else frozenset()
    shown = f"isolcpus {_cpus(isolated)}, nohz_full {_cpus(nohz)}"
    if not isolated:
        return Check("cpu isolation", Status.WARN, f"{shown}: no isolated core for the scan thread")
    if scan_cpu is not None and scan_cpu not in isolated:
        return Check("cpu isolation", Status.WARN, f"{shown}: the scan CPU {scan_cpu} is not isolated")
    if not isolated <= nohz:
        return Check("cpu isolation", Status.WARN, f"{shown}: isolated CPUs still get the scheduler tick")
    where = f"; scan thread on CPU {scan_cpu}" if scan_cpu is not None else "; set [runtime] scan_cpu"
    return Check("cpu isolation", Status.PASS, shown + where)


def _limits(root: Path) -> dict[str, str]:
    """Soft limits of the process from ``proc/self/limits`` (``Max realtime priority`` → ``0``)."""
    found = {}
    for line in (_text(root / "proc/self/limits") or "").splitlines()[1:]:
        match = re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _capability(root: Path, bit: int) -> bool:
    match = re.search(r"^CapEff:\s*([0-9a-f]+)", _text(root / "proc/self/status") or "", flags=re.M)
    return bool(match) and bool(int(match.group(1), 16) >> bit & 1) if match else False


def check_rt_priority(root: Path) -> Check:
    limit = _limits(root).get("Max realtime priority", "?")
    if _capability(root, CAP_SYS_NICE):
        return Check("real-time priority", Status.PASS, f"CAP_SYS_NICE (RLIMIT_RTPRIO {limit})")
    if limit == "unlimited" or (limit.isdigit() and int(limit) >= RT_PRIORITY_NEEDED):
        return Check("real-time priority", Status.PASS, f"RLIMIT_RTPRIO {limit}")
    return Check(
        "real-time priority",
        Status.WARN,
        f"RLIMIT_RTPRIO {limit} and no CAP_SYS_NICE: this process cannot get SCHED_FIFO "
        f"{RT_PRIORITY_NEEDED} (the unit gives it LimitRTPRIO=50; run the check as the service to see its limits)",
    )


def check_memlock(root: Path) -> Check:
    limit = _limits(root).get("Max locked memory", "?")
    if _capability(root, CAP_IPC_LOCK):
        return Check("memory locking", Status.PASS, f"CAP_IPC_LOCK (RLIMIT_MEMLOCK {limit})")
    if limit == "unlimited":
        return Check("memory locking", Status.PASS, "RLIMIT_MEMLOCK unlimited")
    shown = f"{int(limit) // 1024} KiB" if limit.isdigit() else limit
    return Check(
        "memory locking",
        Status.WARN,
        f"RLIMIT_MEMLOCK {shown} and no CAP_IPC_LOCK: mlockall will fail (the unit sets LimitMEMLOCK=infinity)",
    )


def check_clocksource(root: Path) -> Check:
    base = root / "sys/devices/system/clocksource/clocksource0"
    current = _text(base / "current_clocksource")
    if current is None:
        return Check("clock source", Status.WARN, "cannot read current_clocksource")
    available = _text(base / "available_clocksource") or ""
    if current in GOOD_CLOCKSOURCES:
        return Check("clock source", Status.PASS, current)
    better = [c for c in available.split() if c in GOOD_CLOCKSOURCES]
    hint = f" (available: {', '.join(better)}; clocksource= on the kernel command line)" if better else ""
    return Check("clock source", Status.WARN, f"{current}: slow to read, every time stamp costs{hint}")


def check_governor(root: Path) -> Check:
    cpu_dir = root / "sys/devices/system/cpu"
    governors: dict[str, list[int]] = {}
    for path in sorted(cpu_dir.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        governor = _text(path)
        if governor:
            governors.setdefault(governor, []).append(int(path.parent.parent.name[3:]))
    if not governors:
        return Check(
            "cpu frequency", Status.PASS, "no frequency scaling (fixed frequency or a virtual machine)"
        )
    shown = "; ".join(f"{g} on CPUs {_cpus(c)}" for g, c in sorted(governors.items()))
    if set(governors) == {"performance"}:
        return Check("cpu frequency", Status.PASS, shown)
    return Check(
        "cpu frequency", Status.WARN, f"{shown}: frequency changes add latency; use the performance governor"
    )


def check_thermal(root: Path) -> Check:
    zones = read_thermal_zones(root)
    readable = [z for z in zones if z.temp_c is not None]
    if not readable:
        why = f"{len(zones)} zones, none readable" if zones else "no thermal zones"
        return Check(
            "thermal",
            Status.WARN,
            f"{why}: the CPU temperature cannot be watched (a VM has none; a gateway should)",
        )
    hottest = max(readable, key=lambda z: z.temp_c or 0.0)
    shown = ", ".join(f"{z.type} {z.temp_c:.0f} °C" for z in readable)
    if (hottest.temp_c or 0.0) >= THERMAL_FAIL_C:
        return Check("thermal", Status.FAIL, f"{shown}: the CPU is throttling or about to")
    if (hottest.temp_c or 0.0) >= THERMAL_WARN_C:
        return Check("thermal", Status.WARN, f"{shown}: hot (>= {THERMAL_WARN_C:g} °C); check the enclosure")
    return Check("thermal", Status.PASS, shown)


def check_writable(root: Path, directories: Iterable[Path]) -> list[Check]:
    """Each state directory exists (or can be created) and a file can be written there."""
    checks = []
    for directory in directories:
        path = root / directory.relative_to(directory.anchor) if directory.is_absolute() else root / directory
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing != path:
            ok = os.access(existing, os.W_OK | os.X_OK)
            status = Status.PASS if ok else Status.FAIL
            what = "will be created" if ok else f"cannot be created ({existing} is not writable)"
            checks.append(Check("state directory", status, f"{directory}: {what}"))
            continue
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".plcrun-doctor-"):
                pass
        except OSError as error:
            checks.append(
                Check("state directory", Status.FAIL, f"{directory}: not writable ({error.strerror})")
            )
            continue
        checks.append(Check("state directory", Status.PASS, f"{directory}: writable"))
    return checks
