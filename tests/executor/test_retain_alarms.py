"""Retain problems an operator must see: a corrupt file (cold start), values that do not fit their
types (range-checked on restore), snapshots that cannot be written. Virtual time, real files."""

from __future__ import annotations

import shutil
from pathlib import Path

from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.executor.retain_store import RetainStore

PROGRAM = compile_file(Path(__file__).parent / "programs" / "retained.st")


def executor(path: Path) -> Executor:
    return Executor(PROGRAM, clock=VirtualClock(), config=ExecutorConfig(retain_path=str(path)))


def write_file(path: Path, values: dict[str, object]) -> None:
    layout = PROGRAM.retain_layout()
    store = RetainStore(path, PROGRAM.layout_hash(layout), layout)
    store.submit(values)
    assert store.flush()


def test_a_corrupt_retain_file_is_a_cold_start_with_an_alarm(tmp_path: Path) -> None:
    path = tmp_path / "site.retain"
    path.write_bytes(b"not a retain file at all")
    run = executor(path)
    run.run(max_scans=1)
    alarms = {a.key: a.message for a in run.alarms.active()}
    assert "retain file unusable" in alarms["retain"] and "cold start" in alarms["retain"]
    assert run.read("main.count") == 1
    run.shutdown()


def test_restored_values_are_checked_against_their_types(tmp_path: Path) -> None:
    path = tmp_path / "site.retain"
    write_file(path, {"main.count": 70000, "main.energy_wh": 12.5})  # 70000 does not fit an INT
    run = executor(path)
    run.run(max_scans=1)
    assert run.read("main.count") == 1  # its initial value, not a wrapped 4464
    assert run.read("main.energy_wh") == 12.5
    alarms = {a.key: a.message for a in run.alarms.active()}
    assert "main.count" in alarms["retain:values"]
    run.shutdown()


def test_a_snapshot_that_cannot_be_written_raises_an_alarm(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    run = executor(folder / "site.retain")
    try:
        run.run(max_scans=150)  # snapshots every second
        assert "retain:write" not in {a.key for a in run.alarms.active()}
        store = run._retain
        assert store is not None
        assert store.flush(10.0)  # no snapshot of the first run still being written
        shutil.rmtree(folder)  # the disk went away under the running site
        run.run(max_scans=100)  # the next snapshot is handed over ...
        assert not store.flush(10.0)  # ... and the writer thread fails on it
        run.run(max_scans=100)  # the executor sees the failure at its next snapshot
        alarms = {a.key: a.message for a in run.alarms.active()}
        assert "retain snapshot not written" in alarms["retain:write"]
        folder.mkdir()
        run.run(max_scans=100)
        assert store.flush(10.0)  # written again ...
        run.run(max_scans=100)
        assert "retain:write" not in {a.key for a in run.alarms.active()}  # ... and the alarm clears
    finally:
        run.shutdown()


def test_the_retain_idle_hook_runs_only_when_there_is_a_retain_file(tmp_path: Path) -> None:
    """The executor's idle hook only submits retain snapshots: without a retain file it is taken
    out at start (no call per scan for nothing); with one it stays and snapshots are written."""
    plain = Executor(PROGRAM, clock=VirtualClock())
    plain.run(max_scans=3)
    assert plain._idle not in plain.scheduler._idle_hooks
    path = tmp_path / "site.retain"
    kept = Executor(
        PROGRAM, clock=VirtualClock(), config=ExecutorConfig(retain_path=str(path), retain_interval_s=0.05)
    )
    kept.run(duration_ns=300_000_000)
    assert kept._idle in kept.scheduler._idle_hooks
    store = kept._retain
    assert store is not None and store.flush()
    assert int(store.status()["writes"]) >= 1  # written by the idle hook, before any stop
    kept.shutdown()
