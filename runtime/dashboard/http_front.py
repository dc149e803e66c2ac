"""The dashboard's HTTP/1.1 front: every connection on one asyncio loop, the work on a bounded pool.

A thread per connection (``ThreadingHTTPServer``) let anyone who can connect start threads without
limit (each with its stack, resident when memory is locked) and read request headers and bodies
inside the scan's slack gate, so one half-open request (``GET / HTTP/1.1`` and nothing more) stalled
every other client. Here:

- one loop thread reads and writes every connection, in the scan's slack (it holds the slack gate
  while it runs and leaves it while it waits for the network: ``threads.GatedSelector``); a request is handed to the pool of
  ``workers`` threads (``handle``, which enters the slack gate) only once its head and body are
  complete, and its answer is written back by the loop;
- at most ``max_connections`` connections; when full, a new connection takes the place of the one
  that has waited longest without sending a whole request head (slow or idle), and only when every
  connection is busy with a request is it answered 503 and closed; the listen backlog is ``backlog``;
- time limits: ``idle_timeout_s`` for a kept-alive connection to start its next request,
  ``head_timeout_s`` for the whole request head once its first byte arrived, ``body_timeout_s`` for
  the body, ``write_timeout_s`` for a client to take the answer; a head over ``max_head_bytes`` is
  answered 431, a body over ``max_body_bytes`` 413.

Timeouts are measured by the loop's clock (asyncio); ``Limits`` lets tests make them short.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import PlcrunError
from ..executor.threads import Gate, new_event_loop, start_thread

log = logging.getLogger("plcrun.dashboard")

REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Content", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}  # fmt: skip
MAX_HEADERS = 64


@dataclass(frozen=True)
class Limits:
    max_connections: int = 64
    backlog: int = 64
    workers: int = 2
    idle_timeout_s: float = 30.0
    head_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    write_timeout_s: float = 10.0
    max_head_bytes: int = 16 * 1024
    max_body_bytes: int = 64 * 1024


@dataclass
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    peer: str = ""


@dataclass
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


class BadRequest(PlcrunError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[HttpRequest], HttpResponse]
ErrorPage = Callable[[int, str], HttpResponse]


class HttpFront:
    """Serves ``handle`` on ``host:port`` (see the module docstring); ``start``/``stop``."""

    def __init__(
        self,
        host: str,
        port: int,
        handle: Handler,
        error_page: ErrorPage,
        limits: Limits | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.host = host
        self._gate = gate
        self.limits = limits or Limits()
        self._requested_port = port
        self._handle = handle
        self._error_page = error_page
        self.port = 0
        self.counters = {"connections": 0, "refused": 0, "evicted": 0, "timeouts": 0, "requests": 0}
        self._open: set[asyncio.StreamWriter] = set()
        self._stalled: dict[asyncio.StreamWriter, None] = {}  # waiting for a request head, oldest first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def start(self) -> None:
        """Listen (raises ``OSError`` when the address is taken) and serve on a loop thread."""
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.limits.workers, thread_name_prefix="plcrun-dashboard-work"
        )
        self._thread = start_thread(self._run, "plcrun-dashboard")
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            self._pool.shutdown(wait=False)
            raise self._start_error

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stopped.set)
        thread.join(10)
        self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        loop = new_event_loop(self._gate)  # the loop's own Python work waits for the scan's slack too
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        try:
            server = await asyncio.start_server(
                self._connection,
                self.host,
                self._requested_port,
                backlog=self.limits.backlog,
                limit=self.limits.max_head_bytes,
            )
        except OSError as error:
            self._start_error = error
            self._ready.set()
            return
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        await self._stopped.wait()
        server.close()
        for writer in list(self._open):
            writer.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    # ------------------------------------------------------------ one connection (loop thread)
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= self.limits.max_connections and self._stalled:
            # full: make room by closing the connection that has waited longest without sending a
            # whole request head (slow or idle clients), so a slowloris cannot lock out real clients
            victim = next(iter(self._stalled))
            del self._stalled[victim]
            self._open.discard(victim)
            victim.close()
            self.counters["evicted"] += 1
        if len(self._open) >= self.limits.max_connections:
            self.counters["refused"] += 1
            refusal = self._error_page(503, f"too many connections (at most {self.limits.max_connections})")
            refusal.close = True
            refusal.headers["Retry-After"] = "5"
            writer.write(_encode(refusal))
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)
            writer.close()
            return
        self._open.add(writer)
        self.counters["connections"] += 1
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown"
        try:
            while await self._one_request(reader, writer, peer_text):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self._open.discard(writer)
            self._stalled.pop(writer, None)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Read, answer; True to keep the connection for another request."""
        limits = self.limits
        self._stalled[writer] = None  # evictable until its request head is complete
        try:
            first = await asyncio.wait_for(_first(reader), limits.idle_timeout_s)
        except TimeoutError:
            return False  # an idle kept-alive connection: just close
        if not first:
            return False
        try:
            try:
                rest = await asyncio.wait_for(_head(reader), limits.head_timeout_s)
            except TimeoutError:
                self.counters["timeouts"] += 1
                raise BadRequest(
                    408, f"request head not complete within {limits.head_timeout_s:g} s"
                ) from None
            if rest is None:
                return False  # the client closed (or was evicted) before its head was complete
            if rest is _TOO_LONG:
                raise BadRequest(431, f"request head larger than {limits.max_head_bytes} bytes")
            self._stalled.pop(writer, None)
            request, keep_alive = _parse_head(first + rest, peer)
            length = _content_length(request.headers, limits.max_body_bytes)
            if length:
                try:
                    body = await asyncio.wait_for(_body(reader, length), limits.body_timeout_s)
                except TimeoutError:
                    self.counters["timeouts"] += 1
                    raise BadRequest(
                        408, f"request body not complete within {limits.body_timeout_s:g} s"
                    ) from None
                if body is None:
                    return False
                request.body = body
        except BadRequest as error:
            response = self._error_page(error.status, str(error))
            response.close = True
            await self._write(writer, response)
            return False
        self.counters["requests"] += 1
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self._pool, self._handle, request)
        keep_alive = keep_alive and not response.close
        response.close = not keep_alive
        await self._write(writer, response)
        return keep_alive

    async def _write(self, writer: asyncio.StreamWriter, response: HttpResponse) -> None:
        writer.write(_encode(response))
        try:
            await asyncio.wait_for(writer.drain(), self.limits.write_timeout_s)
        except TimeoutError:
            self.counters["timeouts"] += 1
            raise OSError("the client does not take the answer") from None


