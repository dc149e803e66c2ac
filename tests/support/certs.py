"""Test certificates made with ``cryptography``: a CA, server and client certificates as PEM files.

Keys are EC P-256 (generated in microseconds, accepted by Mosquitto and Python's ssl module). Private
key files are written with mode 0600, as a gateway's key would be.

    ca = CertAuthority.create(tmp_path / "ca")
    server = ca.issue_server(tmp_path / "server", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    client = ca.issue_client(tmp_path / "client", common_name="gw-0001")
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class CertPair:
    """A certificate file and its private key file (both PEM)."""

    cert: Path
    key: Path


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plcrun tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, readable by the owner only (mode 0600)."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class CertAuthority:
    """A self-signed test CA that can issue server and client certificates."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, directory: Path, common_name: str = "plcrun test CA") -> CertAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _utc_now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 30 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path = directory / "ca.pem"
        key_path = directory / "ca.key"
        write_certificate(cert_path, cert)
        write_private_key(key_path, key)
        return cls(cert_path, key_path, cert, key)

    def _issue(
        self,
        directory: Path,
        common_name: str,
        usage: x509.ObjectIdentifier,
        sans: Sequence[x509.GeneralName],
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
    ) -> CertPair:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _utc_now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _ONE_DAY)
            .not_valid_after(not_after or now + 30 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        cert = builder.sign(self.private_key, hashes.SHA256())
        pair = CertPair(directory / f"{common_name}.pem", directory / f"{common_name}.key")
        write_certificate(pair.cert, cert)
        write_private_key(pair.key, key)
        return pair

    def issue_server(
        self,
        directory: Path,
        common_name: str = "broker",
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
    ) -> CertPair:
        """A server certificate valid for exactly the given DNS names and IP addresses."""
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        return self._issue(directory, common_name, ExtendedKeyUsageOID.SERVER_AUTH, sans, None, None)

    def issue_client(
        self,
        directory: Path,
        common_name: str = "gateway",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> CertPair:
        """A client certificate; pass ``not_after`` in the past for an expired one."""
        return self._issue(directory, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, (), not_before, not_after)

    def issue_expired_client(self, directory: Path, common_name: str = "expired-gateway") -> CertPair:
        now = _utc_now()
        return self.issue_client(directory, common_name, now - 10 * _ONE_DAY, now - _ONE_DAY)


@dataclass(frozen=True)
class TlsMaterial:
    """Everything a mutual-TLS test needs: one CA, a broker certificate and a gateway certificate."""

    ca: CertAuthority
    server: CertPair
    client: CertPair


def make_tls_material(
    directory: Path,
    server_dns: Sequence[str] = ("localhost",),
    server_ips: Sequence[str] = ("127.0.0.1",),
    client_name: str = "gateway",
) -> TlsMaterial:
    ca = CertAuthority.create(directory / "ca")
    server = ca.issue_server(directory / "server", dns_names=server_dns, ip_addresses=server_ips)
    client = ca.issue_client(directory / "client", common_name=client_name)
    return TlsMaterial(ca, server, client)
