"""Opening the websocket to the CSMS: subprotocol negotiation (ocpp2.1 / ocpp2.0.1), security profiles
1-3 (HTTP basic auth, TLS with server verification, mutual TLS) and plain-language connect errors."""

from __future__ import annotations

import base64
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.typing import Subprotocol

from ..mqtt.tls import client_certificate_problem, make_ssl_context
from .config import OcppConfig

HARD_MAX_BYTES = 16 * 1024 * 1024  # beyond this websockets closes the link (1009); below it we answer


def subprotocols(config: OcppConfig) -> list[Subprotocol]:
    return [Subprotocol(f"ocpp{version}") for version in config.versions]


def version_of(subprotocol: str | None) -> str | None:
    return {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}.get(subprotocol or "")


def ssl_context(config: OcppConfig) -> ssl.SSLContext | None:
    if config.security_profile == 3 and config.tls is not None:
        return make_ssl_context(config.tls)
    if config.security_profile == 2:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=str(config.ca_file))
        return context
    return None


def auth_header(config: OcppConfig) -> dict[str, str]:
    if config.security_profile == 3 or config.password is None:
        return {}
    token = base64.b64encode(f"{config.station_id}:{config.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_link(config: OcppConfig, context: ssl.SSLContext | None) -> ClientConnection:
    options: dict[str, Any] = {
        "subprotocols": subprotocols(config),
        "additional_headers": auth_header(config),
        "max_size": HARD_MAX_BYTES,
        "open_timeout": min(config.response_timeout_s, 30.0),
        "ping_interval": 20,
        "ping_timeout": 20,
        "close_timeout": 1.0,  # stopping the driver never waits long on a silent CSMS
    }
    if context is not None:
        options["ssl"] = context
    return await connect(config.endpoint(), **options)


def describe_error(error: BaseException, config: OcppConfig) -> str:
    """One sentence for the log, the status and the alarm."""
    where = f"{config.host}:{config.port}"
    if isinstance(error, InvalidStatus):
        code = error.response.status_code
        if code == 401:
            return f"the CSMS at {where} refused the credentials of station {config.station_id} (HTTP 401)"
        if code == 404:
            return f"the CSMS at {where} does not know station {config.station_id} (HTTP 404)"
        return f"the CSMS at {where} refused the websocket (HTTP {code})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the CSMS certificate at {where} is not trusted ({error.verify_message or error})"
    if isinstance(error, ssl.SSLError) or (isinstance(error, InvalidMessage) and config.tls is not None):
        text = f"TLS: the handshake with the CSMS at {where} failed or it refused the client certificate"
        problem = client_certificate_problem(config.tls) if config.tls is not None else None
        return f"{text} ({problem or error})"
    if isinstance(error, InvalidHandshake):
        return f"websocket handshake with {where} failed ({error})"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where} (is the CSMS running?)"
    if isinstance(error, TimeoutError):
        return f"no answer from {where} (timeout)"
    if isinstance(error, OSError):
        return f"cannot connect to {where}: {error.strerror or error}"
    return f"cannot connect to {where}: {error}"
