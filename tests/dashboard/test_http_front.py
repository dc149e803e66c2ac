"""The dashboard's HTTP front against raw sockets on 127.0.0.1: a half-open request stalls nobody and
is answered 408; connections are capped (503) and served without a thread each; oversized or
malformed requests get their status; a dashboard without a token stays on loopback; tokens are long.
Time limits are set short here: the tests wait for the answers, they do not measure them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from dashboard_site import TOKEN, call, get, site_executor, wait_for
from plcrun.dashboard import DashboardServer
from plcrun.dashboard.http_front import Limits


@contextmanager
def front(limits: Limits, token: str | None = TOKEN) -> Iterator[DashboardServer]:
    server = DashboardServer(site_executor(), port=0, token=token, stats_ttl_s=0.0, limits=limits)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def raw(server: DashboardServer, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def answer(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_a_half_open_request_stalls_nobody_and_is_answered_408() -> None:
    with front(Limits(head_timeout_s=1.0)) as server:
        stuck = raw(server, b"GET / HTTP/1.1\r\n")  # and nothing more
        for _ in range(5):  # others are answered meanwhile (the old server waited 30 s here)
            assert get(server, "/api/info")["program"].endswith("ev_site.st")
        reply = answer(stuck)
        assert status_of(reply) == 408 and b"request head not complete within 1 s" in reply
        assert server.front is not None and server.front.counters["timeouts"] == 1


def test_connections_are_capped_slow_ones_make_room_and_no_thread_is_started_per_connection() -> None:
    with front(Limits(max_connections=8)) as server, ExitStack() as stack:
        assert server.front is not None
        front_ = server.front
        threads_before = threading.active_count()
        slow = [stack.enter_context(raw(server, b"G")) for _ in range(8)]  # slowloris: heads begun
        wait_for(lambda: front_.open_connections == 8, what="8 open connections")
        assert threading.active_count() <= threads_before  # no thread per connection
        for _ in range(3):  # real clients still get in: the first takes the place of the oldest slow one
            assert get(server, "/api/info")["program"].endswith("ev_site.st")
        assert front_.counters["evicted"] == 1 and front_.open_connections <= 8
        assert answer(slow[0]) == b""  # the oldest slow client was closed to make room
        # eight connections busy with requests leave no room: the next one is refused with 503
        wait_for(lambda: front_.open_connections == 7, what="the real clients to be gone")
        stack.enter_context(raw(server, b"G"))
        wait_for(lambda: front_.open_connections == 8, what="8 open connections again")
        cleared = threading.Event()
        assert front_._loop is not None  # as if all eight were inside their requests:
        front_._loop.call_soon_threadsafe(lambda: (front_._stalled.clear(), cleared.set()))
        assert cleared.wait(5)
        refused = answer(
            stack.enter_context(raw(server, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        )
        assert status_of(refused) == 503 and b"too many connections (at most 8)" in refused
        assert front_.counters["refused"] == 1


@pytest.mark.parametrize(
    ("request_bytes", "status", "text"),
    [
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", 431, b"request head larger than 16384 bytes"),
        (b"POST /api/write HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 413, b"at most 65536"),
        (b"POST /api/write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, b"send Content-Length"),
        (b"POST /api/write HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, b"bad Content-Length"),
        (b"GARBAGE\r\n\r\n", 400, b"malformed request line"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, b"is not supported"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, b"malformed header line"),
    ],
)
def test_malformed_or_oversized_requests_get_their_status(
    request_bytes: bytes, status: int, text: bytes
) -> None:
    with front(Limits()) as server, raw(server, request_bytes) as sock:
        reply = answer(sock)
        assert status_of(reply) == status and text in reply
        assert b"Connection: close" in reply


def test_a_body_that_never_comes_is_answered_408_and_keep_alive_works() -> None:
    with front(Limits(body_timeout_s=0.5)) as server:
        head = b"POST /api/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        with raw(server, head + b"Content-Length: 40\r\n\r\n{") as sock:
            assert status_of(answer(sock)) == 408
        with raw(server) as sock:
            for _ in range(3):  # three requests on one connection
                sock.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                reply = sock.recv(65536)
                assert status_of(reply) == 200 and b"Connection: close" not in reply


def test_no_token_means_loopback_only_and_tokens_are_long() -> None:
    executor = site_executor()
    with pytest.raises(ValueError, match="not a loopback address, without a token"):
        DashboardServer(executor, host="0.0.0.0")
    with pytest.raises(ValueError, match="6 characters long; at least 16 are needed"):
        DashboardServer(executor, token="s3cret")
    DashboardServer(executor, host="0.0.0.0", token=TOKEN)  # allowed: writes need the token
    with front(Limits()) as server:
        assert call(server, "/api/stats/reset", {}, token=TOKEN).status == 202
