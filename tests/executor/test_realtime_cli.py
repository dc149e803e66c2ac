"""The real-time path through the command line (no timing is asserted): statistics JSON, RETAIN
restored after a normal stop and after kill -9, Ctrl-C stopping cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from plcrun.executor.retain_store import decode_retain_file

PROGRAMS = Path(__file__).parent / "programs"

COUNTER = """
PROGRAM counter
VAR RETAIN n : DINT; END_VAR
n := n + 1;
END_PROGRAM
"""


def _plcrun(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plcrun.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _start(program: Path, retain: Path, *extra: str, capture: bool = False) -> subprocess.Popen[str]:
    """plcrun run in the background (no dashboard, so no port is needed)."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plcrun.cli",
            "run",
            str(program),
            "--no-dashboard",
            "--retain",
            str(retain),
            *extra,
        ],
        stdout=output,
        stderr=output,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _retained(path: Path) -> int:
    value = decode_retain_file(path.read_bytes(), str(path)).values["counter.n"]
    assert isinstance(value, int)
    return value


@pytest.mark.slow
def test_run_writes_statistics_and_keeps_retain_across_restarts(tmp_path: Path) -> None:
    program = tmp_path / "counter.st"
    program.write_text(COUNTER)
    retain = tmp_path / "counter.retain"
    stats = tmp_path / "stats.json"
    first = _plcrun(
        "run",
        str(program),
        "--no-dashboard",
        "--duration",
        "0.5",
        "--retain",
        str(retain),
        "--stats-json",
        str(stats),
    )
    assert first.returncode == 0, first.stderr
    data = json.loads(stats.read_text())
    scans = data["stats"]["tasks"]["DEFAULT"]["scans"]
    assert scans > 0
    assert _retained(retain) == scans  # the final snapshot is written on stop
    second = _plcrun(
        "run",
        str(program),
        "--no-dashboard",
        "--duration",
        "0.3",
        "--retain",
        str(retain),
        "--stats-json",
        str(stats),
    )
    assert second.returncode == 0, second.stderr
    more = json.loads(stats.read_text())["stats"]["tasks"]["DEFAULT"]["scans"]
    assert _retained(retain) == scans + more  # restored, then counted on


def test_kill_9_loses_at_most_the_last_interval(tmp_path: Path) -> None:
    program = tmp_path / "counter.st"
    program.write_text(COUNTER)
    retain = tmp_path / "counter.retain"
    child = _start(program, retain, "--duration", "60")
    try:
        _wait_for(lambda: retain.exists() and _retained(retain) > 0, "a retain snapshot")  # then one a second
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    before = _retained(retain)  # whatever the kill interrupted, a complete snapshot is there
    stats = tmp_path / "stats.json"
    again = _plcrun(
        "run",
        str(program),
        "--no-dashboard",
        "--duration",
        "0.2",
        "--retain",
        str(retain),
        "--stats-json",
        str(stats),
    )
    assert again.returncode == 0, again.stderr
    scans = json.loads(stats.read_text())["stats"]["tasks"]["DEFAULT"]["scans"]
    assert _retained(retain) == before + scans


def test_ctrl_c_stops_at_a_scan_boundary(tmp_path: Path) -> None:
    program = tmp_path / "counter.st"
    program.write_text(COUNTER)
    retain = tmp_path / "counter.retain"
    child = _start(program, retain, capture=True)
    try:
        _wait_for(retain.exists, "the retain file")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "Traceback" not in err
    assert _retained(retain) > 0


def test_sighup_swaps_in_the_edited_program_and_keeps_state(tmp_path: Path) -> None:
    program = tmp_path / "counter.st"
    program.write_text(COUNTER)
    retain = tmp_path / "counter.retain"
    child = _start(program, retain, "--duration", "60", capture=True)
    try:
        _wait_for(lambda: retain.exists() and _retained(retain) > 0, "a retain snapshot")
        program.write_text(COUNTER.replace("n := n + 1;", "n := n + 1000;"))
        child.send_signal(signal.SIGHUP)
        # the new code adds 1000 per scan to the kept value
        _wait_for(lambda: _retained(retain) > 100_000, "the online change")
        program.write_text("PROGRAM counter VAR x : INT END_VAR END_PROGRAM")  # does not compile
        child.send_signal(signal.SIGHUP)
        broken = _retained(retain)
        _wait_for(lambda: _retained(retain) > broken + 2000, "the old program to go on")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert "online change: " in err
    assert "online change refused, the running program stays" in err
    assert "error[E0001]" in err
