"""plcrun run as systemd runs the service: a test-owned NOTIFY_SOCKET gets READY after the scans
started and WATCHDOG pings while they run, then STOPPING on SIGTERM; the dashboard token comes from
$CREDENTIALS_DIRECTORY. Without real-time rights (CAP_SYS_NICE out of the bounding set and
RLIMIT_RTPRIO 0, as the unit's limits would be without LimitRTPRIO) the refusals are WARNINGs, and
--require-realtime refuses to start."""

from __future__ import annotations

import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "credential-token-5f0c2a9e71"
_PR_CAPBSET_DROP, _CAP_IPC_LOCK, _CAP_SYS_NICE = 24, 14, 23


class NotifyListener:
    """The manager's side of NOTIFY_SOCKET, collecting datagrams on a thread."""

    def __init__(self) -> None:
        self.name = f"plcrun-service-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, predicate: str, count: int = 1, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while sum(m.startswith(predicate) for m in self.messages) < count:
            assert time.monotonic() < deadline, f"no {predicate!r} x{count}: {self.messages}"
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _write(url: str, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url + "api/write", data=b'{"path": "main.enable", "value": true}', method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_service_notifications_and_dashboard_token_from_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "dashboard-token").write_text(TOKEN + "\n")
    (creds / "dashboard-token").chmod(0o400)
    listener = NotifyListener()
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(creds), NOTIFY_SOCKET="@" + listener.name)
    env.update(WATCHDOG_USEC="1000000")
    env.pop("PLCRUN_TOKEN", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "plcrun.cli", "programs/freq_response.st", "--dashboard-port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            match = re.search(r"dashboard on (http://127\.0\.0\.1:\d+/) \(writes", child.stderr.readline())
            url = match.group(1) if match else None
        assert url is not None
        listener.wait_for("READY=1")
        listener.wait_for("WATCHDOG=1", count=3)
        assert listener.messages[0].startswith("READY=1\nSTATUS=scanning ")
        assert _write(url, None) == 401 and _write(url, "wrong") == 401
        assert _write(url, TOKEN) == 202  # accepted, applied at the next scan
        child.send_signal(signal.SIGTERM)
        rest = child.stderr.read()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        listener.close()
    assert child.returncode == 0 and "Traceback" not in rest
    assert listener.messages[-1].startswith("STOPPING=1")


def _without_realtime_rights() -> None:
    """In the child: no CAP_SYS_NICE / CAP_IPC_LOCK after exec (bounding set), RLIMIT_RTPRIO 0 and a
    64 KiB RLIMIT_MEMLOCK: what a unit without LimitRTPRIO/LimitMEMLOCK gives a non-root user."""
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, 64 * 1024))
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (_CAP_SYS_NICE, _CAP_IPC_LOCK):
            if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_unprivileged(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plcrun.cli", "run", "programs/freq_response.st", "--no-dashboard", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_without_realtime_rights,
        check=False,
    )


def test_missing_realtime_rights_are_warnings() -> None:
    result = _run_unprivileged("--duration", "0.3")
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"WARNING plcrun\.run: real-time setup: sched_fifo: not applied: .*RLIMIT_RTPRIO", result.stderr
    )
    assert re.search(r"WARNING plcrun\.run: real-time setup: mlockall: not applied", result.stderr)
    assert re.search(r"INFO    plcrun\.run: real-time setup: switch_interval: applied", result.stderr)


def test_require_realtime_refuses_to_start_without_it(tmp_path: Path) -> None:
    listener = NotifyListener()
    env = dict(os.environ, NOTIFY_SOCKET="@" + listener.name)
    try:
        result = _run_unprivileged("--require-realtime", "--duration", "5", env=env)
    finally:
        listener.close()
    assert result.returncode == 1
    assert "plcrun: real-time priority is required" in result.stderr
    assert "needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 40 (is 0)" in result.stderr
    assert "Traceback" not in result.stderr
    assert listener.messages == []  # never READY

    site = tmp_path / "site.toml"
    site.write_text('[site]\nname = "t"\n[runtime]\nrequire_realtime = true\n')
    result = _run_unprivileged("--config", str(site), "--duration", "5")
    assert result.returncode == 1 and "[runtime] require_realtime" in result.stderr
