"""The systemd unit in deploy/systemd: ``systemd-analyze verify`` finds nothing, the offline security
review scores an exposure of at most 2.0, the unit's settings agree with plcrun (options, credential
names, limits), and plcrun runs inside what the unit grants: real-time priority and memory locking
from the unit's limits alone (no capability), with writable-and-executable memory refused."""

from __future__ import annotations

import ctypes
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from plcrun.cli import build_parser
from plcrun.executor.rt_setup import RtConfig
from plcrun.io.credentials import DASHBOARD_TOKEN, MQTT_BUFFER_KEY, OCPP_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "plcrun.service"
ISO15118_DROP_IN = ROOT / "deploy" / "systemd" / "iso15118.conf"
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (.ci/run installs Debian's systemd)"
)
PLCRUN = Path(sys.executable).parent / "plcrun"


def settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (all sections), in order; comments and continuations aside."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def installed_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit as installed next to this plcrun: ExecStart points at this environment's plcrun."""
    unit = tmp_path / "plcrun.service"
    unit.write_text((text or UNIT.read_text()).replace("/opt/plcrun/bin/plcrun", str(PLCRUN)))
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120, check=False)


@needs_analyze
def test_verify_finds_nothing(tmp_path: Path) -> None:
    result = analyze("verify", "--man=no", str(installed_unit(tmp_path)))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr
    # the check can fail: a misspelt value is reported (systemd only warns, so the output matters)
    broken = installed_unit(tmp_path, UNIT.read_text().replace("LimitRTPRIO=50", "LimitRTPRIO=fifty"))
    assert "Failed to parse resource value" in analyze("verify", "--man=no", str(broken)).stderr


