"""One Modbus TCP connection to one device (unit), on top of the pymodbus synchronous client.

The driver runs one thread per device, so a blocking client is the simplest fit, and on this kind of
machine pymodbus' sync client answers faster than its asyncio client (bench/modbus_polls.py measures
both). Failures come out as two exceptions: ``CommError`` (no usable answer: refused, closed, timed
out; the connection is closed so a late answer can never be mistaken for the next one) and
``DeviceException`` (the device answered with a Modbus exception code).

The wait for an answer goes through the worker's time (``WorkerTime.wait_readable``), not through
pymodbus' own wall-clock ``select``: in production that is the same ``select``, in tests the request
timeout runs in virtual time (``ManualTime``) against a peer that holds its answer.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ExceptionResponse

from ...errors import PlcrunError
from ...executor.clock import REAL_TIME, WorkerTime
from .errors import explain
from .model import Table

# pymodbus logs every refused connection and timeout as an error; the driver reports them itself
logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)


class CommError(PlcrunError):
    """No usable answer from the device."""


class DeviceException(PlcrunError):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, device: str, unit: int, function: int, address: int, count: int) -> None:
        self.code = code
        self.function = function
        self.address = address
        self.count = count
        self.message = explain(code, device, unit, function, address, count)
        super().__init__(self.message)


_READ_FUNCTIONS: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class _Client(ModbusTcpClient):
    """pymodbus' sync TCP client, waiting for answers on the worker's time."""

    def __init__(
        self, host: str, port: int, timeout_s: float, worker_time: WorkerTime, stopping: threading.Event
    ) -> None:
        super().__init__(host, port=port, timeout=timeout_s, retries=0)
        self.timeout_s = timeout_s
        self.worker_time = worker_time
        self.stopping = stopping

    def recv(self, size: int | None) -> bytes:
        """What has arrived (at most ``size`` bytes, else up to 4096) once the socket is readable;
        b"" when nothing came within the timeout (pymodbus then reports no response)."""
        sock = self.socket
        if sock is None:
            raise ConnectionException(str(self))
        if not self.worker_time.wait_readable(sock, self.timeout_s, self.stopping):
            return b""
        data = sock.recv(size or 4096)
        if not data:  # the device closed the connection (the transport closes its side)
            raise ConnectionException("closed by the device without an answer")
        return data


def write_function_code(table: Table, count: int, function: int | None) -> int:
    """The Modbus function a write of ``count`` values uses: the point's own ``function`` when it is
    the multiple-value one (15, 16) or the single one (5, 6) for its table, else 5/6 for one value
    and 15/16 for more."""
    if table == "coil":
        return 15 if function == 15 or (function is None and count > 1) else 5
    return 6 if function == 6 or (function is None and count == 1) else 16


def open_connection(host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection to a Modbus device, Nagle off (a request is one small segment that must not
    wait for the previous one's ACK); a failure is a ``CommError`` naming the address and the reason."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise CommError(f"cannot connect to {host}:{port}: {reason}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ModbusTransport:
    def __init__(
        self,
        device: str,
        host: str,
        port: int,
        unit: int,
        timeout_s: float,
        worker_time: WorkerTime = REAL_TIME,
        stopping: threading.Event | None = None,
    ) -> None:
        self.device = device
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout_s = timeout_s
        self.requests = 0
        self.timeouts = 0
        self.exceptions = 0
        self.connects = 0
        self._client = _Client(host, port, timeout_s, worker_time, stopping or threading.Event())

    @property
    def connected(self) -> bool:
        return self._client.socket is not None

    def connect(self) -> None:
        if self.connected:
            return
        self._client.socket = open_connection(self.host, self.port, self.timeout_s)
        self.connects += 1

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(self, function: int, address: int, count: int, method: Any, *args: Any) -> Any:
        if not self.connected:
            raise CommError("not connected")
        self.requests += 1
        try:
            response = method(*args, device_id=self.unit)
        except ModbusException as exc:
            self.close()
            text = str(exc)
            if "No response" in text or "Timeout" in text:
                self.timeouts += 1
                raise CommError(f"no answer within {self.timeout_s * 1000:.0f} ms") from None
            raise CommError(f"connection lost ({text.strip()})") from None
        except OSError as exc:
            self.close()
            raise CommError(f"connection lost ({exc.strerror or exc})") from None
        if isinstance(response, ExceptionResponse):
            self.exceptions += 1
            raise DeviceException(response.exception_code, self.device, self.unit, function, address, count)
        if response.isError():
            self.close()
            raise CommError(f"unusable answer: {response}")
        return response

    def read(self, table: Table, address: int, count: int) -> list[int] | list[bool]:
        function = _READ_FUNCTIONS[table]
        client = self._client
        method = {
            1: client.read_coils,
            2: client.read_discrete_inputs,
            3: client.read_holding_registers,
            4: client.read_input_registers,
        }[function]
        response = self._call(function, address, count, lambda **kw: method(address, count=count, **kw))
        if function in (1, 2):
            bits = [bool(b) for b in response.bits[:count]]
            if len(bits) != count:
                self.close()
                raise CommError(f"asked for {count} bits at {address}, got {len(bits)}")
            return bits
        registers = [int(r) for r in response.registers]
        if len(registers) != count:
            self.close()
            raise CommError(f"asked for {count} registers at {address}, got {len(registers)}")
        return registers

    def write(
        self, table: Table, address: int, values: Sequence[int] | Sequence[bool], function: int | None
    ) -> None:
        client = self._client
        code = write_function_code(table, len(values), function)
        if code == 15:
            bits = [bool(v) for v in values]
            self._call(15, address, len(bits), lambda **kw: client.write_coils(address, bits, **kw))
        elif code == 5:
            bit = bool(values[0])
            self._call(5, address, 1, lambda **kw: client.write_coil(address, bit, **kw))
        elif code == 6:
            word = int(values[0])
            self._call(6, address, 1, lambda **kw: client.write_register(address, word, **kw))
        else:
            words = [int(v) for v in values]
            self._call(16, address, len(words), lambda **kw: client.write_registers(address, words, **kw))
