"""A Modbus TCP server that shows the process image to SCADA: located variables as coils, discrete
inputs, input and holding registers (map in ``scada_map``, reference in docs/scada-server.md).

It runs a pymodbus server on an asyncio loop in a thread of its own and never touches the scan:
reads come from the values the executor publishes at the end of every scan
(``executor.located_values()``), writes go into the executor's journal
(``journal.write("%MW10", value, source="modbus:<peer>")``) and reach the program at the next scan
start. Writes to %I or %Q addresses are refused with exception 02 (ILLEGAL DATA ADDRESS).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from ..errors import PlcrunError
from ..executor.threads import Gate, new_event_loop
from .config_errors import ConfigError
from .scada_config import ScadaConfig
from .scada_guard import ALLOWED_FUNCTIONS, CheckedWriteSingleCoil, TokenBucket, coil_value_problem
from .scada_map import Refusal, ScadaMap, Table, build_map

log = logging.getLogger("plcrun.scada")

_TABLE_OF_FUNCTION = {
    1: Table.COILS, 5: Table.COILS, 15: Table.COILS, 2: Table.DISCRETE_INPUTS, 4: Table.INPUT_REGISTERS,
    3: Table.HOLDING_REGISTERS, 6: Table.HOLDING_REGISTERS, 16: Table.HOLDING_REGISTERS,
    22: Table.HOLDING_REGISTERS, 23: Table.HOLDING_REGISTERS,
}  # fmt: skip
_READ_BACK_AFTER_WRITE = frozenset({5, 6, 23})  # requests whose answer shows what was just written
_START_TIMEOUT_S = 10.0
_REFUSAL_LOG_INTERVAL_S = 10.0

# Set per request on the handler's task: who is asking, and what this request just wrote.
_PEER: contextvars.ContextVar[str] = contextvars.ContextVar("scada_peer", default="unknown")
_ECHO: contextvars.ContextVar[tuple[int, list[int] | list[bool]] | None] = contextvars.ContextVar(
    "scada_echo", default=None
)


class ScadaJournal(Protocol):
    def write(self, path: str, value: Any, source: str = ...) -> None: ...


class ScadaProgram(Protocol):
    @property
    def located(self) -> Mapping[str, str]: ...

    @property
    def main_file(self) -> str: ...

    def catalog(self) -> dict[str, str]: ...


class ScadaExecutor(Protocol):
    """What the server needs of ``plcrun.executor.engine.Executor``."""

    @property
    def program(self) -> ScadaProgram: ...

    @property
    def journal(self) -> ScadaJournal: ...

    def located_values(self) -> dict[str, object]: ...

    def read_values(self, paths: Sequence[str]) -> dict[str, object]: ...

    def slack_gate(self) -> Gate: ...


class ScadaServerError(PlcrunError, RuntimeError):
    """The server could not start (e.g. the port is taken)."""


def program_map(program: ScadaProgram, config: ScadaConfig) -> ScadaMap:
    """The register map of ``program`` under ``config`` (raises ``ConfigError`` on a conflict)."""
    catalog = program.catalog()
    located = {address: catalog.get(address, "") for address in program.located}
    return build_map(
        located,
        memory_base=config.memory_base,
        word_order=config.word_order,
        config_file=config.file,
        program_file=program.main_file,
        named=config.registers,
    )


class _Handler(ServerRequestHandler):
    """pymodbus' connection handler: refuses connections over the cap, requests over the rate, function
    codes outside the map and bad FC 5 values; tells the datastore callback who the peer is."""

    server: _Server
    _bucket: TokenBucket | None = None

    def callback_connected(self) -> None:
        super().callback_connected()
        owner = self.server.owner
        rate = owner.config.max_requests_per_s
        self._bucket = TokenBucket(rate, max(1.0, rate), owner.clock)

    async def handle_request(self) -> None:
        pdu = self.last_pdu
        if not pdu:
            return
        owner = self.server.owner
        peer = "unknown"
        transport = getattr(self, "transport", None)
        if transport is not None:
            name = transport.get_extra_info("peername")
            if isinstance(name, tuple) and len(name) >= 2:
                peer = f"{name[0]}:{name[1]}"
        refusal: ExcCodes | None = None
        bucket = self._bucket
        if bucket is not None and not bucket.take():
            owner.counters["busy"] += 1
            refusal = ExcCodes.DEVICE_BUSY
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
                self.loop.call_later(bucket.wait_s(), _resume, transport)
        elif pdu.function_code not in ALLOWED_FUNCTIONS:
            owner.counters["refused"] += 1
            owner.last_refusal = f"{peer}: function code {pdu.function_code} is not served"
            refusal = ExcCodes.ILLEGAL_FUNCTION
        elif coil_value_problem(pdu):
            owner.counters["refused"] += 1
            owner.last_refusal = f"{peer}: FC 5 value must be 0x0000 or 0xFF00"
            refusal = ExcCodes.ILLEGAL_VALUE
        if refusal is not None:
            response = ExceptionResponse(pdu.function_code, refusal)
            response.transaction_id = pdu.transaction_id
            response.dev_id = pdu.dev_id
            self.server_send(response, self.last_addr)  # type: ignore[no-untyped-call]
            return
        _PEER.set(peer)
        _ECHO.set(None)
        await super().handle_request()  # type: ignore[no-untyped-call]


def _resume(transport: asyncio.BaseTransport) -> None:
    if not transport.is_closing():
        transport.resume_reading()  # type: ignore[attr-defined]


class _Refused(asyncio.Protocol):
    """A connection over the cap: reset at once, before pymodbus builds anything for it (a storm of
    reconnecting clients then costs one accept and one close each)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


