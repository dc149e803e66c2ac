"""Secrets handed to plcrun by systemd credentials (``LoadCredential=``, ``LoadCredentialEncrypted=``).

systemd decrypts each credential (``systemd-creds encrypt --with-key=tpm2`` seals it to the machine's
TPM) into a private, read-only directory that only the service can read and passes its path in
``$CREDENTIALS_DIRECTORY``; the credential ``NAME`` is the file ``$CREDENTIALS_DIRECTORY/NAME``.

Two ways in, for every secret plcrun reads:

* Wherever a configuration key names a file (TLS ``key_file``, the MQTT buffer's ``key_file``, a token
  or password file), ``"credential:NAME"`` stands for that file (``resolve_secret_path``; the shared
  configuration reader does this for every path key).
* Fixed names for secrets that have no configuration key: ``DASHBOARD_TOKEN`` (``dashboard-token``),
  read with ``read_credential_text`` when present (``find_credential``).
* A secret in a private file named on the command line (``--token-file``): ``read_secret_file``.

Names are single path components (no ``/``, no ``..``), as systemd requires. Errors are one sentence
(``CredentialError``) for the caller to attach to its file and key.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from ..errors import PlcrunError

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
CREDENTIAL_PREFIX = "credential:"
DASHBOARD_TOKEN = "dashboard-token"
MQTT_BUFFER_KEY = "mqtt-buffer-key"
OCPP_PASSWORD = "ocpp-password"
RETAIN_KEY = "retain-key"  # MAC key of the retain file (plcrun run --retain-key-file otherwise)
MAX_CREDENTIAL_BYTES = 1024 * 1024  # systemd's own limit for one credential is 1 MiB

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,254}$")


class CredentialError(PlcrunError, ValueError):
    """A credential that was asked for cannot be read; the message says which and why."""


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def credentials_directory(env: Mapping[str, str] | None = None) -> Path | None:
    """``$CREDENTIALS_DIRECTORY`` (None when the process was not given credentials)."""
    value = _environ(env).get(CREDENTIALS_ENV, "")
    return Path(value) if value else None


def check_name(name: str) -> str:
    if not _NAME.match(name) or name in {".", ".."} or ".." in name:
        raise CredentialError(
            f"credential name {name!r} is not valid (letters, digits and _ . @ + -, no '/' or '..')"
        )
    return name


def find_credential(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """The file of credential ``name`` when the service was given it, else None."""
    check_name(name)
    directory = credentials_directory(env)
    if directory is None:
        return None
    path = directory / name
    return path if path.is_file() else None


def credential_path(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The file of credential ``name``; raises ``CredentialError`` saying what is missing."""
    check_name(name)
    directory = credentials_directory(env)
    if directory is None:
        raise CredentialError(
            f"credential '{name}' was asked for but ${CREDENTIALS_ENV} is not set "
            f"(give it with LoadCredential={name}:... or LoadCredentialEncrypted={name}:... in the unit)"
        )
    path = directory / name
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CredentialError(
            f"credential '{name}' is not in ${CREDENTIALS_ENV} ({directory}): "
            f"add LoadCredential={name}:... or LoadCredentialEncrypted={name}:... to the unit"
        ) from None
    except OSError as error:
        raise CredentialError(f"credential '{name}': cannot read {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CredentialError(f"credential '{name}': {path} is not a regular file")
    return path


def read_credential(name: str, env: Mapping[str, str] | None = None) -> bytes:
    """The bytes of credential ``name`` (at most 1 MiB, as systemd allows)."""
    path = credential_path(name, env)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as error:
        raise CredentialError(f"credential '{name}': cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise CredentialError(f"credential '{name}' is larger than {MAX_CREDENTIAL_BYTES} bytes")
    return data


def read_credential_text(name: str, env: Mapping[str, str] | None = None) -> str:
    """Credential ``name`` as UTF-8 text without its trailing line break; empty is an error."""
    return _secret_text(read_credential(name, env), f"credential '{name}'")


def optional_credential_text(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Credential ``name`` as text when the service was given it, else None (a present but empty or
    unreadable one is still an error)."""
    if find_credential(name, env) is None:
        return None
    return read_credential_text(name, env)


def read_secret_file(path: Path, what: str) -> str:
    """A secret kept in a file of its own (``--token-file``): UTF-8 text without its trailing line
    break; refused when readable by group or others (``chmod 600``), empty, or larger than 1 MiB."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CredentialError(f"{what} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise CredentialError(
                f"{what} {path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"chmod 600 {path}"
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as error:
        raise CredentialError(f"{what} {path} cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise CredentialError(f"{what} {path} is larger than {MAX_CREDENTIAL_BYTES} bytes")
    return _secret_text(data, f"{what} {path}")


def _secret_text(data: bytes, named: str) -> str:
    """A secret's bytes as UTF-8 text without the trailing line break; not text or empty is an error."""
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise CredentialError(f"{named} is not UTF-8 text") from None
    if not text.strip():
        raise CredentialError(f"{named} is empty")
    return text


def is_credential_reference(text: str) -> bool:
    return text.startswith(CREDENTIAL_PREFIX)


def resolve_secret_path(text: str, env: Mapping[str, str] | None = None) -> str:
    """``"credential:NAME"`` → the credential's file; any other text is returned unchanged."""
    if not is_credential_reference(text):
        return text
    return str(credential_path(text.removeprefix(CREDENTIAL_PREFIX), env))
