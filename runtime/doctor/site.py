"""Checks that need the site: certificate expiry (every ``ca_file``/``cert_file`` of the site file's
TLS tables) and the firewall (the template's ``inet plcrun`` table loaded, or at least configured)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509

from ..io.credentials import CredentialError, is_credential_reference, resolve_secret_path
from .host import Check, Status

CERT_KEYS = ("ca_file", "cert_file")
EXPIRY_WARN_DAYS = 30
FIREWALL_TABLE = ("inet", "plcrun")

NftLister = Callable[[], str | None]  # the loaded table as `nft list` prints it, None if unknown


def _certificate_keys(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _certificate_keys(value, dotted)
        elif key in CERT_KEYS and isinstance(value, str):
            yield dotted, value


def _one_certificate(key: str, path: Path, now: dt.datetime) -> Check:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as error:
        return Check("certificate", Status.FAIL, f"{key}: cannot read {path} ({error.strerror})")
    except ValueError as error:
        return Check("certificate", Status.FAIL, f"{key}: {path} holds no PEM certificate ({error})")
    first = min(certificates, key=lambda c: c.not_valid_after_utc)
    subject = first.subject.rfc4514_string() or "(no subject)"
    until = first.not_valid_after_utc
    if first.not_valid_before_utc > now:
        return Check(
            "certificate",
            Status.FAIL,
            f"{key}: {subject} not valid before {first.not_valid_before_utc:%Y-%m-%d} (check the clock)",
        )
    days = (until - now).days
    if until <= now:
        return Check("certificate", Status.FAIL, f"{key}: {subject} expired on {until:%Y-%m-%d}")
    status = Status.WARN if days < EXPIRY_WARN_DAYS else Status.PASS
    return Check("certificate", status, f"{key}: {subject} valid until {until:%Y-%m-%d} ({days} days)")


def check_certificates(site_file: Path, now: dt.datetime | None = None) -> list[Check]:
    now = now or dt.datetime.now(dt.UTC)
    try:
        data = tomllib.loads(site_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return [Check("certificate", Status.FAIL, f"{site_file}: cannot read the site file ({error})")]
    checks = []
    for key, text in _certificate_keys(data):
        if is_credential_reference(text):
            try:
                path = Path(resolve_secret_path(text))
            except CredentialError as error:
                checks.append(
                    Check("certificate", Status.WARN, f"{key}: {error} (run the check as the service)")
                )
                continue
        else:
            path = Path(text).expanduser()
            path = path if path.is_absolute() else site_file.resolve().parent / path
        checks.append(_one_certificate(key, path, now))
    if not checks:
        checks.append(Check("certificate", Status.PASS, f"{site_file}: no TLS certificates configured"))
    return checks


def nft_lister() -> str | None:
    """``nft list table inet plcrun`` on this machine (None when nft is missing or not permitted)."""
    nft = shutil.which("nft")
    if nft is None:
        return None
    try:
        result = subprocess.run(
            [nft, "list", "table", *FIREWALL_TABLE], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return "" if "No such file" in result.stderr else None
    return result.stdout


def check_firewall(root: Path, lister: NftLister | None) -> Check:
    loaded = lister() if lister is not None else None
    config = root / "etc/nftables.conf"
    configured = "plcrun" in (config.read_text(errors="replace") if config.is_file() else "")
    if loaded:
        policies = loaded.count("policy drop")
        if policies >= 2:
            return Check(
                "firewall", Status.PASS, f"table inet plcrun loaded ({policies} chains with policy drop)"
            )
        return Check(
            "firewall", Status.WARN, "table inet plcrun loaded but its chains do not drop by default"
        )
    where = f"{config} includes the plcrun rules" if configured else f"{config} has no plcrun rules"
    if loaded is None:
        return Check(
            "firewall", Status.WARN, f"cannot list the loaded rules (nft missing or not root); {where}"
        )
    return Check(
        "firewall", Status.WARN, f"table inet plcrun is not loaded; {where} (deploy/nftables/plcrun.nft)"
    )