class _Server(ModbusTcpServer):
    owner: ScadaServer

    def handle_new_connection(self) -> Any:
        if len(self.active_connections) >= self.owner.config.max_connections:
            self.owner.refuse_connection()
            return _Refused()
        return super().handle_new_connection()

    def callback_new_connection(self) -> ServerRequestHandler:
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class ScadaServer:
    """``ScadaServer(executor, config)``; ``start()``, ``stop()``, ``port`` (the actual port)."""

    def __init__(
        self,
        executor: ScadaExecutor,
        config: ScadaConfig,
        clock: Callable[[], float] = time.monotonic,
        gate: Gate | None = None,
    ) -> None:
        self.executor = executor
        self._gate = gate if gate is not None else executor.slack_gate()
        self.config = config
        self.clock = clock
        self._program = executor.program
        self.map = program_map(self._program, config)
        for skipped in self.map.skipped:
            log.warning("SCADA server: %s is not served: %s", skipped.address, skipped.reason)
        self._sizes = dict(self.map.sizes)  # the server's tables keep the sizes they started with
        self.port = config.port
        self.counters = {"reads": 0, "writes": 0, "refused": 0, "busy": 0, "connections_refused": 0}
        self._refusal_logged_at = -_REFUSAL_LOG_INTERVAL_S
        self._refusals_logged = 0
        self.last_refusal = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: str | None = None
        self._stopped: asyncio.Event | None = None

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Listen; returns once the server accepts connections (raises ``ScadaServerError`` if not)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="plcrun-scada-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise ScadaServerError(f"the SCADA server did not start within {_START_TIMEOUT_S:g} s")
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            raise ScadaServerError(self._start_error)
        log.info("SCADA Modbus server on %s:%d, unit %d", self.config.bind, self.port, self.config.unit)

    def stop(self) -> None:
        """Close the listener and every connection; the thread ends."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stopped.set)
        thread.join(10)
        self._thread = None

    def _run(self) -> None:
        loop = new_event_loop(self._gate)  # requests are worked off in the scan's slack
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            server = _Server(
                self._devices(),
                address=(self.config.bind, self.config.port),
                custom_pdu=[CheckedWriteSingleCoil],
            )
            server.owner = self
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as error:
            self._start_error = self._listen_problem(error)
            self._ready.set()
            return
        self._server = server
        sockets = getattr(server.transport, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ready.set()
        await self._stopped.wait()
        await server.shutdown()  # type: ignore[no-untyped-call]

    def _listen_problem(self, error: BaseException) -> str:
        where = f"{self.config.bind}:{self.config.port}"
        try:  # pymodbus only says it failed; ask the OS why
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((self.config.bind, self.config.port))
        except OSError as os_error:
            return f"the SCADA server cannot listen on {where}: {os_error.strerror or os_error}"
        return f"the SCADA server cannot listen on {where}: {error}"

    def _devices(self) -> list[SimDevice]:
        devices = [SimDevice(id=self.config.unit, simdata=self._blocks(), action=self._action)]
        if self.config.unit != 0:  # any other unit id: "gateway target failed to respond"
            devices.append(SimDevice(id=0, simdata=self._blocks(), action=_other_unit))
        return devices

    def _blocks(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        return (
            [SimData(0, values=[False] * _bits_size(self._sizes[Table.COILS]), datatype=DataType.BITS)],
            [SimData(0, values=[False] * _bits_size(self._sizes[Table.DISCRETE_INPUTS]), datatype=DataType.BITS)],
            [SimData(0, count=max(1, self._sizes[Table.HOLDING_REGISTERS]), values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=max(1, self._sizes[Table.INPUT_REGISTERS]), values=0, datatype=DataType.REGISTERS)],
        )  # fmt: skip

    # ------------------------------------------------------------ requests (server thread)
    async def _action(
        self,
        function_code: int,
        block_start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        table = _TABLE_OF_FUNCTION.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        smap = self._current_map()
        if values is not None:
            return self._write(smap, table, function_code, address, values)
        published = self.executor.located_values()
        named = [slot.address for slot in smap.slots if slot.named]
        if named:
            published = {**published, **self.executor.read_values(named)}
        if not published and smap.slots:
            return ExcCodes.DEVICE_FAILURE  # no scan has completed yet: nothing true to show
        self.counters["reads"] += 1
        if table.bits:
            # pymodbus hands bit requests over in whole 16-bit words of the block
            first_word = address // 16
            bits = smap.read_bits(table, first_word * 16, count * 16, published)
            self._overlay_echo(function_code, first_word * 16, bits)
            for k in range(count):
                registers[first_word - block_start + k] = _word_of(bits[16 * k : 16 * k + 16])
            return None
        if address + count > self._sizes[table]:
            return ExcCodes.ILLEGAL_ADDRESS
        words = smap.read_registers(table, address, count, published)
        self._overlay_echo(function_code, address, words)
        registers[address - block_start : address - block_start + count] = words
        return None

    def refuse_connection(self) -> None:
        """Count a connection over the cap; log at most every 10 s (a flood must not flood the log)."""
        self.counters["connections_refused"] += 1
        now = self.clock()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_INTERVAL_S:
            refused = self.counters["connections_refused"] - self._refusals_logged
            self._refusal_logged_at, self._refusals_logged = now, self.counters["connections_refused"]
            log.warning(
                "SCADA server: %d connection(s) refused since the last report (%d open at most)",
                refused,
                self.config.max_connections,
            )

    def _write(
        self, smap: ScadaMap, table: Table, function_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if table is Table.COILS:
            plan = smap.plan_coil_write(address, [bool(v) for v in values])
        else:
            plan = smap.plan_register_write(address, [int(v) for v in values])
        peer = _PEER.get()
        if isinstance(plan, Refusal):
            self.counters["refused"] += 1
            self.last_refusal = f"{peer}: {plan.reason}"
            log.info("SCADA write from %s refused: %s", peer, plan.reason)
            return ExcCodes(plan.code)
        for path, value in plan:
            self.executor.journal.write(path, value, source=f"modbus:{peer}")
        self.counters["writes"] += 1
        _ECHO.set((address, list(values)))
        return None

    def _overlay_echo(self, function_code: int, start: int, out: list[Any]) -> None:
        """A write answers with what it wrote, although the program sees it only at the next scan."""
        echo = _ECHO.get()
        if echo is None or function_code not in _READ_BACK_AFTER_WRITE:
            return
        written_at, written = echo
        for k, value in enumerate(written):
            index = written_at + k - start
            if 0 <= index < len(out):
                out[index] = value

    def _current_map(self) -> ScadaMap:
        program = self.executor.program
        if program is not self._program:  # an online change: the located variables may differ
            self._program = program
            try:
                self.map = program_map(program, self.config)
            except ConfigError as error:
                log.error("SCADA server keeps its previous map: %s", error)
        return self.map

    def status(self) -> dict[str, object]:
        return {
            "bind": self.config.bind,
            "port": self.port,
            "unit": self.config.unit,
            "running": self._thread is not None and self._thread.is_alive(),
            "counters": dict(self.counters),
            "last_refusal": self.last_refusal,
            "not_served": {s.address: s.reason for s in self.map.skipped},
        }


async def _other_unit(*_args: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _bits_size(coils: int) -> int:
    return max(16, (coils + 15) // 16 * 16)


def _word_of(bits: list[bool]) -> int:
    word = 0
    for k, bit in enumerate(bits):
        if bit:
            word |= 1 << k
    return word
