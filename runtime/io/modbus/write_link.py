"""The setpoint connection's Modbus TCP client (``write_connection = true``): writes only (functions
5, 6, 15 and 16), with a request's sending and the wait for its answer apart.

That split lets the scan thread put a changed setpoint on the wire in the scan that computed it, when
the connection is idle (``send`` never blocks: a request that does not fit the socket's buffer at once
closes the connection, which the setpoint thread then opens again), while the setpoint thread waits
for the answer (``answer``). One request at a time: the next goes out after the previous one's answer
(many devices process one request at a time, and some servers drop or mix up pipelined ones). The
frames are the Modbus TCP application header (transaction id, protocol 0, length, unit) and the PDU of
the Modbus application protocol. Failures are the transport's: ``CommError`` (closed, timed out, an
answer that does not belong to the request) and ``DeviceException`` (an exception response).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ...executor.clock import WorkerTime
from .model import Table
from .transport import CommError, DeviceException, open_connection, write_function_code

_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id (0), length of what follows, unit


@dataclass(frozen=True, slots=True)
class Pending:
    """A request on the wire, waiting for its answer."""

    transaction: int
    function: int
    address: int
    count: int


def request_pdu(
    table: Table, address: int, values: Sequence[int] | Sequence[bool], function: int | None
) -> tuple[int, bytes]:
    """The function code and PDU of a write, the function chosen as ``ModbusTransport.write`` does."""
    code = write_function_code(table, len(values), function)
    if code == 15:
        bits = [bool(v) for v in values]
        packed = bytes(
            sum(1 << i for i, b in enumerate(bits[k : k + 8]) if b) for k in range(0, len(bits), 8)
        )
        return 15, struct.pack(">BHHB", 15, address, len(bits), len(packed)) + packed
    if code == 5:
        return 5, struct.pack(">BHH", 5, address, 0xFF00 if values[0] else 0)
    words = [int(v) & 0xFFFF for v in values]
    if code == 6:
        return 6, struct.pack(">BHH", 6, address, words[0])
    return 16, struct.pack(f">BHHB{len(words)}H", 16, address, len(words), 2 * len(words), *words)


class WriteLink:
    def __init__(
        self,
        device: str,
        host: str,
        port: int,
        unit: int,
        timeout_s: float,
        worker_time: WorkerTime,
        stopping: threading.Event,
    ) -> None:
        self.device, self.host, self.port, self.unit = device, host, port, unit
        self.timeout_s = timeout_s
        self._time = worker_time
        self._stopping = stopping
        self._sock: socket.socket | None = None
        self._transaction = 0
        self.requests = self.timeouts = self.exceptions = self.connects = 0

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        if self._sock is not None:
            return
        sock = open_connection(self.host, self.port, self.timeout_s)
        sock.setblocking(False)  # a send never waits (a socket with a timeout polls before sending)
        self._sock = sock
        self.connects += 1

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def write(
        self, table: Table, address: int, values: Sequence[int] | Sequence[bool], function: int | None
    ) -> None:
        self.answer(self.send(table, address, values, function))

    def send(
        self, table: Table, address: int, values: Sequence[int] | Sequence[bool], function: int | None
    ) -> Pending:
        """Put the request on the wire without waiting (any thread; one request at a time)."""
        sock = self._sock
        if sock is None:
            raise CommError("not connected")
        code, pdu = request_pdu(table, address, values, function)
        self._transaction = self._transaction % 0xFFFF + 1
        frame = _HEADER.pack(self._transaction, 0, len(pdu) + 1, self.unit) + pdu
        self.requests += 1
        try:
            sent = sock.send(frame)
        except OSError as exc:
            self.close()
            raise CommError(f"connection lost ({exc.strerror or exc})") from None
        if sent != len(frame):
            self.close()
            raise CommError("the request did not fit the connection's send buffer")
        return Pending(self._transaction, code, address, len(values))

    def answer(self, pending: Pending) -> None:
        """Wait (on the worker's time) for the answer to ``pending``."""
        header = self._receive(_HEADER.size)
        transaction, protocol, length, unit = _HEADER.unpack(header)
        if protocol != 0 or not 2 <= length <= 254:
            self.close()
            raise CommError(f"unusable answer (protocol {protocol}, length {length})")
        body = self._receive(length - 1)
        if transaction != pending.transaction or unit != self.unit:
            self.close()
            raise CommError(
                f"answer to transaction {transaction} (unit {unit}), expected {pending.transaction} (unit {self.unit})"
            )
        if body[0] == pending.function | 0x80 and len(body) >= 2:
            self.exceptions += 1
            raise DeviceException(
                body[1], self.device, self.unit, pending.function, pending.address, pending.count
            )
        if body[0] != pending.function:
            self.close()
            raise CommError(f"answer with function {body[0]} to a request with function {pending.function}")

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            sock = self._sock
            if sock is None:
                raise CommError("not connected")
            if not self._time.wait_readable(sock, self.timeout_s, self._stopping):
                self.timeouts += 1
                self.close()
                raise CommError(f"no answer within {self.timeout_s * 1000:.0f} ms")
            try:
                chunk = sock.recv(size - len(data))
            except BlockingIOError:  # readable was a false alarm: wait again
                continue
            except OSError as exc:
                self.close()
                raise CommError(f"connection lost ({exc.strerror or exc})") from None
            if not chunk:
                self.close()
                raise CommError("connection lost (closed by the device without an answer)")
            data += chunk
        return data
