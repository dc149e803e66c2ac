"""The retain file is private (0600) and, with a key, carries a MAC: a file rewritten by someone
without the key (values changed, checksum recomputed) is refused and the backup is used; files of
the other kind (keyed vs. not) are refused with a message that says so."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from plcrun.executor.retain_store import RetainFileError, RetainStore, decode_retain_file, layout_hash

LAYOUT = [("main.energy_kwh", "LREAL"), ("main.count", "DINT")]
KEY = bytes(range(32))


def store(tmp_path: Path, key: bytes | None = KEY) -> RetainStore:
    return RetainStore(tmp_path / "site.retain", layout_hash(LAYOUT), LAYOUT, min_interval_s=0.0, key=key)


def write(tmp_path: Path, count: int, key: bytes | None = KEY) -> None:
    writer = store(tmp_path, key)
    writer.load()
    writer.submit({"main.energy_kwh": 1.5 * count, "main.count": count})
    assert writer.flush()


def forge(path: Path, count: int) -> None:
    """What someone with write access but no key can do: change a value, recompute a checksum."""
    header, body = path.read_bytes().split(b"\n", 1)
    body = body.replace(b'"main.count":1', f'"main.count":{count}'.encode())
    fields = header.decode().split()
    digest = hashlib.sha256(body).hexdigest()
    fields[2] = fields[2].split("=")[0] + "=" + digest
    fields[3] = f"length={len(body)}"
    path.write_bytes(" ".join(fields).encode() + b"\n" + body)


def test_files_are_written_private(tmp_path: Path) -> None:
    stale = tmp_path / "site.retain.tmp"
    stale.write_text("left over")
    os.chmod(stale, 0o644)
    write(tmp_path, 1)
    write(tmp_path, 2)
    for name in ("site.retain", "site.retain.bak"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_a_forged_keyed_file_is_refused_and_the_backup_used(tmp_path: Path) -> None:
    write(tmp_path, 1)
    write(tmp_path, 1)  # main and backup, both with count 1
    path = tmp_path / "site.retain"
    assert b"hmac-sha256=" in path.read_bytes().split(b"\n", 1)[0]
    forge(path, 9999)
    loaded = store(tmp_path).load()
    assert loaded.source == "backup" and loaded.values == {"main.energy_kwh": 1.5, "main.count": 1}
    assert any("MAC mismatch (the file is corrupt, forged or from another key)" in m for m in loaded.messages)
    other = store(tmp_path, bytes(range(1, 33))).load()  # another key: nothing verifies
    assert other.values is None and other.source == "none"


def test_keyed_and_unkeyed_files_are_not_mixed(tmp_path: Path) -> None:
    write(tmp_path, 1, key=None)
    unkeyed = (tmp_path / "site.retain").read_bytes()
    forge(tmp_path / "site.retain", 77)  # without a key a forgery cannot be told from the real thing
    assert store(tmp_path, None).load().values == {"main.energy_kwh": 1.5, "main.count": 77}
    (tmp_path / "site.retain").write_bytes(unkeyed)
    loaded = store(tmp_path).load()
    assert loaded.values is None
    assert any("written without a key (its checksum can be forged)" in m for m in loaded.messages)
    keyed_dir = tmp_path / "keyed"
    keyed_dir.mkdir()
    write(keyed_dir, 3)
    with pytest.raises(RetainFileError, match="written with a retain key, but none is configured"):
        decode_retain_file((keyed_dir / "site.retain").read_bytes(), "site.retain")


def test_short_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16 bytes; at least 32"):
        store(tmp_path, bytes(16))
