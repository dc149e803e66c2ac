# mypy: ignore-errors
# (runs inside the SECC process; uses that environment's cryptography and the iso15118 package)
"""Plug & Charge authorization: the contract certificate chain a car sends in its ISO 15118-20
AuthorizationReq, checked against the mobility operator (MO) roots in the PKI folder.

The package's -20 SECC checks the request's signature against the contract leaf, then asks the EVSE
controller ``is_authorized()`` without the certificate: ``capture_contracts`` keeps the chain on the
communication session (``plcrun_contract``) before the package's Authorization state handles the
request, so the controller can decide.

Trusted: ``<pki>/iso15118_2/certs/moRootCACert.pem`` or ``.der`` (the package's layout) and the V2G root
(``v2gRootCACert.pem``), which may issue MO sub-CAs. Checked: each certificate's validity period, and
that the leaf, sub-CA 2 and sub-CA 1 are each signed by the next, the last by a trusted root.
"""

from __future__ import annotations

import datetime
import os

from cryptography import x509
from pki_check import _signed_by, _subject

ROOT_FILES = ("moRootCACert.pem", "moRootCACert.der", "v2gRootCACert.pem")


def _roots(pki: str) -> list:
    roots = []
    for name in ROOT_FILES:
        path = os.path.join(pki, "iso15118_2", "certs", name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        try:
            if name.endswith(".der"):
                roots.append(x509.load_der_x509_certificate(data))
            else:
                roots.extend(x509.load_pem_x509_certificates(data))
        except ValueError:
            continue
    return roots


def emaid(leaf) -> str:
    names = leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(names[0].value) if names else _subject(leaf)


def check_contract(pki: str, chain, now: datetime.datetime | None = None) -> tuple[bool, str]:
    """(accepted, reason) for a -20 ``CertificateChain`` (DER leaf and sub-certificates) or None."""
    if chain is None or not getattr(chain, "certificate", None):
        return False, "the car sent no contract certificate"
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        leaf = x509.load_der_x509_certificate(bytes(chain.certificate))
        subs = [
            x509.load_der_x509_certificate(bytes(c))
            for c in (chain.sub_certificates.certificates if chain.sub_certificates else [])
        ]
    except ValueError as exc:
        return False, f"the contract certificate chain cannot be read: {exc}"
    contract = emaid(leaf)
    for cert in [leaf, *subs]:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if now < start:
            return (
                False,
                f"contract {contract}: {_subject(cert)} is not valid before {start:%Y-%m-%d %H:%M} UTC",
            )
        if now > end:
            return False, f"contract {contract}: {_subject(cert)} expired on {end:%Y-%m-%d %H:%M} UTC"
    roots = _roots(pki)
    if not roots:
        return False, f"no mobility operator root to check contract {contract} (moRootCACert.pem in {pki})"
    links = [leaf, *subs]
    for child, parent in zip(links, [*links[1:], None], strict=True):
        issuers = [parent] if parent is not None else roots
        if not any(_signed_by(child, issuer) for issuer in issuers):
            by = _subject(parent) if parent is not None else "a trusted mobility operator or V2G root"
            return False, f"contract {contract}: {_subject(child)} is not signed by {by}"
    return True, f"contract {contract}"


def capture_contracts() -> None:
    """Keep each -20 AuthorizationReq's contract chain on its communication session."""
    from iso15118.secc.states import iso15118_20_states

    handle = iso15118_20_states.Authorization.process_message

    async def process_message(self, message, message_exi=None):
        params = getattr(message, "pnc_params", None)
        if params is not None:
            self.comm_session.plcrun_contract = params.contract_cert_chain
        return await handle(self, message, message_exi)

    iso15118_20_states.Authorization.process_message = process_message
