"""Secrets from private files and systemd credentials: read without the trailing newline; refused,
naming the file, when missing, too short or readable by others."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from plcrun.io.secrets import SecretError, credential_path, read_secret, read_secret_bytes


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_a_private_file_is_read_without_its_newline(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "token", "correct-horse-battery\n")
    assert read_secret(path, "dashboard token", min_length=16) == "correct-horse-battery"
    assert read_secret_bytes(path, "key") == b"correct-horse-battery"


@pytest.mark.parametrize(
    ("text", "mode", "problem"),
    [
        ("correct-horse-battery", 0o644, "readable by group or others (mode 0644); make it private"),
        ("short", 0o600, "5 bytes; at least 16 needed"),
        ("\n", 0o600, "empty; at least 16 needed"),
    ],
)
def test_unusable_secrets_are_refused_naming_the_file(
    tmp_path: Path, text: str, mode: int, problem: str
) -> None:
    path = secret_file(tmp_path / "token", text, mode)
    with pytest.raises(SecretError) as caught:
        read_secret(path, "dashboard token", min_length=16)
    assert str(caught.value).startswith(f"dashboard token {path}: ")
    assert problem in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot be read: No such file"):
        read_secret(tmp_path / "nothing", "dashboard token")


def test_systemd_credentials_are_found_and_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert credential_path("dashboard-token") is None
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert credential_path("dashboard-token") is None
    # systemd makes the directory private; the file's own mode is not ours to judge
    secret_file(tmp_path / "dashboard-token", "from-systemd-credential\n", 0o440)
    path = credential_path("dashboard-token")
    assert path == tmp_path / "dashboard-token"
    assert read_secret(path, "dashboard token", min_length=16) == "from-systemd-credential"
