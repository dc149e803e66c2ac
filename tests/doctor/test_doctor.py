"""``plcrun doctor`` on fake /proc and /sys trees (a well-tuned gateway: every check passes; a badly
set-up one: each problem named, exit code 1) and on this machine (each check answers from the real
files, no traceback)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plcrun.doctor import Status, exit_code, render, run_checks

from tests.support.certs import CertAuthority
from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max locked memory         {memlock:<20} {memlock:<20} bytes
Max realtime priority     {rtprio:<20} {rtprio:<20}
"""
LOADED = "table inet plcrun {\n chain input { policy drop; }\n chain output { policy drop; }\n}\n"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def host_tree(
    root: Path,
    *,
    rt: bool,
    isolated: str,
    rtprio: str,
    memlock: str,
    clocksource: str,
    governors: list[str],
    temps_mc: list[int],
) -> Path:
    preempt = "PREEMPT_RT" if rt else "PREEMPT_DYNAMIC"
    write(root, "proc/version", f"Linux version 6.6.30-rt30 (builder@host) #1 SMP {preempt} Thu Jan 1 2026")
    write(root, "proc/sys/kernel/osrelease", "6.6.30-rt30" if rt else "6.6.30")
    if rt:
        write(root, "sys/kernel/realtime", "1")
    cmdline = f"root=/dev/mmcblk0p2 ro isolcpus={isolated} nohz_full={isolated}" if isolated else "ro quiet"
    write(root, "proc/cmdline", cmdline)
    write(root, "sys/devices/system/cpu/isolated", isolated)
    write(root, "proc/self/limits", LIMITS.format(memlock=memlock, rtprio=rtprio))
    write(root, "proc/self/status", "Name:\tplcrun\nCapInh:\t0\nCapPrm:\t0\nCapEff:\t0000000000000000\n")
    write(root, "sys/devices/system/clocksource/clocksource0/current_clocksource", clocksource)
    write(root, "sys/devices/system/clocksource/clocksource0/available_clocksource", "tsc hpet acpi_pm")
    for cpu, governor in enumerate(governors):
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", governor)
    for number, millidegrees in enumerate(temps_mc):
        write(root, f"sys/class/thermal/thermal_zone{number}/type", f"zone{number}")
        write(root, f"sys/class/thermal/thermal_zone{number}/temp", str(millidegrees))
    (root / "var/lib/plcrun").mkdir(parents=True)
    return root


def by_name(checks: list) -> dict[str, list[tuple[Status, str]]]:  # type: ignore[type-arg]
    found: dict[str, list[tuple[Status, str]]] = {}
    for check in checks:
        found.setdefault(check.name, []).append((check.status, check.detail))
    return found


def test_a_well_tuned_gateway_passes_everything(tmp_path: Path) -> None:
    root = host_tree(
        tmp_path / "root",
        rt=True,
        isolated="3",
        rtprio="50",
        memlock="unlimited",
        clocksource="tsc",
        governors=["performance"] * 4,
        temps_mc=[45000, 47500],
    )
    write(root, "etc/nftables.conf", 'include "/etc/nftables.d/plcrun.nft"')
    ca = CertAuthority.create(tmp_path / "pki")
    now = dt.datetime.now(dt.UTC)
    gateway = ca.issue_client(tmp_path / "pki", "gateway", not_after=now + dt.timedelta(days=365))
    site = tmp_path / "site.toml"
    site.write_text(f'[mqtt]\nhost = "127.0.0.1"\n[mqtt.tls]\ncert_file = "{gateway.cert}"\n')
    checks = run_checks(
        root, site_file=site, state_directories=[Path("/var/lib/plcrun")], scan_cpu=3, nft=lambda: LOADED
    )
    assert [c.status for c in checks] == [Status.PASS] * len(checks), render(checks)
    found = by_name(checks)
    assert found["kernel"] == [(Status.PASS, "6.6.30-rt30, PREEMPT_RT")]
    assert found["cpu isolation"][0][1] == "isolcpus 3, nohz_full 3; scan thread on CPU 3"
    assert found["real-time priority"][0][1] == "RLIMIT_RTPRIO 50"
    assert found["thermal"][0][1] == "zone0 45 °C, zone1 48 °C"
    assert "valid until" in found["certificate"][0][1] and "(364 days)" in found["certificate"][0][1]
    assert exit_code(checks) == 0 and exit_code(checks, strict=True) == 0
    assert render(checks).splitlines()[-1] == f"doctor: {len(checks)} pass, 0 warn, 0 fail"


