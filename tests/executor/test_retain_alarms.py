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
