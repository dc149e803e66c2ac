"""Retain persistence: round trip, layout change messages, corruption fallback, kill -9 in mid-write."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from plcrun.executor.retain_store import (
    RetainFileError,
    RetainImage,
    RetainStore,
    decode_retain_file,
    describe_layout_change,
    encode_retain_file,
    layout_hash,
)
from retain_writer_child import LAYOUT as CHILD_LAYOUT
from retain_writer_child import snapshot

LAYOUT = [
    ("main.energy_kwh", "LREAL"),
    ("main.count", "DINT"),
    ("main.enabled", "BOOL"),
    ("main.name", "STRING"),
]
CHILD = Path(__file__).with_name("retain_writer_child.py")


def values(n: int) -> dict[str, object]:
    return {"main.energy_kwh": 1.5 * n, "main.count": n, "main.enabled": n % 2 == 0, "main.name": f"run {n}"}


def store(tmp_path: Path, layout: list[tuple[str, str]] = LAYOUT) -> RetainStore:
    return RetainStore(tmp_path / "plcrun.retain", layout_hash(layout), layout, min_interval_s=0.0)


def test_round_trip_through_the_writer_thread(tmp_path: Path) -> None:
    writer = store(tmp_path)
    assert writer.load().values is None  # nothing yet: cold start
    writer.start()
    snapshot: dict[str, object] = {
        **values(7),
        "main.table": [1, 2, 3],
        "main.nan": math.nan,
        "main.inf": -math.inf,
        "main.tiny": 5e-324,
    }
    writer.submit(snapshot)
    assert writer.flush()
    writer.close()
    assert writer.status()["writes"] == 1 and writer.status()["last_error"] is None
    loaded = store(tmp_path).load()
    assert loaded.source == "main" and loaded.seq == 1 and loaded.messages == []
    assert loaded.values is not None
    got = loaded.values
    assert math.isnan(got.pop("main.nan"))  # type: ignore[arg-type]
    snapshot.pop("main.nan")
    assert got == snapshot


def test_the_latest_snapshot_wins_and_sequence_numbers_continue(tmp_path: Path) -> None:
    first = store(tmp_path)
    for n in (1, 2, 3):
        first.submit(values(n))  # before start: only the latest is kept
    first.start()
    assert first.flush()
    first.close()
    assert first.writes == 1
    second = store(tmp_path)
    loaded = second.load()
    assert loaded.values == values(3) and loaded.seq == 1
    second.submit(values(4))
    assert second.flush()  # no writer thread: written synchronously
    again = store(tmp_path).load()
    assert again.values == values(4) and again.seq == 2
    backup = decode_retain_file((tmp_path / "plcrun.retain.bak").read_bytes(), "bak")
    assert backup.values == values(3)  # the previous good file is the backup


def test_layout_change_is_refused_with_a_message_saying_what_changed(tmp_path: Path) -> None:
    writer = store(tmp_path)
    writer.submit(values(5))
    assert writer.flush()
    new_layout = [
        ("main.energy_kwh", "LREAL"),
        ("main.count", "LINT"),
        ("main.name", "STRING"),
        ("main.mode", "INT"),
    ]
    loaded = store(tmp_path, new_layout).load()
    assert loaded.values is None
    assert loaded.layout_changes == [
        "variable main.count changed type from DINT to LINT",
        "variable main.enabled removed",
        "variable main.mode added",
    ]
    message = loaded.messages[-1]
    assert (
        str(tmp_path / "plcrun.retain") in message and "main.count changed type from DINT to LINT" in message
    )
    # Unchanged variables are offered for a caller that wants a partial warm start.
    assert loaded.carried_over == {"main.energy_kwh": 7.5, "main.name": "run 5"}


def test_same_variables_in_another_order_is_not_a_change() -> None:
    assert layout_hash(LAYOUT) == layout_hash(list(reversed(LAYOUT)))
    assert describe_layout_change(LAYOUT, list(reversed(LAYOUT))) == []
    assert layout_hash(LAYOUT) != layout_hash([*LAYOUT[:-1], ("main.name", "WSTRING")])


def write_two(tmp_path: Path) -> tuple[Path, Path]:
    writer = store(tmp_path)
    writer.submit(values(1))
    assert writer.flush()
    writer.submit(values(2))
    assert writer.flush()
    return writer.path, writer.backup_path


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-10], "truncated"),
        (lambda data: data[:-3] + b"999", "checksum mismatch"),
        (lambda data: b"", "no header line"),
        (lambda data: b"hello\nworld", "not a plcrun retain file"),
    ],
)
def test_a_corrupt_main_file_falls_back_to_the_backup(tmp_path: Path, damage: object, reason: str) -> None:
    main, _backup = write_two(tmp_path)
    main.write_bytes(damage(main.read_bytes()))  # type: ignore[operator]
    loaded = store(tmp_path).load()
    assert loaded.source == "backup"
    assert loaded.values == values(1)
    assert loaded.messages[0].startswith(str(main)) and reason in loaded.messages[0]
    assert "using the backup" in loaded.messages[1]


def test_a_corrupt_main_file_does_not_replace_the_good_backup(tmp_path: Path) -> None:
    main, backup = write_two(tmp_path)
    main.write_bytes(b"garbage")
    writer = store(tmp_path)
    assert writer.load().values == values(1)
    writer.submit(values(3))
    assert writer.flush()
    assert decode_retain_file(backup.read_bytes(), "bak").values == values(1)
    assert store(tmp_path).load().values == values(3)


def test_both_files_damaged_or_missing_is_a_cold_start_with_reasons(tmp_path: Path) -> None:
    main, backup = write_two(tmp_path)
    main.write_bytes(b"x")
    backup.write_bytes(main.read_bytes())
    loaded = store(tmp_path).load()
    assert loaded.values is None and loaded.source == "none"
    assert [m.split(":")[0] for m in loaded.messages[:2]] == [str(main), str(backup)]
    assert "cold start" in loaded.messages[-1]
    main.unlink()
    backup.unlink()
    empty = store(tmp_path).load()
    assert empty.values is None and empty.messages[0] == f"{main}: no retain file"


def test_main_missing_uses_the_backup(tmp_path: Path) -> None:
    main, _ = write_two(tmp_path)
    main.unlink()  # a crash between rotating the backup and the rename on a file system without links
    loaded = store(tmp_path).load()
    assert loaded.source == "backup" and loaded.values == values(1)


def test_write_errors_are_reported_not_raised(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir"
    writer = RetainStore(
        missing_dir / "plcrun.retain", layout_hash(LAYOUT), LAYOUT, min_interval_s=0.0, retry_interval_s=600
    )
    writer.start()
    writer.submit(values(1))
    assert writer.flush(timeout=10) is False
    error = writer.status()["last_error"]
    assert isinstance(error, str) and str(missing_dir / "plcrun.retain") in error and "No such file" in error
    assert writer.status()["pending"] is True  # kept for a retry
    missing_dir.mkdir(parents=True)
    assert writer.flush(timeout=10) is True  # a flush retries at once
    writer.close()
    assert RetainStore(missing_dir / "plcrun.retain", layout_hash(LAYOUT), LAYOUT).load().values == values(1)


def test_close_gives_up_on_a_persistent_write_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "plcrun.retain"
    writer = RetainStore(path, layout_hash(LAYOUT), LAYOUT, retry_interval_s=600)
    writer.start()
    writer.submit(values(1))
    writer.close(timeout=30)
    assert writer.status()["last_error"] is not None
    assert not any(t.name == "plcrun-retain" and t.is_alive() for t in threading.enumerate())


def test_an_unserialisable_value_is_named(tmp_path: Path) -> None:
    writer = store(tmp_path)
    writer.submit({"main.count": 1, "main.blob": object()})
    assert writer.flush() is False
    assert "main.blob" in str(writer.last_error)


def test_decode_names_the_file_and_checks_the_version() -> None:
    data = encode_retain_file(RetainImage({"a": 1}, "h", [("a", "INT")], 1, 0.0))
    assert decode_retain_file(data, "f").values == {"a": 1}
    with pytest.raises(RetainFileError, match=r"^site\.retain: version 9 unsupported"):
        decode_retain_file(data.replace(b"RETAIN 1", b"RETAIN 9", 1), "site.retain")


# --- kill -9 in the middle of writing -------------------------------------------------------------


def run_child_until(path: Path, mode: str, stop_line: str, delay_s: float = 0.0) -> list[str]:
    """Start the writer child, read its lines until ``stop_line`` (prefix) appears, wait ``delay_s``
    (to land somewhere in the next write), SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            assert not line.startswith("error"), line
            if line.startswith(stop_line):
                time.sleep(delay_s)
                break
        else:
            pytest.fail(f"writer child ended early: {child.stderr.read() if child.stderr else ''}")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return lines


