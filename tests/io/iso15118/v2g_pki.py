"""A test V2G PKI made by the tests (ECDSA P-256, SHA-256, like ISO 15118-2): V2G root -> CPO sub-CA 1
-> CPO sub-CA 2 -> SECC leaf; the car's OEM root -> sub-CAs -> OEM provisioning leaf (TLS 1.3); and the
mobility operator's MO root -> MO sub-CA 1 -> MO sub-CA 2 -> contract leaf (Plug & Charge), written in the
iso15118 package's layout under ``<dir>/iso15118_2/``."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PASSWORD = b"plcrun-test"
DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plcrun test"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    ca: bool,
    start: datetime.datetime,
    end: datetime.datetime,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, True, False, True, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _chain(
    names: tuple[str, ...], now: datetime.datetime, leaf_expired: bool
) -> tuple[x509.Certificate, list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """(root, the chain leaf first without the root, the leaf's key) for ``names`` root first."""
    chain: list[x509.Certificate] = []
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None
    root = None
    for common_name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = common_name == names[-1]
        end = now - DAY if leaf and leaf_expired else now + 365 * DAY
        cert = _cert(common_name, key, issuer, not leaf, now - 30 * DAY, end)
        if root is None:
            root = cert
        else:
            chain.insert(0, cert)
        issuer = (cert.subject, key)
    assert root is not None and issuer is not None
    return root, chain, issuer[1]


CONTRACT_ID = "DEPLCC0000000001"  # the contract leaf's common name (an EMAID)


def make_pki(
    directory: Path, leaf_expired: bool = False, oem_expired: bool = False, contract_expired: bool = False
) -> Path:
    """Write the PKI; ``leaf_expired``, ``oem_expired``, ``contract_expired``: that leaf certificate
    (SECC, the car's OEM provisioning certificate, the contract certificate) ended yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    certs = directory / "iso15118_2" / "certs"
    keys = directory / "iso15118_2" / "private_keys"
    certs.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    for prefix, names, expired in (
        ("secc", ("V2GRootCA", "CPOSubCA1", "CPOSubCA2", "SECCCert"), leaf_expired),
        ("oem", ("OEMRootCA", "OEMSubCA1", "OEMSubCA2", "OEMProvCert"), oem_expired),
    ):
        root, chain, key = _chain(names, now, expired)
        root_name = "v2gRootCACert" if prefix == "secc" else "oemRootCACert"
        chain_name = "cpoCertChain" if prefix == "secc" else "oemCertChain"
        (certs / f"{root_name}.pem").write_bytes(root.public_bytes(pem))
        (certs / f"{root_name}.der").write_bytes(root.public_bytes(serialization.Encoding.DER))
        (certs / f"{chain_name}.pem").write_bytes(b"".join(c.public_bytes(pem) for c in chain))
        (certs / f"{prefix}LeafCert.pem").write_bytes(chain[0].public_bytes(pem))
        encryption = serialization.BestAvailableEncryption(PASSWORD)
        (keys / f"{prefix}Leaf.key").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, encryption)
        )
        (keys / f"{prefix}LeafPassword.txt").write_bytes(PASSWORD + b"\n")
    # the car's contract (Plug & Charge): DER files, as the package's EV reads them
    der = serialization.Encoding.DER
    root, chain, key = _chain(("MORootCA", "MOSubCA1", "MOSubCA2", CONTRACT_ID), now, contract_expired)
    for name, cert in (("contractLeafCert", chain[0]), ("moSubCA2Cert", chain[1]), ("moSubCA1Cert", chain[2]),
                       ("moRootCACert", root)):  # fmt: skip
        (certs / f"{name}.der").write_bytes(cert.public_bytes(der))
        (certs / f"{name}.pem").write_bytes(cert.public_bytes(pem))
    (keys / "contractLeaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, encryption)
    )
    (keys / "contractLeafPassword.txt").write_bytes(PASSWORD + b"\n")
    return directory
