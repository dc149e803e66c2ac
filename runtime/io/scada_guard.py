"""What the SCADA server lets through, before pymodbus or the register map see a request.

- Function codes: only those docs/scada-server.md documents (1, 2, 3, 4, 5, 6, 15, 16, 22, 23);
  anything else (pymodbus would answer 8 diagnostics, 11/12 event counter and log, 17 server id,
  24 FIFO queue) gets exception 01 ILLEGAL FUNCTION.
- FC 5 WRITE SINGLE COIL: the value must be 0x0000 or 0xFF00 (Modbus application protocol,
  6.5); anything else is exception 03 ILLEGAL DATA VALUE (pymodbus took any non-zero as ON).
- Rate: each connection has a ``TokenBucket`` of ``max_requests_per_s`` (one second's worth of
  burst); a request over it is answered 06 SERVER DEVICE BUSY without touching the map or the
  journal, and the connection is not read until the next token is due, so a flood waits in the
  client's socket instead of costing the scan time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pymodbus.pdu.bit_message import WriteSingleCoilRequest

ALLOWED_FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6, 15, 16, 22, 23})
COIL_ON = 0xFF00
COIL_OFF = 0x0000


class CheckedWriteSingleCoil(WriteSingleCoilRequest):
    """FC 5 request that keeps the value field as sent, so the server can refuse bad ones."""

    raw_value: int = COIL_OFF

    def decode(self, data: bytes) -> None:
        self.address, self.raw_value = struct.unpack(">HH", data[:4])
        self.bits = [self.raw_value == COIL_ON]


def coil_value_problem(pdu: object) -> bool:
    """True for an FC 5 request whose value is neither 0x0000 nor 0xFF00."""
    return isinstance(pdu, CheckedWriteSingleCoil) and pdu.raw_value not in (COIL_ON, COIL_OFF)


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; ``clock`` in seconds (injected)."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> bool:
        """Use one token if there is one."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until the next token is due (0 when one is there)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
