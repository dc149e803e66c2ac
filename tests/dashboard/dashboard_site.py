"""The dashboard tests' site: the ev_site.st program with the built-in simulation as its driver
(meter and three EV sessions), built by the composition root (``plcrun.site.SiteRuntime``) in
virtual or real time, and small HTTP helpers (urllib)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plcrun.compiler.api import compile_file
from plcrun.dashboard import DashboardServer, DashboardViews
from plcrun.executor.clock import MonotonicClock, VirtualClock
from plcrun.executor.engine import Executor
from plcrun.site import SiteRuntime

PROGRAMS = Path(__file__).parent / "programs"
TOKEN = "test-token-4f9c-7a21"


def site_runtime(virtual: bool = True, program: str = "ev_site.st") -> SiteRuntime:
    clock = VirtualClock() if virtual else MonotonicClock()
    scenario = str(PROGRAMS / "site_scenario.toml")
    return SiteRuntime.build(compile_file(PROGRAMS / program), scenario=scenario, clock=clock)


def site_executor(virtual: bool = True, program: str = "ev_site.st") -> Executor:
    return site_runtime(virtual, program).executor


@contextmanager
def dashboard(
    executor: Executor,
    token: str | None = TOKEN,
    views: DashboardViews | None = None,
    stats_ttl_s: float = 0.0,
) -> Iterator[DashboardServer]:
    """A dashboard on a free port; statistics are not cached unless ``stats_ttl_s`` says so, so a
    virtual-time test reads exactly the scans it ran."""
    server = DashboardServer(executor, port=0, token=token, views=views, stats_ttl_s=stats_ttl_s)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running(executor: Executor) -> Iterator[Executor]:
    """The executor scanning in real time on its own thread; stopped and shut down afterwards."""
    thread = threading.Thread(target=executor.run, name="test-scan", daemon=True)
    thread.start()
    try:
        yield executor
    finally:
        executor.stop()
        thread.join(timeout=10)
        executor.shutdown()


@contextmanager
def paced(executor: Executor, period_s: float = 0.01) -> Iterator[Executor]:
    """A virtual-time executor scanning one scan per ``period_s`` of real time on its own thread: a
    page sees it run live, while the program, its timers and its watchdog follow the virtual clock,
    so nothing the machine's load does reaches them (in real time a scan the OS left without a CPU
    for 100 ms faults the task for good: the watchdog's single-scan limit is wall time)."""
    assert executor.virtual, "paced() runs a virtual-time executor"
    stop = threading.Event()

    def scans() -> None:
        while not stop.is_set():
            executor.run(max_scans=1)
            stop.wait(period_s)

    thread = threading.Thread(target=scans, name="test-paced-scan", daemon=True)
    thread.start()
    try:
        yield executor
    finally:
        stop.set()
        thread.join(timeout=10)
        executor.shutdown()


class Response:
    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def call(
    server: DashboardServer,
    path: str,
    body: object = None,
    token: str | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw, status, got = reply.read(), reply.status, dict(reply.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    text = raw.decode()
    is_json = got.get("Content-Type", "").startswith("application/json")
    return Response(status, json.loads(text) if is_json else text, got)


def get(server: DashboardServer, path: str) -> Any:
    reply = call(server, path)
    assert reply.status == 200, (path, reply.status, reply.body)
    return reply.body


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
