"""The main job as the README starts it: the shipped program against the built-in simulation, with
the dashboard served by the runtime (on a free port here), stopped cleanly by Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def test_main_job_runs_the_simulation_serves_the_dashboard_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "plcrun.cli", "programs/freq_response.st", "--dashboard-port", "0"),
            *("--stats-json", str(stats_file), "--status-every", "1"),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    try:
        url = None
        deadline = time.monotonic() + 60
        lines: list[str] = []
        while url is None and time.monotonic() < deadline:
            line = child.stderr.readline()
            lines.append(line)
            match = re.search(r"dashboard on (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
        assert url is not None, "".join(lines)
        scans = 0
        while scans < 50 and time.monotonic() < deadline:
            time.sleep(0.2)
            tasks = _get(url + "api/stats")["tasks"]
            assert isinstance(tasks, dict)
            scans = tasks["fast"]["scans"]
        assert scans >= 50
        evs = _get(url + "api/evs")
        assert evs["in_use"] == 10
        request = urllib.request.Request(
            url + "api/write", data=b'{"path": "main.enable", "value": false}', method="POST"
        )
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("a write without a token was accepted")
        except urllib.error.HTTPError as error:
            assert error.code == 403
        child.send_signal(signal.SIGINT)
        rest = child.stderr.read()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, rest
    assert "outputs set to their safe values" in rest
    # plcrun run's waiting mode: scans may start up to 100 µs late before the scan thread spins
    assert (
        "waiting for releases: sleep, then spin what the p99 of the kernel's wake-up error exceeds 100 µs"
        in ("".join(lines))
    )
    assert "Traceback" not in rest
    assert json.loads(stats_file.read_text())["stats"]["tasks"]["fast"]["scans"] >= 50
