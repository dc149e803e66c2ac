# mypy: ignore-errors
# (runs inside the SECC process, against the iso15118 package, which plcrun's environment lacks)
"""Sees every server-side TLS handshake of the SECCs, so that one that fails is an alarm with its reason.

asyncio reports a failed server-side handshake only in debug mode: the connection is closed and the
car simply gets no session. The SSL context's documented hook ``SSLContext.sslobject_class`` lets the
SSLObject that asyncio drives be our subclass: its ``do_handshake`` sees the outcome (the car's
certificate refused, an alert from the car that refuses ours, no common version) and reports it with
the interface it happened on. A car whose TLS stack closes the connection without sending its alert
(Python's asyncio client does that when it refuses our certificate) leaves the handshake unfinished:
no call of ours sees that end, so a handshake still unfinished ``UNFINISHED_S`` after the car's first
bytes is reported as failed too (a connection that sends nothing is not a handshake). Nothing else of the handshake changes.

The package makes the server's context in ``tcp_server.get_ssl_context``, called by
``TCPServer.server_factory`` before its first ``await``; the interface reaches the context through a
context variable set by a ``TCPServer`` subclass in that same task.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections.abc import Callable

log = logging.getLogger("plcrun.secc")
UNFINISHED_S = 3.0  # a car's handshake takes milliseconds; ISO 15118 cars give up within seconds
UNFINISHED = (
    "the car left the handshake unfinished (it closed the connection or went quiet; a car that does "
    "not trust the SECC's certificate chain does that)"
)
_IFACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("plcrun_secc_iface", default=None)

# OpenSSL's reasons for alerts the car sends, in words a site operator can act on
_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "the car does not trust the SECC's certificate chain (alert: unknown CA)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the car says the SECC's certificate expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the car refused the SECC's certificate (alert: bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the car refused the SECC's certificate (alert: certificate unknown)",
    "TLSV1_ALERT_DECRYPT_ERROR": "the car could not verify the SECC's signature (alert: decrypt error)",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the car sent no certificate (TLS 1.3 needs the car's OEM chain)",
    "NO_SHARED_CIPHER": "the car offers no cipher suite the SECC accepts",
    "UNSUPPORTED_PROTOCOL": "the car offers no TLS version the SECC accepts",
    "WRONG_VERSION_NUMBER": "the car does not speak TLS on the TLS port",
}


def describe(exc: ssl.SSLError) -> str:
    """Why a handshake failed, in words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the car's certificate chain was refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLEOFError):
        return "the car closed the connection during the handshake"
    reason = str(getattr(exc, "reason", "") or "")
    return _ALERTS.get(reason, f"{reason or type(exc).__name__}: {exc}"[:300])


def _observer(iface: str, report: Callable[[str, bool, str], None]) -> type[ssl.SSLObject]:
    class WatchedSSLObject(ssl.SSLObject):
        _plcrun_calls = 0
        _plcrun_done = False

        def do_handshake(self) -> None:
            # asyncio calls this once when the connection opens and again when bytes arrive: the
            # deadline starts with the car's first bytes, so a connection that never sends any (a port
            # probe, a health check) raises no alarm
            self._plcrun_calls += 1
            if self._plcrun_calls == 2:
                with contextlib.suppress(RuntimeError):  # no event loop drives it: no deadline
                    asyncio.get_running_loop().call_later(UNFINISHED_S, self._plcrun_unfinished)
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # not done yet
            except ssl.SSLError as exc:
                self._plcrun_done = True
                _report(report, iface, False, describe(exc))
                raise
            self._plcrun_done = True
            _report(report, iface, True, self.version() or "TLS")

        def _plcrun_unfinished(self) -> None:
            if not self._plcrun_done:
                self._plcrun_done = True
                _report(report, iface, False, UNFINISHED)

    return WatchedSSLObject


def _report(report: Callable[[str, bool, str], None], iface: str, ok: bool, text: str) -> None:
    try:
        report(iface, ok, text)
    except Exception:  # the handshake must not fail because its report did
        log.exception("reporting a TLS handshake on %s failed", iface)


def install(report: Callable[[str, bool, str], None]) -> None:
    """From now on every SECC's TLS server reports ``report(iface, ok, text)`` per handshake."""
    from iso15118.secc import comm_session_handler
    from iso15118.secc.transport import tcp_server

    make_context = tcp_server.get_ssl_context
    base = tcp_server.TCPServer

    class WatchedTCPServer(base):
        async def server_factory(self, ready_event, tls: bool) -> None:
            _IFACE.set(self.iface)
            await super().server_factory(ready_event, tls)

    def watched_context(server_side: bool):
        context = make_context(server_side)
        iface = _IFACE.get()
        if context is not None and server_side and iface is not None:
            context.sslobject_class = _observer(iface, report)
        return context

    tcp_server.get_ssl_context = watched_context
    comm_session_handler.TCPServer = WatchedTCPServer
