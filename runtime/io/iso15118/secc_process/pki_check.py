# mypy: ignore-errors
# (runs inside the SECC process; uses that environment's cryptography)
"""Checks the SECC's TLS material before the SECC offers TLS, so that a problem is an alarm with a
reason instead of the package's silent fallback to plain TCP.

Layout (the iso15118 package's): ``<pki>/iso15118_2/certs/cpoCertChain.pem`` (SECC leaf, CPO sub-CA 2,
sub-CA 1), ``v2gRootCACert.pem``; ``<pki>/iso15118_2/private_keys/seccLeaf.key`` and
``seccLeafPassword.txt``; for TLS 1.3 (mutual authentication) also ``oemRootCACert.pem``.
"""

from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

WARN_DAYS = 14


def _load_chain(path: str) -> list:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())


def _subject(cert) -> str:
    return cert.subject.rfc4514_string() or "(no subject)"


def check_pki(pki: str, tls_1_3: bool, now: datetime.datetime | None = None) -> tuple[list[str], list[str]]:
    """(problems that forbid TLS, warnings such as an expiry within WARN_DAYS days)."""
    now = now or datetime.datetime.now(datetime.UTC)
    certs_dir = os.path.join(pki, "iso15118_2", "certs")
    keys_dir = os.path.join(pki, "iso15118_2", "private_keys")
    problems: list[str] = []
    warnings: list[str] = []
    chain_path = os.path.join(certs_dir, "cpoCertChain.pem")
    root_path = os.path.join(certs_dir, "v2gRootCACert.pem")
    try:
        chain = _load_chain(chain_path)
        roots = _load_chain(root_path)
    except FileNotFoundError as exc:
        return [f"missing {exc.filename}"], []
    except (ValueError, OSError) as exc:
        return [f"unreadable certificate file: {exc}"], []
    if not chain:
        return [f"{chain_path} holds no certificate"], []
    for cert in chain + roots:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if now < start:
            problems.append(f"certificate {_subject(cert)} is not valid before {start:%Y-%m-%d %H:%M} UTC")
        elif now > end:
            problems.append(f"certificate {_subject(cert)} expired on {end:%Y-%m-%d %H:%M} UTC")
        elif end - now < datetime.timedelta(days=WARN_DAYS):
            warnings.append(f"certificate {_subject(cert)} expires on {end:%Y-%m-%d %H:%M} UTC")
    # each certificate is signed by the next, the last by a V2G root
    for child, parent in zip(chain, [*chain[1:], None], strict=True):
        issuers = [parent] if parent is not None else roots
        if not any(_signed_by(child, issuer) for issuer in issuers):
            problems.append(
                f"certificate {_subject(child)} is not signed by "
                + (_subject(parent) if parent is not None else "the V2G root in v2gRootCACert.pem")
            )
    key_path = os.path.join(keys_dir, "seccLeaf.key")
    password_path = os.path.join(keys_dir, "seccLeafPassword.txt")
    try:
        with open(password_path, "rb") as f:
            password = f.read().strip() or None
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=password)
        if key.public_key().public_numbers() != chain[0].public_key().public_numbers():
            problems.append(f"{key_path} is not the key of {_subject(chain[0])}")
    except FileNotFoundError as exc:
        problems.append(f"missing {exc.filename}")
    except (ValueError, TypeError) as exc:
        problems.append(f"{key_path} cannot be read with the password in {password_path}: {exc}")
    if tls_1_3 and not os.path.exists(os.path.join(certs_dir, "oemRootCACert.pem")):
        problems.append("TLS 1.3 needs oemRootCACert.pem to check the car's certificate")
    return problems, warnings


def _signed_by(child, issuer) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        public = issuer.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(
                child.signature, child.tbs_certificate_bytes, ec.ECDSA(child.signature_hash_algorithm)
            )
            return True
    except Exception:
        return False
    return False
