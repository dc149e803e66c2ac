"""The SCADA server's limits against real clients on 127.0.0.1 (raw Modbus TCP frames, pymodbus and
mbpoll): undocumented function codes get exception 01, FC 5 with a value other than 0x0000/0xFF00
exception 03, connections over the cap are closed, requests over the rate get exception 06. The rate
limit runs on an injected clock that the test moves."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import MonotonicClock
from plcrun.executor.engine import Executor
from plcrun.io.scada_config import ScadaConfig, parse_server_config
from plcrun.io.scada_guard import TokenBucket
from plcrun.io.scada_server import ScadaServer
from pymodbus.client import ModbusTcpClient

from tests.io.test_scada_server import MEMORY, PROGRAM, mbpoll, wait_for


class StillClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Limited:
    executor: Executor
    server: ScadaServer
    clock: StillClock


@pytest.fixture(scope="module")
def limited() -> Iterator[Limited]:
    executor = Executor(compile_file(PROGRAM), clock=MonotonicClock())
    thread = threading.Thread(target=executor.run, kwargs={"duration_ns": 600 * 10**9}, daemon=True)
    thread.start()
    clock = StillClock()
    config = ScadaConfig(port=0, memory_base=MEMORY, max_connections=3, max_requests_per_s=1000.0)
    server = ScadaServer(executor, config, clock=clock)
    server.start()
    try:
        wait_for(lambda: executor.located_values())
        yield Limited(executor, server, clock)
    finally:
        server.stop()
        executor.stop()
        thread.join(10)
        executor.shutdown()


def exchange(sock: socket.socket, pdu: bytes, transaction: int = 1, unit: int = 1) -> bytes:
    """Send one Modbus TCP request; the PDU of the answer."""
    sock.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu)
    header = b""
    while len(header) < 7:
        chunk = sock.recv(7 - len(header))
        assert chunk, "the server closed the connection"
        header += chunk
    length = struct.unpack(">H", header[4:6])[0] - 1
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return body


@pytest.mark.parametrize(
    "pdu",
    [
        bytes([8, 0, 0, 0x12, 0x34]),  # diagnostics: return query data
        bytes([11]),  # get comm event counter
        bytes([12]),  # get comm event log
        bytes([17]),  # report server id
        bytes([24, 0, 0]),  # read FIFO queue
        bytes([43, 14, 1, 0]),  # read device identification
    ],
)
def test_undocumented_function_codes_get_exception_01(limited: Limited, pdu: bytes) -> None:
    with socket.create_connection(("127.0.0.1", limited.server.port), timeout=5) as sock:
        assert exchange(sock, pdu) == bytes([0x80 | pdu[0], 1])


def test_fc5_takes_only_0000_and_ff00(limited: Limited) -> None:
    coil = MEMORY + 0  # %MX0.0, "manual"
    with socket.create_connection(("127.0.0.1", limited.server.port), timeout=5) as sock:
        assert exchange(sock, struct.pack(">BHH", 5, coil, 0x1234)) == bytes([0x85, 3])
        assert exchange(sock, struct.pack(">BHH", 5, coil, 0x0001)) == bytes([0x85, 3])
        assert not [e for e in limited.executor.journal.entries() if e.path == "%MX0.0"]
        assert exchange(sock, struct.pack(">BHH", 5, coil, 0xFF00)) == struct.pack(">BHH", 5, coil, 0xFF00)
    wait_for(lambda: limited.executor.read("plant.pump_on") is True)
    assert "FC 5 value must be 0x0000 or 0xFF00" in limited.server.last_refusal
    # mbpoll, the SCADA master of the other tests, writes coils with 0xFF00/0x0000 and is served
    result = mbpoll(limited.server.port, "-r", str(coil), "-t", "0", "127.0.0.1", "0")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: limited.executor.read("plant.pump_on") is False)


def test_connections_over_the_cap_are_closed(limited: Limited) -> None:
    port = limited.server.port
    refused_before = limited.server.counters["connections_refused"]
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        for index, sock in enumerate(held):  # all three are served
            assert exchange(sock, bytes([3, 0, 2, 0, 1]), transaction=index)[:2] == bytes([3, 2])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra.sendall(struct.pack(">HHHB", 9, 0, 6, 1) + bytes([3, 0, 2, 0, 1]))
            with contextlib.suppress(ConnectionResetError):  # reset when the request came before the close
                assert extra.recv(64) == b""  # closed without an answer
        assert limited.server.counters["connections_refused"] == refused_before + 1
    finally:
        for sock in held:
            sock.close()
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    wait_for(client.connect)
    try:
        wait_for(lambda: not client.read_holding_registers(2, count=1).isError())
    finally:
        client.close()


def test_requests_over_the_rate_are_answered_busy_until_the_clock_moves() -> None:
    executor = Executor(compile_file(PROGRAM), clock=MonotonicClock())
    thread = threading.Thread(target=executor.run, kwargs={"duration_ns": 60 * 10**9}, daemon=True)
    thread.start()
    clock = StillClock()
    server = ScadaServer(
        executor, ScadaConfig(port=0, memory_base=MEMORY, max_requests_per_s=5.0), clock=clock
    )
    server.start()
    try:
        wait_for(lambda: executor.located_values())
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            read = bytes([3, 0, 2, 0, 1])
            answers = [exchange(sock, read, transaction=n)[:1] for n in range(8)]
            assert answers == [bytes([3])] * 5 + [bytes([0x83])] * 3  # one second's worth, then busy
            assert exchange(sock, read, transaction=9) == bytes([0x83, 6])
            writes_before = server.counters["writes"]
            assert exchange(sock, struct.pack(">BHH", 6, MEMORY + 10, 42))[:1] == bytes([0x86])
            assert server.counters["writes"] == writes_before  # a busy answer touches nothing
            clock.now += 1.0  # a second later: five more
            assert [exchange(sock, read, transaction=n)[:1] for n in range(6)] == [bytes([3])] * 5 + [
                bytes([0x83])
            ]
        assert server.counters["busy"] == 6
    finally:
        server.stop()
        executor.stop()
        thread.join(10)
        executor.shutdown()


def test_token_bucket_in_virtual_time() -> None:
    clock = StillClock()
    bucket = TokenBucket(10.0, 10.0, clock)
    assert sum(bucket.take() for _ in range(15)) == 10
    assert bucket.wait_s() == pytest.approx(0.1)
    clock.now += 0.25
    assert sum(bucket.take() for _ in range(5)) == 2
    clock.now += 100.0  # saved up at most one second's worth
    assert sum(bucket.take() for _ in range(50)) == 10


def test_limits_are_configured_in_the_server_table() -> None:
    config = parse_server_config({"max_connections": 4, "max_requests_per_s": 20}, "site.toml")
    assert (config.max_connections, config.max_requests_per_s) == (4, 20.0)
    defaults = parse_server_config({}, "site.toml")
    assert (defaults.max_connections, defaults.max_requests_per_s) == (16, 50.0)
