"""A real CSMS on 127.0.0.1 for the OCPP tests, built on the ``ocpp`` package (its v201/v21
``ChargePoint`` classes) over ``websockets``, running in its own thread and event loop.

    with Csms(versions=("2.1", "2.0.1")) as csms:
        ... point the station at csms.url ...
        csms.wait_for("BootNotification")
        csms.request(call.SetChargingProfile(evse_id=1, charging_profile={...}))

Every request the station sends is recorded as (action, camelCase payload) in arrival order. Answers
are the package's call_result classes; BootNotification answers ``boot_status``/``boot_interval``.
``stop()`` and ``start()`` simulate an outage on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

_NOW = lambda: datetime.now(UTC).isoformat()  # noqa: E731


def _make_station_class(base: type, results: Any) -> type:
    class Station(base):  # type: ignore[misc, valid-type]
        csms: Csms

        async def route_message(self, raw_msg: str) -> None:
            try:
                message = json.loads(raw_msg)
                if isinstance(message, list) and message and message[0] == 2:
                    self.csms._record(message[2], message[3])
            except (ValueError, IndexError, TypeError):
                pass
            await super().route_message(raw_msg)

        @on("BootNotification")
        def boot(self, **_: Any) -> Any:
            return results.BootNotification(
                current_time=_NOW(), interval=self.csms.boot_interval, status=self.csms.boot_status
            )

        @on("Heartbeat")
        def heartbeat(self, **_: Any) -> Any:
            return results.Heartbeat(current_time=_NOW())

        @on("StatusNotification")
        def status(self, **_: Any) -> Any:
            return results.StatusNotification()

        @on("TransactionEvent")
        def transaction(self, **_: Any) -> Any:
            if self.csms.refuse_transactions:
                raise ConnectionError("CSMS refuses")  # becomes a CallError
            return results.TransactionEvent()

        @on("MeterValues")
        def meter_values(self, **_: Any) -> Any:
            return results.MeterValues()

        @on("NotifyEVChargingNeeds")
        def needs(self, **_: Any) -> Any:
            return results.NotifyEVChargingNeeds(status="Accepted")

        @on("ReportChargingProfiles")
        def report(self, **_: Any) -> Any:
            return results.ReportChargingProfiles()

    return Station


Station201 = _make_station_class(ChargePoint201, result201)
Station21 = _make_station_class(ChargePoint21, result21)


class Csms:
    def __init__(
        self,
        versions: tuple[str, ...] = ("2.1", "2.0.1"),
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        password: str | None = None,
    ) -> None:
        self.versions = versions
        self.port = port
        self.ssl_context = ssl_context
        self.password = password
        self.boot_status = "Accepted"
        self.boot_interval = 300
        self.refuse_transactions = False
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.station: Any = None
        self.station_ids: list[str] = []
        self.connections = 0
        self._lock = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-csms", daemon=True)
        self._thread.start()
        self._server: Any = None

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    def __enter__(self) -> Csms:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> None:
        async def go() -> None:
            self._server = await serve(
                self._handler,
                "127.0.0.1",
                self.port,
                subprotocols=[f"ocpp{v}" for v in self.versions],  # type: ignore[misc]
                ssl=self.ssl_context,
                process_request=self._check_auth,
            )
            self.port = self._server.sockets[0].getsockname()[1]

        self._run(go())

    def stop(self) -> None:
        async def go() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None

        self._run(go())
        self.station = None

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.password is None:
            return None
        header = request.headers.get("Authorization", "")
        station_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        expected = "Basic " + base64.b64encode(f"{station_id}:{self.password}".encode()).decode()
        if header != expected:
            return Response(401, "Unauthorized", Headers())
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1] if connection.request else "?"
        cls = Station21 if connection.subprotocol == "ocpp2.1" else Station201
        station = cls(station_id, connection)
        station.csms = self
        with self._lock:
            self.station = station
            self.station_ids.append(station_id)
            self.connections += 1
            self._lock.notify_all()
        with contextlib.suppress(ConnectionClosed):
            await station.start()

    def _record(self, action: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append((action, payload))
            self._lock.notify_all()

    # ---- for tests ----
    def of(self, action: str) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for name, payload in self.messages if name == action]

    def wait_for(
        self,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
        count: int = 1,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [p for name, p in self.messages if name == action and predicate(p)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [name for name, _ in self.messages]
                    raise AssertionError(f"no {count} x {action} within {timeout} s; seen {seen}")
                self._lock.wait(left)

    def wait_connected(self, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.connections < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no connection #{count} within {timeout} s")
                self._lock.wait(left)

    def request(self, payload: Any, timeout: float = 20.0) -> Any:
        """Send a request (a call.* dataclass of the connection's version) and return the answer."""
        station = self.station
        assert station is not None, "no station connected"
        return self._run(station.call(payload, suppress=False), timeout)

    def send_raw(self, text: str) -> None:
        """Put any text on the wire (malformed-message tests)."""
        station = self.station
        assert station is not None
        self._run(station._connection.send(text))
