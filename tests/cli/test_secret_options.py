"""Where plcrun run takes its secrets from. The dashboard token: a private --token-file, --token
(warned: visible in the process list), $PLCRUN_TOKEN or the systemd credential; the retain key:
--retain-key-file or the credential retain-key. And the refusals, each one line."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plcrun.cli import dashboard_token, retain_key
from plcrun.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "file-token-8d1e5a77c2"


def args(**given: object) -> argparse.Namespace:
    return argparse.Namespace(**{"token": None, "token_file": None, "retain_key_file": None, **given})


def token_file(path: Path, text: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_the_token_file_is_read_and_must_be_private(tmp_path: Path) -> None:
    assert dashboard_token(args(token_file=str(token_file(tmp_path / "t")))) == TOKEN
    shared = token_file(tmp_path / "shared", mode=0o644)
    with pytest.raises(UsageError, match=r"readable by group or others \(mode 0644\): chmod 600"):
        dashboard_token(args(token_file=str(shared)))
    with pytest.raises(UsageError, match="cannot be read"):
        dashboard_token(args(token_file=str(tmp_path / "missing")))
    with pytest.raises(UsageError, match="is empty"):
        dashboard_token(args(token_file=str(token_file(tmp_path / "empty", "\n"))))
    with pytest.raises(UsageError, match="not both"):
        dashboard_token(args(token="x" * 20, token_file=str(tmp_path / "t")))


def test_a_token_on_the_command_line_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="plcrun.dashboard"):
        assert dashboard_token(args(token="command-line-token-123")) == "command-line-token-123"
    assert "visible to every local user in the process list" in caplog.text


def test_environment_then_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLCRUN_TOKEN", "environment-token-4711")
    assert dashboard_token(args()) == "environment-token-4711"
    monkeypatch.delenv("PLCRUN_TOKEN")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    token_file(tmp_path / "dashboard-token", mode=0o400)
    assert dashboard_token(args()) == TOKEN


def test_run_refuses_a_short_token_and_a_public_address_without_one(tmp_path: Path) -> None:
    program = str(ROOT / "programs/freq_response.st")
    env = {k: v for k, v in os.environ.items() if k not in ("PLCRUN_TOKEN", "CREDENTIALS_DIRECTORY")}
    common = ["--duration", "5", "--dashboard-port", "0"]
    for extra, message in [
        (["--token-file", str(token_file(tmp_path / "short", "short\n"))], "5 characters long; at least 16"),
        (["--dashboard-host", "0.0.0.0"], "not a loopback address, without a token"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "plcrun.cli", "run", program, *common, *extra],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=env,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert "plcrun: I/O:" not in result.stderr  # refused before the program is compiled and built


def test_the_retain_key_from_a_file_or_the_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert retain_key(args()) is None
    hex_key = token_file(tmp_path / "retain.key", "ab" * 32 + "\n")
    assert retain_key(args(retain_key_file=str(hex_key))) == bytes([0xAB]) * 32
    short = token_file(tmp_path / "short.key", "0123456789\n")
    with pytest.raises(UsageError, match="holds 10 bytes; give 64 hex characters or 32 or more bytes"):
        retain_key(args(retain_key_file=str(short)))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    token_file(tmp_path / "retain-key", "k" * 40, mode=0o400)
    assert retain_key(args()) == b"k" * 40