def test_a_badly_set_up_gateway_is_told_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = host_tree(
        tmp_path / "root",
        rt=False,
        isolated="",
        rtprio="0",
        memlock="65536",
        clocksource="hpet",
        governors=["performance", "powersave"],
        temps_mc=[91000],
    )
    (root / "var/lib/plcrun-file").write_text("a file where the state directory should be")
    ca = CertAuthority.create(tmp_path / "pki")
    expired = ca.issue_expired_client(tmp_path / "pki")
    now = dt.datetime.now(dt.UTC)
    soon = ca.issue_client(tmp_path / "pki", "soon", not_after=now + dt.timedelta(days=10, hours=1))
    site = tmp_path / "site.toml"
    site.write_text(
        f'[mqtt.tls]\ncert_file = "{expired.cert}"\nca_file = "{soon.cert}"\n'
        '[everest.tls]\ncert_file = "credential:everest-cert"\n'
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    checks = run_checks(
        root,
        site_file=site,
        state_directories=[Path("/var/lib/plcrun"), Path("/var/lib/plcrun-file")],
        scan_cpu=2,
        nft=lambda: "",
    )
    found = by_name(checks)
    assert found["kernel"][0][0] is Status.WARN and "not a PREEMPT_RT kernel" in found["kernel"][0][1]
    assert found["cpu isolation"][0] == (
        Status.WARN,
        "isolcpus none, nohz_full none: no isolated core for the scan thread",
    )
    assert (
        found["real-time priority"][0][0] is Status.WARN
        and "RLIMIT_RTPRIO 0" in found["real-time priority"][0][1]
    )
    assert found["memory locking"][0] == (
        Status.WARN,
        "RLIMIT_MEMLOCK 64 KiB and no CAP_IPC_LOCK: mlockall will fail (the unit sets LimitMEMLOCK=infinity)",
    )
    assert found["clock source"][0][0] is Status.WARN and "available: tsc" in found["clock source"][0][1]
    assert found["cpu frequency"][0][1].startswith("performance on CPUs 0; powersave on CPUs 1")
    assert found["thermal"][0] == (Status.FAIL, "zone0 91 °C: the CPU is throttling or about to")
    assert found["state directory"][0] == (Status.PASS, "/var/lib/plcrun: writable")
    assert (
        found["state directory"][1][0] is Status.FAIL and "Not a directory" in found["state directory"][1][1]
    )
    certificates = found["certificate"]
    assert certificates[0][0] is Status.FAIL and "expired on" in certificates[0][1]
    assert certificates[0][1].startswith("mqtt.tls.cert_file: CN=expired-gateway")
    assert certificates[1][0] is Status.WARN and "(10 days)" in certificates[1][1]
    assert certificates[2][0] is Status.WARN and "everest.tls.cert_file" in certificates[2][1]
    assert found["firewall"][0][0] is Status.WARN and "not loaded" in found["firewall"][0][1]
    assert exit_code(checks) == 1
    assert json.loads(render(checks, as_json=True))[0] == {
        "check": "kernel",
        "status": "warn",
        "detail": found["kernel"][0][1],
    }

    isolated_elsewhere = run_checks(
        host_tree(
            tmp_path / "other",
            rt=True,
            isolated="1",
            rtprio="50",
            memlock="unlimited",
            clocksource="tsc",
            governors=[],
            temps_mc=[],
        ),
        scan_cpu=0,
        nft=None,
    )
    assert by_name(isolated_elsewhere)["cpu isolation"][0] == (
        Status.WARN,
        "isolcpus 1, nohz_full 1: the scan CPU 0 is not isolated",
    )


def test_on_this_machine() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plcrun.cli", "doctor", "--json", "--state-dir", "/tmp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    checks = json.loads(result.stdout)
    statuses = {c["check"]: c["status"] for c in checks}
    assert result.returncode == (1 if "fail" in statuses.values() else 0)
    assert set(statuses) == {
        "kernel",
        "cpu isolation",
        "real-time priority",
        "memory locking",
        "clock source",
        "cpu frequency",
        "thermal",
        "state directory",
        "firewall",
    }
    details = {c["check"]: c["detail"] for c in checks}
    assert details["kernel"].startswith(os.uname().release)
    clocksource = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    if clocksource.exists():
        assert details["clock source"].startswith(clocksource.read_text().strip())
    assert details["state directory"] == "/tmp: writable"


def test_cli_with_a_fake_root_and_strict(tmp_path: Path) -> None:
    root = host_tree(
        tmp_path,
        rt=True,
        isolated="1",
        rtprio="50",
        memlock="unlimited",
        clocksource="tsc",
        governors=[],
        temps_mc=[40000],
    )
    command = ["doctor", "--root", str(root), "--scan-cpu", "1"]
    result = run_cli(*command, cwd=ROOT)  # in this process (test_on_this_machine runs the real command)
    # the firewall cannot be seen from a fake root (nft lists this machine): a warning, exit 0
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  kernel              6.6.30-rt30, PREEMPT_RT" in result.stdout
    strict = run_cli(*command, "--strict", cwd=ROOT)
    assert strict.returncode == (1 if "WARN" in strict.stdout else 0)
    missing = run_cli(*command, "--config", str(tmp_path / "nope.toml"), cwd=ROOT)
    assert missing.returncode == 2 and "nope.toml: no such file" in missing.stderr