def check_complete_snapshot(path: Path, at_least: int) -> int:

    loaded = RetainStore(path, "layout-1", CHILD_LAYOUT).load()
    assert loaded.values is not None, loaded.messages
    n = loaded.values["n"]
    assert isinstance(n, int) and n >= at_least
    assert loaded.values == snapshot(n)  # complete and consistent, not a mix of two snapshots
    return n


def acked(lines: list[str]) -> int:
    return max((int(line.split()[1]) for line in lines if line.startswith("acked")), default=0)


def test_kill_9_at_random_moments_keeps_a_complete_snapshot(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plcrun.retain"
    rng = random.Random(61131)
    last = 0
    # One write cycle (build, encode, write 0.7 MB, fsync, rename) takes about 20 ms here; the kill
    # lands at a random point of it. The two tests below stop at fixed points instead.
    for _ in range(6):  # each round restarts on what the previous kill left behind
        stop = f"acked {last + rng.randint(2, 4)}"
        lines = run_child_until(path, "loop", stop, delay_s=rng.uniform(0.0, 0.025))
        last = check_complete_snapshot(path, at_least=acked(lines))


def test_kill_9_with_the_temp_file_half_written(tmp_path: Path) -> None:
    path = tmp_path / "plcrun.retain"
    lines = run_child_until(path, "pause-mid-write", "stage half-written")
    assert acked(lines) == 2
    assert path.with_name("plcrun.retain.tmp").exists()
    assert check_complete_snapshot(path, at_least=2) == 2


def test_kill_9_before_the_rename(tmp_path: Path) -> None:
    path = tmp_path / "plcrun.retain"
    lines = run_child_until(path, "pause-before-commit", "stage before-commit")
    assert acked(lines) == 2
    # The complete temp file of snapshot 3 is not used; the last committed file is.
    assert check_complete_snapshot(path, at_least=2) == 2
    assert decode_retain_file(path.with_name("plcrun.retain.bak").read_bytes(), "bak").seq == 2
    # A new writer replaces the stale temp file and goes on.
    writer = RetainStore(path, "layout-1", [("n", "DINT")])
    writer.load()
    writer.submit({"n": 99})
    assert writer.flush()
