"""The SCADA Modbus server against real clients: mbpoll (the outside SCADA master) and a pymodbus
client, talking to an executor that runs tests/io/programs/scada_plant.st in real time on a thread.

Nothing here asserts timing: conditions are polled with a timeout.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import MonotonicClock
from plcrun.executor.engine import Executor
from plcrun.io.config_errors import ConfigError
from plcrun.io.scada_config import ScadaConfig, parse_server_config
from plcrun.io.scada_map import Table, build_map
from plcrun.io.scada_server import ScadaServer, ScadaServerError
from pymodbus.client import ModbusTcpClient

PROGRAM = Path(__file__).parent / "programs" / "scada_plant.st"
MEMORY = 1000  # memory_base of the tests' server
TIMEOUT_S = 10.0


def wait_for(condition: Callable[[], Any], timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.02)


@dataclass
class Plant:
    executor: Executor
    server: ScadaServer

    def client(self) -> ModbusTcpClient:
        client = ModbusTcpClient("127.0.0.1", port=self.server.port, timeout=3)
        assert client.connect()
        return client


@pytest.fixture(scope="module")
def plant() -> Iterator[Plant]:
    executor = Executor(compile_file(PROGRAM), clock=MonotonicClock())
    thread = threading.Thread(target=executor.run, kwargs={"duration_ns": 600 * 10**9}, daemon=True)
    thread.start()
    server = ScadaServer(executor, ScadaConfig(port=0, memory_base=MEMORY))
    server.start()
    try:
        wait_for(lambda: executor.located_values())
        yield Plant(executor, server)
    finally:
        server.stop()
        executor.stop()
        thread.join(10)
        executor.shutdown()


def mbpoll(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("mbpoll")
    if binary is None:
        pytest.skip("mbpoll is not installed (apt-get install mbpoll)")
    command = [binary, "-m", "tcp", "-p", str(port), "-0", "-1", "-o", "3", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def mbpoll_read(port: int, reference: int, count: int = 1, kind: str = "4") -> dict[int, str]:
    """``{reference: printed value}`` of one mbpoll read (e.g. ``[2]: 64302 (-1234)``)."""
    result = mbpoll(port, "-r", str(reference), "-c", str(count), "-t", kind, "127.0.0.1")
    assert result.returncode == 0, result.stderr
    values = {}
    for line in result.stdout.splitlines():
        if line.startswith("[") and "]:" in line:
            index, _, text = line.partition("]:")
            values[int(index[1:])] = text.strip()
    return values


# ---------------------------------------------------------------- mbpoll as the SCADA master
def test_mbpoll_reads_the_registers_the_program_computes(plant: Plant) -> None:
    port = plant.server.port
    first = mbpoll_read(port, 0, 8)
    assert first[2] == "64302 (-1234)"  # %QW2: INT -1234 in two's complement
    assert first[0] == "0"  # %QW0 is a UDINT: too wide for a word, not served
    # %QW1 counts scans: a later read shows a larger count
    wait_for(lambda: int(mbpoll_read(port, 1)[1]) > int(first[1]))
    # %QD3 = 1.5 * %MW11 (2 at start) as float32, most significant register first (-B)
    assert (first[6], first[7]) == ("16448", "0")  # 0x4040 0x0000
    result = mbpoll(port, "-B", "-r", "6", "-t", "4:float", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert "[6]: \t3" in result.stdout


def test_mbpoll_writes_memory_that_the_program_uses(plant: Plant) -> None:
    port = plant.server.port
    result = mbpoll(port, "-r", str(MEMORY + 10), "-t", "4", "127.0.0.1", "123")
    assert result.returncode == 0, result.stderr
    # the program copies %MW10 into %QW4 and raises the alarm coil %QX1.0 above 100
    wait_for(lambda: mbpoll_read(port, 4)[4] == "123")
    assert mbpoll_read(port, 8, 1, "0")[8] == "1"
    sources = [e.source for e in plant.executor.journal.entries() if e.path == "%MW10" and e.value == 123]
    assert sources and sources[-1].startswith("modbus:127.0.0.1:")
    # a register is 16 bits: 65529 is -7 in two's complement, and %MW10 is an INT
    result = mbpoll(port, "-r", str(MEMORY + 10), "-t", "4", "127.0.0.1", "65529")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: plant.executor.read("plant.echo") == -7)
    assert mbpoll_read(port, 8, 1, "0")[8] == "0"


def test_mbpoll_write_to_a_program_output_is_refused(plant: Plant) -> None:
    port = plant.server.port
    before = plant.executor.read("plant.fixed")
    refused = plant.server.counters["refused"]
    result = mbpoll(port, "-r", "2", "-t", "4", "127.0.0.1", "555")
    assert result.returncode != 0
    assert "Illegal data address" in result.stderr
    assert plant.server.counters["refused"] == refused + 1
    assert "%QW2, which the program owns" in plant.server.last_refusal
    assert not [e for e in plant.executor.journal.entries() if e.path == "%QW2"]
    assert plant.executor.read("plant.fixed") == before == -1234
    assert mbpoll_read(port, 2)[2] == "64302 (-1234)"


# ---------------------------------------------------------------- pymodbus client
def test_coils_and_discrete_inputs(plant: Plant) -> None:
    executor = plant.executor
    client = plant.client()
    try:
        executor.journal.write("%IX0.3", True, source="test")
        bits = wait_for(lambda: client.read_discrete_inputs(0, count=8, device_id=1).bits[3])
        assert bits is True
        assert (
            client.read_discrete_inputs(0, count=8, device_id=1).bits[:8]
            == [False] * 3 + [True] + [False] * 4
        )
        # %MX0.0 (coil memory_base) is copied by the program into %QX0.1 (coil 1)
        answer = client.write_coil(MEMORY, True, device_id=1)
        assert not answer.isError()
        assert answer.bits[0] is True  # the answer echoes the write
        wait_for(lambda: client.read_coils(0, count=8, device_id=1).bits[1])
        assert executor.read("plant.pump_on") is True
        assert client.read_coils(MEMORY, count=1, device_id=1).bits[0] is True
        # a program output is not writable; neither is a coil without a variable
        refused = client.write_coil(1, False, device_id=1)
        assert refused.isError() and refused.exception_code == 2
        assert client.write_coils(MEMORY + 1, [True], device_id=1).exception_code == 2
        assert client.write_coil(MEMORY, False, device_id=1).bits[0] is False
        wait_for(lambda: not client.read_coils(0, count=8, device_id=1).bits[1])
    finally:
        client.close()


def test_input_registers_show_inputs(plant: Plant) -> None:
    executor = plant.executor
    executor.journal.write("%IW2", -2, source="test")
    executor.journal.write("%ID2", 12.5, source="test")
    client = plant.client()
    try:
        registers = wait_for(
            lambda: (r := client.read_input_registers(0, count=6, device_id=1).registers)[2] == 0xFFFE and r
        )
        assert registers[4:6] == [0x4148, 0x0000]  # 12.5 as float32, most significant register first
        assert client.read_input_registers(6, count=1, device_id=1).exception_code == 2  # past the table
    finally:
        client.close()


def test_multi_register_values_bytes_and_ranges(plant: Plant) -> None:
    executor = plant.executor
    client = plant.client()
    try:
        # %MD7 (DINT) is holding registers memory_base + 14, 15: half of it cannot be written
        half = client.write_register(MEMORY + 14, 1, device_id=1)
        assert half.exception_code == 3
        assert not client.write_registers(MEMORY + 14, [0xFFFE, 0x1DC0], device_id=1).isError()
        wait_for(lambda: executor.read("plant.limit") == -123456)
        assert client.read_holding_registers(MEMORY + 14, count=2, device_id=1).registers == [0xFFFE, 0x1DC0]
        # %MW12 is a SINT: 300 does not fit, -100 does
        assert client.write_register(MEMORY + 12, 300, device_id=1).exception_code == 3
        assert not client.write_register(MEMORY + 12, 0xFF9C, device_id=1).isError()
        wait_for(lambda: executor.read("plant.small") == -100)
        # %MB40 is the high byte of register memory_base + 20; the low byte holds nothing
        assert client.read_holding_registers(MEMORY + 20, count=1, device_id=1).registers == [0xAB00]
        assert not client.write_register(MEMORY + 20, 0x12FF, device_id=1).isError()
        wait_for(lambda: executor.read("plant.tag") == 0x12)
        # registers without a variable; another unit id
        assert client.write_register(MEMORY + 30, 1, device_id=1).exception_code == 2
        assert client.write_registers(MEMORY + 11, [5, 1, 0], device_id=1).exception_code == 2
        assert client.read_holding_registers(0, count=1, device_id=7).exception_code == 0x0B
        # a request is written whole or not at all: %MW11 = 5 is fine, %MW12 = 300 is not
        assert client.write_registers(MEMORY + 11, [5, 300], device_id=1).exception_code == 3
        assert not [
            e for e in executor.journal.entries() if e.path in ("%MW11", "%MW12") and e.value in (5, 300)
        ]
        assert executor.read("plant.gain") == 2
    finally:
        client.close()


def test_no_values_before_the_first_scan() -> None:
    executor = Executor(compile_file(PROGRAM), clock=MonotonicClock())  # never runs
    server = ScadaServer(executor, ScadaConfig(port=0))
    server.start()
    try:
        client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=3)
        assert client.connect()
        assert client.read_holding_registers(0, count=2, device_id=1).exception_code == 4
        client.close()
    finally:
        server.stop()


def test_a_taken_port_is_a_clear_error(plant: Plant) -> None:
    other = ScadaServer(plant.executor, ScadaConfig(port=plant.server.port))
    with pytest.raises(ScadaServerError, match=rf"cannot listen on 127.0.0.1:{plant.server.port}: .*in use"):
        other.start()


# ---------------------------------------------------------------- map and configuration
def test_map_places_addresses_as_documented() -> None:
    smap = build_map(
        {"%QX2.5": "BOOL", "%IX0.0": "BOOL", "%MX1.1": "BOOL", "%QD1": "REAL", "%QL1": "LREAL",
         "%MB3": "USINT", "%IW7": "WORD", "%QB17": "BYTE", "%QW0": "TIME", "%MW0": "DINT"},
        memory_base=500, word_order="little", config_file="site.toml", program_file="p.st",
    )  # fmt: skip
    where = {s.address: (s.table, s.first, s.count, s.byte) for s in smap.slots}
    assert where["%QX2.5"] == (Table.COILS, 21, 1, None)
    assert where["%IX0.0"] == (Table.DISCRETE_INPUTS, 0, 1, None)
    assert where["%MX1.1"] == (Table.COILS, 509, 1, None)
    assert where["%QD1"] == (Table.HOLDING_REGISTERS, 2, 2, None)
    assert where["%QL1"] == (Table.HOLDING_REGISTERS, 4, 4, None)
    assert where["%MB3"] == (Table.HOLDING_REGISTERS, 501, 1, 1)
    assert where["%QB17"] == (Table.HOLDING_REGISTERS, 8, 1, 1)
    assert where["%IW7"] == (Table.INPUT_REGISTERS, 7, 1, None)
    assert {s.address for s in smap.skipped} == {"%QW0", "%MW0"}
    # little word order: least significant register first
    assert smap.read_registers(Table.HOLDING_REGISTERS, 2, 2, {"%QD1": 1.0}) == [0x0000, 0x3F80]


def test_overlapping_variables_and_a_low_memory_base_are_errors() -> None:
    with pytest.raises(ConfigError) as overlap:
        build_map(
            {"%QD1": "DINT", "%QW3": "INT"},
            memory_base=1000, word_order="big", config_file="site.toml", program_file="plant.st",
        )  # fmt: skip
    assert str(overlap.value) == (
        "plant.st: %QW3: shares holding register 3 with %QD1: the Modbus server needs located variables "
        "that do not overlap"
    )
    with pytest.raises(ConfigError) as low:
        build_map(
            {"%QW120": "INT"}, memory_base=100, word_order="big", config_file="site.toml", program_file="p.st"
        )
    assert low.value.file == "site.toml" and low.value.key == "server.memory_base"
    assert "raise memory_base above 120" in low.value.problem


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({"bind": "0.0.0.0"}, "server.bind", "not a loopback address"),
        ({"bind": "plc.example"}, "server.bind", "not an IP address"),
        ({"port": 70000}, "server.port", "between 0 and 65535"),
        ({"unit": "1"}, "server.unit", "must be an integer"),
        ({"word_order": "middle"}, "server.word_order", "must be one of"),
        ({"portt": 1502}, "server.portt", "unknown key"),
    ],
)
def test_server_config_errors_name_file_key_and_problem(
    table: dict[str, object], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_server_config(table, "site.toml")
    assert error.value.file == "site.toml" and error.value.key == key
    assert problem in error.value.problem


def test_server_config_defaults_and_remote_opt_in() -> None:
    assert parse_server_config(None, "site.toml") == ScadaConfig(file="site.toml")
    remote = parse_server_config({"bind": "0.0.0.0", "allow_remote": True, "port": 502, "unit": 3}, "s.toml")
    assert (remote.bind, remote.port, remote.unit, remote.allow_remote) == ("0.0.0.0", 502, 3, True)
