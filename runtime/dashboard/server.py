"""``DashboardServer``: the HTTP side of the dashboard, standard library only.

An asyncio HTTP front (``http_front.py``: one loop thread for every connection, a pool of two worker
threads, a connection cap, time limits on every read) serves the static page (``static/``) and the
JSON API (``api.py``); the chart sampler runs on another daemon thread while clients are there. Neither ever blocks the scan
thread: reads go through the executor's thread-safe views, changes through its journal, and request
work runs in the scan's slack (``executor/slack_gate.py``) only once the request has arrived in full.

Safety: it binds 127.0.0.1 unless told otherwise. Requests that change anything need the token
given at start (at least 16 characters), sent as ``Authorization: Bearer <token>``; without a token
the dashboard is read-only (403), and it refuses to serve a non-loopback address at all. On a loopback address, requests must name a loopback host (``Host: 127.0.0.1:...`` or
``localhost``), which stops web pages of other sites from reaching it by DNS rebinding.
"""

from __future__ import annotations

import hmac
import importlib.resources
import json
import logging
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..executor.engine import Executor
from ..executor.slack_gate import SlackGate
from ..io.config_reader import is_loopback
from ..io.json_input import JsonRejected, loads_bounded
from .api import DashboardApi
from .chart import ChartSampler
from .http_front import HttpFront, HttpRequest, HttpResponse, Limits
from .routes import ApiError, Request
from .views import DashboardViews, resolve_views

log = logging.getLogger("plcrun.dashboard")

MAX_BODY = 64 * 1024
MIN_TOKEN_CHARS = 16
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


class _Requests:
    """What one request gets: Host and token checks, the static page or an API route, all inside
    the slack gate (on a worker thread of the front; the front did the network I/O before)."""

    def __init__(self, dashboard: DashboardServer) -> None:
        self.dashboard = dashboard

    def __call__(self, request: HttpRequest) -> HttpResponse:
        gate = self.dashboard.gate
        gate.enter()
        try:
            self.dashboard.sampler.client_seen()
            return self._answer(request)
        finally:
            gate.leave()

    def _answer(self, request: HttpRequest) -> HttpResponse:
        method = request.method
        try:
            if method not in ("GET", "POST", "PUT", "DELETE"):
                raise ApiError(501, f"method {method[:16]} is not supported")
            self._check_host(request)
            url = urlsplit(request.target)
            if method == "GET" and not url.path.startswith("/api"):
                return self._static(url.path)
            route, params = self.dashboard.api.router.match(method, url.path.rstrip("/") or "/")
            api_request = Request(method, url.path, parse_qs(url.query), params)
            if route.write:
                self._check_token(request)
            if method != "GET":
                api_request.body = _json_body(request)
            status, payload = route.handler(api_request)
            return _page(status, encode_json(payload), "application/json")
        except ApiError as error:
            return error_page(error.status, error.message, error.headers)
        except Exception as error:  # a bug must answer 500 with a message, not drop the connection
            log.exception("dashboard request %s %s failed", method, request.target[:200])
            return error_page(500, f"internal error: {error}")

    def _check_host(self, request: HttpRequest) -> None:
        if not self.dashboard.loopback:
            return
        host = request.headers.get("host", "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_NAMES:
            raise ApiError(403, f"Host '{host}' refused: this dashboard answers on loopback names only")

    def _check_token(self, request: HttpRequest) -> None:
        token = self.dashboard.token
        if token is None:
            raise ApiError(
                403, "the dashboard is read-only: start it with a token to allow writes and forces"
            )
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401, "a token is needed: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "wrong token", {"WWW-Authenticate": "Bearer"})

    def _static(self, path: str) -> HttpResponse:
        found = self.dashboard.static.get(path)
        if found is None:
            raise ApiError(404, f"no such page: {path}")
        data, content_type = found
        return _page(200, data, content_type)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    raw = request.body
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, f"send the body as application/json (got '{content_type or 'none'}')")
    try:  # nesting and number sizes bounded before decoding (io/json_input.py)
        body = loads_bounded(raw, max_bytes=MAX_BODY)
    except JsonRejected as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _page(status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        status, data, content_type, {"Cache-Control": "no-store", **SECURITY_HEADERS, **(headers or {})}
    )


def error_page(status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return _page(status, encode_json({"error": message}), "application/json", headers)


def check_options(host: str, port: int, token: str | None) -> None:
    """Refuse (``ValueError``) a token too short or empty, a host beyond loopback without a token, a
    port out of range: ``plcrun run`` asks before it compiles, so a refused option costs nothing."""
    if token is not None and not token.strip():
        raise ValueError("dashboard token must not be empty (use None for a read-only dashboard)")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"dashboard token is {len(token)} characters long; at least {MIN_TOKEN_CHARS} are needed "
            "(for example: python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve the dashboard on {host}, which is not a loopback address, without a "
            "token: give one (--token-file) or bind 127.0.0.1"
        )
    if not 0 <= port <= 65535:
        raise ValueError(f"dashboard port must be in 0..65535, got {port}")


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
        limits: Limits | None = None,
        gate: SlackGate | None = None,
    ) -> None:
        check_options(host, port, token)
        if not 50 <= poll_ms <= 10_000:
            raise ValueError(f"dashboard poll_ms must be in 50..10000, got {poll_ms}")
        self.executor = executor
        self.host = host
        self.token = token
        self.views = views or DashboardViews()
        resolved = resolve_views(executor.program, self.views)
        self.gate = gate if gate is not None else executor.slack_gate()
        self.sampler = ChartSampler(
            executor, resolved, self.views.sample_hz, self.views.chart_seconds, self.gate
        )
        self.api = DashboardApi(
            executor, self.sampler, writes_enabled=token is not None, poll_ms=poll_ms, stats_ttl_s=stats_ttl_s
        )
        self.static = _load_static()
        self.loopback = is_loopback(host)
        self.limits = limits or Limits(max_body_bytes=MAX_BODY)
        self._requested_port = port
        self._front: HttpFront | None = None

    @property
    def port(self) -> int:
        if self._front is None:
            raise RuntimeError("the dashboard is not started")
        return self._front.port

    @property
    def front(self) -> HttpFront | None:
        """The HTTP front while started (its ``counters`` and ``open_connections``)."""
        return self._front

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve on a daemon thread; raises OSError if the port is taken."""
        if self._front is not None:
            return
        front = HttpFront(
            self.host, self._requested_port, _Requests(self), error_page, self.limits, gate=self.gate
        )
        front.start()
        self._front = front
        self.sampler.start()
        log.info("dashboard on %s (%s)", self.url, "writes need the token" if self.token else "read-only")

    def stop(self) -> None:
        self.sampler.stop()
        front, self._front = self._front, None
        if front is not None:
            front.stop()

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
