"""TLS for the backhaul: the client context (CA verification with hostname check, client certificate,
TLS 1.2 minimum) and plain-language descriptions of why a connection was refused.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl

from cryptography import x509

from .config import TlsConfig

_MIN_VERSION = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def make_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """Verify the broker against ``ca_file`` and its host name, present the gateway certificate.

    OpenSSL offers TLS 1.3 first, so 1.3 is used whenever the broker supports it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    context.minimum_version = _MIN_VERSION[tls.min_version]
    context.load_verify_locations(cafile=str(tls.ca_file))
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def client_certificate_problem(tls: TlsConfig, now: dt.datetime | None = None) -> str | None:
    """Why the gateway's own certificate cannot be accepted by a broker (expired, not yet valid)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        certificate = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())
    except (OSError, ValueError) as error:
        return f"client certificate {tls.cert_file} cannot be read ({error})"
    if certificate.not_valid_after_utc < now:
        expiry = certificate.not_valid_after_utc
        return f"client certificate {tls.cert_file} expired on {expiry:%Y-%m-%d %H:%M} UTC"
    if certificate.not_valid_before_utc > now:
        return (
            f"client certificate {tls.cert_file} is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the clock)"
        )
    return None


def _with_client_hint(text: str, tls: TlsConfig | None) -> str:
    problem = client_certificate_problem(tls) if tls is not None else None
    return f"{text}: {problem}" if problem else text


def describe_connect_error(error: BaseException, host: str, port: int, tls: TlsConfig | None) -> str:
    """One sentence for the log, the status and the alarm: what failed and what to check."""
    where = f"{host}:{port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or str(error)
        if "mismatch" in detail.lower():
            return f"TLS: the broker's certificate is not valid for host '{host}' ({detail})"
        ca = tls.ca_file if tls is not None else "the CA file"
        return f"TLS: the broker's certificate at {where} is not trusted by {ca} ({detail})"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        if "ALERT" in reason.upper():
            return _with_client_hint(
                f"TLS: the broker at {where} rejected the client certificate ({reason})", tls
            )
        return _with_client_hint(f"TLS handshake with {where} failed ({reason})", tls)
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where} (is the broker running?)"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer from {where} (timeout)"
    if isinstance(error, OSError):
        return f"cannot connect to {where}: {error.strerror or error}"
    return f"cannot connect to {where}: {error}"


def describe_lost_before_connack(host: str, port: int, tls: TlsConfig | None, detail: str) -> str:
    """The broker closed the connection before accepting the session (with TLS 1.3 this is how a
    rejected client certificate shows: the handshake completes, then the broker hangs up)."""
    if tls is not None:
        text = f"TLS: the broker at {host}:{port} closed the connection before accepting the session"
        if detail:
            text += f" ({detail})"
        problem = client_certificate_problem(tls)
        if problem:
            return f"{text}; it refused the client certificate: {problem}"
        return text + "; check that the broker trusts the client certificate's CA"
    return f"the broker at {host}:{port} closed the connection before accepting the session ({detail})"
