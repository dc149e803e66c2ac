"""Secrets (tokens, keys) from a file or a systemd credential, never from the command line.

A command-line argument is visible to every local user (``ps``, ``/proc/<pid>/cmdline``); a file
readable only by its owner, or a systemd credential (``LoadCredential=`` / ``SetCredential=``,
found under ``$CREDENTIALS_DIRECTORY``), is not.

- ``credential_path(name)``: ``$CREDENTIALS_DIRECTORY/<name>`` when systemd passed that credential.
- ``read_secret(path, what, min_length=...)``: the text of a secret file, without its trailing
  newline; ``SecretError`` naming the file when it is missing, empty, too short, or readable by
  group or others (outside the credentials directory, which systemd makes private itself).
- ``read_secret_bytes``: the same for binary keys.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


class SecretError(ValueError):
    """A secret that cannot be used; the message names the file and the problem."""


def credential_path(name: str) -> Path | None:
    """The file of systemd credential ``name``, or None when there is none."""
    directory = os.environ.get(CREDENTIALS_ENV)
    if not directory:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


def _in_credentials_directory(path: Path) -> bool:
    directory = os.environ.get(CREDENTIALS_ENV)
    if not directory:
        return False
    try:
        return path.resolve().parent == Path(directory).resolve()
    except OSError:
        return False


def read_secret_bytes(path: Path, what: str, *, min_length: int = 1) -> bytes:
    """The content of a private secret file (see the module docstring)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{what} {path}: not a regular file")
        if info.st_mode & 0o077 and not _in_credentials_directory(path):
            raise SecretError(
                f"{what} {path}: readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"make it private: chmod 600 {path}"
            )
        data = path.read_bytes()
    except OSError as error:
        raise SecretError(f"{what} {path}: cannot be read: {error.strerror or error}") from None
    data = data.rstrip(b"\r\n")
    if len(data) < min_length:
        raise SecretError(
            f"{what} {path}: {'empty' if not data else f'{len(data)} bytes'}; at least {min_length} needed"
        )
    return data


def read_secret(path: Path, what: str, *, min_length: int = 1) -> str:
    """The text of a private secret file, without its trailing newline."""
    data = read_secret_bytes(path, what, min_length=min_length)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{what} {path}: not UTF-8 text") from None