def exposure(unit: Path) -> float:
    result = analyze("security", "--offline=true", str(unit))
    match = re.search(r"Overall exposure level for plcrun\.service: (\d+\.\d)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    return float(match.group(1))


@needs_analyze
def test_the_iso15118_drop_in(tmp_path: Path) -> None:
    """The unit with the ISO 15118 drop-in (its settings read after the unit's, as systemd merges a
    drop-in): still verified clean, still exposure <= 2.0, and the JVM-hostile setting is off."""
    merged = installed_unit(tmp_path, UNIT.read_text() + "\n" + ISO15118_DROP_IN.read_text())
    result = analyze("verify", "--man=no", str(merged))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr
    assert exposure(merged) <= MAX_EXPOSURE
    review = analyze("security", "--offline=true", str(merged)).stdout
    assert re.search(r"✗ MemoryDenyWriteExecute=", review)


def test_the_jvm_needs_the_drop_in() -> None:
    """Why the drop-in exists: the JVM of the SECC's EXI codec does not start under
    MemoryDenyWriteExecute, and does under the unit's /proc restriction (ProcSubset=pid)."""
    java = shutil.which("java")
    if java is None or not _mdwe_supported():
        pytest.skip("needs java (.ci/run installs it for ISO 15118) and PR_SET_MDWE")
    denied = subprocess.run(
        [java, "-version"],
        preexec_fn=lambda: ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) and None,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert denied.returncode != 0
    assert _in_private_proc([java, "-version"]).returncode == 0


def _in_private_proc(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` with /proc showing only its own processes, as ProcSubset=pid and
    ProtectProc=invisible give the service (a new mount and PID namespace; needs root)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private /proc")
    script = (
        'mount -t proc -o subset=pid,hidepid=invisible proc /proc && test ! -e /proc/meminfo && exec "$@"'
    )
    return subprocess.run(
        [unshare, "--mount", "--pid", "--fork", "sh", "-c", script, "sh", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plcrun_runs_with_only_its_own_processes_in_proc(tmp_path: Path) -> None:
    result = _in_private_proc(
        [str(PLCRUN), "run", "programs/freq_response.st", "--no-dashboard", "--duration", "0.3"]
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"fast: \d+ scans, .*, running", result.stderr), result.stderr


@needs_analyze
def test_offline_security_exposure_is_at_most_2(tmp_path: Path) -> None:
    measured = exposure(installed_unit(tmp_path))
    assert measured <= MAX_EXPOSURE
    threshold = analyze("security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT))
    assert threshold.returncode == 0
    print(f"systemd-analyze security --offline=true: exposure {measured}")


def test_the_unit_agrees_with_plcrun() -> None:
    unit = settings()
    assert unit["User"] == ["v2g-service"] and unit["Group"] == ["v2g-service"]
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"] and unit["WatchdogSec"]
    assert unit["StateDirectory"] == ["plcrun"] and unit["ProtectSystem"] == ["strict"]
    # privileges: limits only, no capability at all
    assert unit["CapabilityBoundingSet"] == [""] and unit["AmbientCapabilities"] == [""]
    assert int(unit["LimitRTPRIO"][0]) >= (RtConfig().fifo_priority or 0)
    assert unit["LimitMEMLOCK"] == ["infinity"] and "RestrictRealtime" not in unit
    credentials = {value.split(":", 1)[0] for value in unit["LoadCredentialEncrypted"]}
    assert credentials >= {DASHBOARD_TOKEN, MQTT_BUFFER_KEY, OCPP_PASSWORD}
    # ExecStart is a command line plcrun accepts, with its state in the StateDirectory
    command = shlex.split(unit["ExecStart"][0])
    assert command[0] == "/opt/plcrun/bin/plcrun"
    args = build_parser().parse_args(command[1:])
    assert args.require_realtime and args.retain == "${STATE_DIRECTORY}/site.retain"


def _limits() -> tuple[int, int]:
    unit = settings()
    memlock = unit["LimitMEMLOCK"][0]
    return int(unit["LimitRTPRIO"][0]), resource.RLIM_INFINITY if memlock == "infinity" else int(memlock)


def _can_set_limits(rtprio: int, memlock: int) -> bool:
    """Whether this machine lets a process raise its hard limits to the unit's (systemd, as PID 1,
    always can; a container without CAP_SYS_RESOURCE cannot)."""
    code = (
        f"import resource; resource.setrlimit(resource.RLIMIT_RTPRIO, ({rtprio}, {rtprio})); "
        f"resource.setrlimit(resource.RLIMIT_MEMLOCK, ({memlock}, {memlock}))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=False).returncode == 0


def _mdwe_supported() -> bool:
    code = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, check=False).returncode == 0


def _run_plcrun(tmp_path: Path, preexec: Callable[[], None], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(str(PLCRUN), "run", "programs/freq_response.st", "--no-dashboard", *extra),
            *("--duration", "0.3", "--retain", str(tmp_path / "site.retain")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
        check=False,
    )


def _drop_rt_capabilities() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (14, 23):  # CAP_IPC_LOCK, CAP_SYS_NICE out of the bounding set: gone after exec
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP (fails harmlessly when not root)


def test_plcrun_gets_realtime_from_the_units_limits_alone(tmp_path: Path) -> None:
    rtprio, memlock = _limits()
    if not _can_set_limits(rtprio, memlock):
        pytest.skip(
            "this machine does not let a process raise RLIMIT_RTPRIO/RLIMIT_MEMLOCK (no CAP_SYS_RESOURCE)"
        )

    def as_the_unit_grants() -> None:
        resource.setrlimit(resource.RLIMIT_RTPRIO, (rtprio, rtprio))
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
        _drop_rt_capabilities()

    result = _run_plcrun(tmp_path, as_the_unit_grants, "--require-realtime")
    assert result.returncode == 0, result.stderr
    assert "real-time setup: sched_fifo: applied: SCHED_FIFO priority 40" in result.stderr
    assert "real-time setup: mlockall: applied" in result.stderr
    assert "WARNING" not in result.stderr and "Traceback" not in result.stderr


def test_plcrun_runs_with_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes: nothing plcrun loads (numpy, cryptography, lark, ctypes calls)
    needs writable executable memory."""
    if not _mdwe_supported():
        pytest.skip("prctl(PR_SET_MDWE) needs Linux 6.3 or later")
    result = _run_plcrun(tmp_path, lambda: ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) and None)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"fast: \d+ scans, .*, running", result.stderr), result.stderr
