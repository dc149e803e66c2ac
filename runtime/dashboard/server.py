"""``DashboardServer``: the HTTP side of the dashboard, standard library only.

A ``ThreadingHTTPServer`` on its own daemon thread serves the static page (``static/``) and the JSON
API (``api.py``); the chart sampler runs on another daemon thread. Neither ever blocks the scan
thread: reads go through the executor's thread-safe views, changes through its journal.

Safety: it binds 127.0.0.1 unless told otherwise. Requests that change anything need the token
given at start, sent as ``Authorization: Bearer <token>``; without a token the dashboard is read-only
(403). On a loopback address, requests must name a loopback host (``Host: 127.0.0.1:...`` or
``localhost``), which stops web pages of other sites from reaching it by DNS rebinding.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib.resources
import json
import logging
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from ..executor.engine import Executor
from ..io.config_reader import is_loopback
from .api import DashboardApi
from .chart import ChartSampler
from .gate import SlackGate
from .routes import ApiError, Request
from .views import DashboardViews, resolve_views

log = logging.getLogger("plcrun.dashboard")

MAX_BODY = 64 * 1024
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


def encode_json(value: Any) -> bytes:
    """JSON without NaN/Infinity (they become null), compact."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"), default=str)
    except ValueError:
        text = json.dumps(_finite(value), allow_nan=False, separators=(",", ":"), default=str)
    return text.encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _load_static() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    root = importlib.resources.files(__package__ or "plcrun.dashboard").joinpath("static")
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in STATIC_TYPES:
            files["/static/" + entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    if "/static/index.html" in files:
        files["/"] = files["/static/index.html"]
    return files


class _HttpServer(ThreadingHTTPServer):
    """Keeps the open connections, so that ``close_connections`` ends kept-alive ones on stop."""

    daemon_threads = True
    dashboard: DashboardServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a page polling 4 times a second reuses its connections
    timeout = 30  # idle keep-alive connections are closed (and their threads end) after this
    # Headers and body leave in one segment, at once: without these, Nagle's algorithm and the
    # client's delayed ACK hold every answer back by about 40 ms.
    wbufsize = -1
    disable_nagle_algorithm = True
    server_version = "plcrun-dashboard"

    @property
    def dashboard(self) -> DashboardServer:
        return cast(_HttpServer, self.server).dashboard

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-answer
            self.close_connection = True

    _in_gate = False

    def parse_request(self) -> bool:
        # A request has arrived: from parsing its headers to sending the answer, work in the
        # scan thread's slack (gate.py).
        self.dashboard.gate.enter()
        self._in_gate = True
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            if self._in_gate:
                self._in_gate = False
                self.dashboard.gate.leave()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        try:
            raw = self._read_body() if method != "GET" else b""
            self._check_host()
            url = urlsplit(self.path)
            if method == "GET" and not url.path.startswith("/api"):
                self._static(url.path)
                return
            route, params = self.dashboard.api.router.match(method, url.path.rstrip("/") or "/")
            request = Request(method, url.path, parse_qs(url.query), params)
            if route.write:
                self._check_token()
            if method != "GET":
                request.body = self._json_body(raw)
            status, payload = route.handler(request)
            self._send(status, encode_json(payload), "application/json")
        except ApiError as error:
            self._send(error.status, encode_json({"error": error.message}), "application/json", error.headers)
        except Exception as error:  # a bug must answer 500 with a message, not drop the connection
            log.exception("dashboard request %s %s failed", method, self.path)
            self._send(500, encode_json({"error": f"internal error: {error}"}), "application/json")

    def _read_body(self) -> bytes:
        """The whole body, read before anything can fail, so a refused request leaves nothing
        behind on a kept-alive connection."""
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, f"bad Content-Length '{length_text}'") from None
        if length > MAX_BODY or length < 0:
            self.close_connection = True
            raise ApiError(413, f"request body too large ({length} bytes, at most {MAX_BODY})")
        return self.rfile.read(length) if length else b""

    def _check_host(self) -> None:
        if not self.dashboard.loopback:
            return
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            raise ApiError(403, f"Host '{host}' refused: this dashboard answers on loopback names only")

    def _check_token(self) -> None:
        token = self.dashboard.token
        if token is None:
            raise ApiError(
                403, "the dashboard is read-only: start it with a token to allow writes and forces"
            )
        header = self.headers.get("Authorization") or ""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401, "a token is needed: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "wrong token", {"WWW-Authenticate": "Bearer"})

    def _json_body(self, raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(415, f"send the body as application/json (got '{content_type or 'none'}')")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(400, f"the request body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    def _static(self, path: str) -> None:
        found = self.dashboard.static.get(path)
        if found is None:
            raise ApiError(404, f"no such page: {path}")
        data, content_type = found
        self._send(200, data, content_type)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client went away: nothing to answer
            self.close_connection = True


class DashboardServer:
    """Serves the dashboard of ``executor`` on ``host:port`` (port 0 picks a free port).

    ``token``: writes, forces, releases, statistics reset and task restarts need it (as
    ``Authorization: Bearer <token>``); None makes the dashboard read-only. ``views``: what the
    chart and the EV table show (found in the program when not given). ``poll_ms``: how often the
    page refreshes. ``stats_ttl_s``: how long computed statistics are shared between requests.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        views: DashboardViews | None = None,
        poll_ms: int = 250,
        stats_ttl_s: float = 0.2,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("dashboard token must not be empty (use None for a read-only dashboard)")
        if not 0 <= port <= 65535:
            raise ValueError(f"dashboard port must be in 0..65535, got {port}")
        if not 50 <= poll_ms <= 10_000:
            raise ValueError(f"dashboard poll_ms must be in 50..10000, got {poll_ms}")
        self.executor = executor
        self.host = host
        self.token = token
        self.views = views or DashboardViews()
        resolved = resolve_views(executor.program, self.views)
        self.gate = SlackGate(executor)
        self.sampler = ChartSampler(
            executor, resolved, self.views.sample_hz, self.views.chart_seconds, self.gate
        )
        self.api = DashboardApi(
            executor, self.sampler, writes_enabled=token is not None, poll_ms=poll_ms, stats_ttl_s=stats_ttl_s
        )
        self.static = _load_static()
        self.loopback = is_loopback(host)
        self._requested_port = port
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the dashboard is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve on a daemon thread; raises OSError if the port is taken."""
        if self._httpd is not None:
            return
        httpd = _HttpServer((self.host, self._requested_port), _Handler)
        httpd.dashboard = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="plcrun-dashboard", daemon=True
        )
        self._thread.start()
        self.sampler.start()
        log.info("dashboard on %s (%s)", self.url, "writes need the token" if self.token else "read-only")

    def stop(self) -> None:
        self.sampler.stop()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