_TOO_LONG = b"\x00too long"


# A client that goes away mid-request makes the stream raise. Raised through ``wait_for``, that
# exception ends up holding the task that holds it: a reference cycle per connection, freed only by a
# full garbage collection (at most once a minute in real time: gc_control.py). A slowloris flood then
# grew RSS by 30 MiB. These two catch it where it starts, so every connection is freed by refcounting.
async def _first(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(1)
    except OSError:  # reset by the peer
        return b""


async def _head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, OSError):
        return None
    except asyncio.LimitOverrunError:
        return _TOO_LONG


async def _body(reader: asyncio.StreamReader, length: int) -> bytes | None:
    try:
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, OSError):
        return None


def _parse_head(head: bytes, peer: str) -> tuple[HttpRequest, bool]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "request head is not text") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(400, f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, f"{version[:16]!r} is not supported (HTTP/1.1 or HTTP/1.0)")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
        if len(headers) > MAX_HEADERS:
            raise BadRequest(431, f"more than {MAX_HEADERS} header fields")
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return HttpRequest(method.upper(), target, headers, peer=peer), keep_alive


def _content_length(headers: dict[str, str], limit: int) -> int:
    if "transfer-encoding" in headers:
        raise BadRequest(501, "chunked request bodies are not supported: send Content-Length")
    text = headers.get("content-length", "0") or "0"
    if not text.isdigit():
        raise BadRequest(400, f"bad Content-Length '{text[:20]}'")
    length = int(text)
    if length > limit:
        raise BadRequest(413, f"request body too large ({length} bytes, at most {limit})")
    return length


def _encode(response: HttpResponse) -> bytes:
    reason = REASONS.get(response.status, "Unknown")
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Server: plcrun-dashboard",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    if response.close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body
