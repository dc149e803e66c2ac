"""OCPP-J framing over one websocket: requests out (one at a time, as OCPP asks), requests in (each to
its handler, or a CallError), schema validation with the ``ocpp`` package's 2.0.1/2.1 schemas.

Payloads stay camelCase dictionaries end to end: the ``ocpp`` package's snake_case conversion breaks
43 keys of 2.1 (``limit_L2``, ``SoC``, ...), so only its framing (``ocpp.messages``) and its schemas
are used. Validation runs in the loop's default thread pool (it costs milliseconds). Every handler is
guarded: a malformed, oversized or failing request gets a CallError and the link stays up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ocpp.exceptions import (
    FormatViolationError,
    InternalError,
    NotSupportedError,
    OCPPError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplemented,
)
from ocpp.messages import Call, CallError, CallResult, unpack, validate_payload
from websockets.exceptions import ConnectionClosed

from ...errors import PlcrunError

log = logging.getLogger("plcrun.ocpp")

Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
_ID_PREFIX = re.compile(rb'^\s*\[\s*2\s*,\s*"([^"\\]{1,64})"')


class Connection(Protocol):
    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...


class CallFailed(PlcrunError):
    """The CSMS answered a request with a CallError, or no valid answer came in time."""

    def __init__(self, action: str, text: str, code: str = "") -> None:
        super().__init__(f"{action}: {text}")
        self.code = code


def known_actions(version: str) -> frozenset[str]:
    """Every action of the version's schemas (what a station may be asked, even if unsupported)."""
    import importlib.resources

    folder = "v21" if version == "2.1" else "v201"
    names = importlib.resources.files("ocpp").joinpath(folder, "schemas").iterdir()
    return frozenset(n.name[: -len("Request.json")] for n in names if n.name.endswith("Request.json"))


class Rpc:
    """The request/response layer of one connection (asyncio, network thread only)."""

    def __init__(
        self,
        connection: Connection,
        version: str,
        handlers: Mapping[str, Handler],
        response_timeout_s: float,
        max_message_bytes: int,
        counters: dict[str, int],
    ) -> None:
        self.connection = connection
        self.version = version
        self.handlers = handlers
        self.timeout_s = response_timeout_s
        self.max_bytes = max_message_bytes
        self.counters = counters
        self._lock = asyncio.Lock()
        self._waiting: tuple[str, asyncio.Future[Any]] | None = None
        self._known = known_actions(version)
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False  # set when the session ends: no new requests

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the response payload (``CallFailed`` otherwise)."""
        message = Call(str(uuid.uuid4()), action, payload)
        await validate_payload(message, self.version)  # our own bug, if it fails: raised as is
        async with self._lock:
            if self.closed:
                raise CallFailed(action, "the link is closing", "Closed")
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting = (message.unique_id, future)
            try:
                await self.connection.send(message.to_json())
                self.counters["sent"] = self.counters.get("sent", 0) + 1
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                async with asyncio.timeout(self.timeout_s):
                    answer = await future
            except TimeoutError:
                raise CallFailed(action, f"no answer within {self.timeout_s:g} s", "Timeout") from None
            finally:
                self._waiting = None
        if isinstance(answer, CallError):
            raise CallFailed(action, f"{answer.error_code}: {answer.error_description}", answer.error_code)
        answer.action = action
        try:
            await validate_payload(answer, self.version)
        except OCPPError as error:
            self.counters["bad_messages"] = self.counters.get("bad_messages", 0) + 1
            raise CallFailed(action, f"invalid answer ({error})", "Invalid") from None
        payload_out: dict[str, Any] = answer.payload
        return payload_out

    async def receive_forever(self) -> None:
        """Read and dispatch until the connection closes (the caller handles the close)."""
        while True:
            raw = await self.connection.recv()
            self.counters["received"] = self.counters.get("received", 0) + 1
            try:
                await self._on_message(raw)
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception:  # a bug must not take the link down
                log.exception("OCPP: message handling failed")
                self.counters["bad_messages"] = self.counters.get("bad_messages", 0) + 1

    async def _on_message(self, raw: str | bytes) -> None:
        data = raw.encode() if isinstance(raw, str) else raw
        if len(data) > self.max_bytes:
            self.counters["bad_messages"] = self.counters.get("bad_messages", 0) + 1
            match = _ID_PREFIX.match(data[:200])
            log.warning("OCPP: %d-byte message over the %d-byte limit dropped", len(data), self.max_bytes)
            if match:
                error = FormatViolationError(description=f"message over {self.max_bytes} bytes")
                await self._send_error(match.group(1).decode(), error)
            return
        try:
            message = unpack(data.decode("utf-8", errors="replace"))
            if isinstance(message, Call) and not (
                isinstance(message.action, str) and isinstance(message.payload, dict)
            ):
                raise FormatViolationError(description="action must be a string and payload an object")
        except OCPPError as error:
            self.counters["bad_messages"] = self.counters.get("bad_messages", 0) + 1
            log.warning("OCPP: malformed message ignored (%s)", error)
            return
        if isinstance(message, CallResult | CallError):
            waiting = self._waiting
            if waiting is not None and waiting[0] == message.unique_id and not waiting[1].done():
                waiting[1].set_result(message)
            else:
                log.warning("OCPP: answer with unknown id %r dropped", message.unique_id)
            return
        task = asyncio.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: Call) -> None:
        try:
            await self._answer(message)
        except (ConnectionClosed, OSError):
            log.info("OCPP: link closed before the answer to %s went out", message.action)
        except Exception:  # guarded: never an unretrieved task exception on the network thread
            log.exception("OCPP: answering %s failed", message.action)

    async def _answer(self, message: Call) -> None:
        handler = self.handlers.get(message.action)
        try:
            if handler is None:
                if message.action in self._known:
                    raise OcppNotImplemented(description=f"{message.action} is not implemented")
                raise NotSupportedError(description=f"{message.action} is not an OCPP {self.version} action")
            await validate_payload(message, self.version)
            payload = await handler(message.payload)
            result = message.create_call_result(payload)
            await validate_payload(result, self.version)
        except OCPPError as error:
            await self._send_error(message.unique_id, error)
            return
        except Exception as error:  # a handler bug: answer, log, keep the link
            log.exception("OCPP: handler of %s failed", message.action)
            await self._send_error(message.unique_id, InternalError(description=str(error)[:200]))
            return
        await self.connection.send(result.to_json())
        self.counters["sent"] = self.counters.get("sent", 0) + 1

    async def _send_error(self, unique_id: str, error: OCPPError) -> None:
        details = error.details if isinstance(error.details, dict) else {}
        reply = CallError(
            unique_id, error.code, str(error.description)[:255], json.loads(json.dumps(details, default=str))
        )
        self.counters["errors_sent"] = self.counters.get("errors_sent", 0) + 1
        await self.connection.send(reply.to_json())
