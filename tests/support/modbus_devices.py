"""Modbus TCP test peers: pymodbus servers in another process, remote-controlled through a pipe.

Kinds of device:

- ``meter``: a SunSpec meter: "SunS", common model 1, model 203 (int16 + scale factors) and model 213
  (float32), the chain closed with 0xFFFF. ``set_frequency`` / ``set_power`` update both models.
- ``charger``: a Wallbox Quasar-like DC charger: remote control (81), setpoint type (83), idle timeout
  (88), power setpoint (260, signed W), max power (514), actual power (526, follows the setpoint),
  state (537) and SoC (538). It counts the writes it receives and idles when Modbus goes quiet.
- ``der``: a SunSpec DER (models 1, 701, 702, 704): 701.W follows 704.WSet once WSetEna = 1.
- ``generic``: 200 holding and input registers, 64 coils and discrete inputs.

Faults: ``delay(seconds)`` (answers arrive late), ``hold()`` / ``hold(False)`` (answers wait until released; a write is applied on arrival), ``raise_exception(address, code)`` (Modbus exception on
any request touching the address), raw register writes (NaN, sentinels, wrong scale factors), and
``kill()`` / ``restart()`` of the whole server process. The register layout here is written from the
register maps in the grid-services notes, independently of the driver's own SunSpec tables.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

SUNS = (0x5375, 0x6E53)
METER_BASE = 40000
# model ID register addresses in the meter (base 40000): common at 40002 (68 registers), 203, 213
M1, M203, M213 = 2, 70, 177  # offsets from the base
DER_M1, DER_701, DER_702, DER_704 = 2, 70, 225, 277

QUASAR = {"control": 81, "setpoint_type": 83, "idle_timeout": 88, "action": 257, "setpoint": 260,
          "max_power": 514, "actual_power": 526, "state": 537, "soc": 538}  # fmt: skip

_FC_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
             22: "holding", 23: "holding", 4: "input"}  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def float_registers(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def string_registers(text: str, count: int) -> list[int]:
    raw = text.encode("ascii").ljust(count * 2, b"\x00")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, count * 2, 2)]


def s16(value: int) -> int:
    return value & 0xFFFF


def from_s16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


class DeviceModel:
    """Registers and behaviour of one simulated device (lives in the server process)."""

    def __init__(self, kind: str, options: dict[str, Any]) -> None:
        self.kind = kind
        self.options = options
        self.lock = threading.Lock()
        self.tables: dict[str, dict[int, int]] = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
        self.ranges: dict[str, list[tuple[int, int]]] = {
            "holding": [],
            "input": [],
            "coil": [],
            "discrete": [],
        }
        self.delay_s = 0.0
        self.held = False  # answers wait until released (a late answer whose lateness the test decides)
        self.holding_now = 0  # requests waiting for the release
        self.exceptions: dict[tuple[str, int], int] = {}
        self.writes: dict[int, int] = {}  # holding address -> number of writes received
        self.write_log: list[tuple[int, int, int]] = []  # (perf_counter_ns, address, value)
        self.answer_log: list[tuple[int, int, int]] = []  # reads: (perf_counter_ns answered, address, count)
        self.requests = 0
        self.last_message = time.monotonic()
        getattr(self, f"_build_{kind}")()

    # ---- layouts ----------------------------------------------------------------------------------------
    def _define(self, table: str, start: int, values: list[int]) -> None:
        self.ranges[table].append((start, len(values)))
        for i, value in enumerate(values):
            self.tables[table][start + i] = value

    def _common(self, model: str) -> list[int]:
        regs = [1, 66]
        regs += string_registers("plcrun-test", 16) + string_registers(model, 16)
        regs += string_registers("", 8) + string_registers("1.0", 8) + string_registers("SN-0001", 16)
        regs += [1, 0]
        return regs

    def _build_meter(self) -> None:
        base = int(self.options.get("base", METER_BASE))
        self.base = base
        regs = list(SUNS) + self._common("test meter")
        m203 = [0] * 107
        m203[0], m203[1] = 203, 105
        regs += m203
        m213 = [0] * 126
        m213[0], m213[1] = 213, 124
        regs += m213
        regs += [0xFFFF, 0]
        self._define("holding", base, regs)
        h = self.tables["holding"]
        h[base + M203 + 15] = s16(-1)  # V_SF
        h[base + M203 + 17] = s16(-2)  # Hz_SF
        h[base + M203 + 22] = 0  # W_SF
        self._meter_values(50.0, 0.0, 230.0)

    def _meter_values(self, hz: float | None, watts: float | None, volts: float | None) -> None:
        h, base = self.tables["holding"], self.base
        if hz is not None:
            h[base + M203 + 16] = s16(round(hz * 100))
            h[base + M213 + 26], h[base + M213 + 27] = float_registers(hz)
        if watts is not None:
            h[base + M203 + 18] = s16(round(watts))
            h[base + M213 + 28], h[base + M213 + 29] = float_registers(watts)
        if volts is not None:
            h[base + M203 + 7] = s16(round(volts * 10))
            h[base + M213 + 10], h[base + M213 + 11] = float_registers(volts)

    def _build_charger(self) -> None:
        self._define("holding", 80, [0] * 11)
        self._define("holding", 256, [0] * 8)
        self._define("holding", 510, [0] * 32)
        h = self.tables["holding"]
        h[QUASAR["max_power"]] = 7400
        h[QUASAR["state"]] = 2  # a car is plugged in, waiting
        h[QUASAR["soc"]] = 55
        self.car_connected = True

    def _build_der(self) -> None:
        base = METER_BASE
        self.base = base
        regs = list(SUNS) + self._common("test DER")
        for model_id, length in ((701, 153), (702, 50), (704, 65)):
            block = [0] * (length + 2)
            block[0], block[1] = model_id, length
            regs += block
        regs += [0xFFFF, 0]
        self._define("holding", base, regs)
        h = self.tables["holding"]
        h[base + DER_702 + 10] = 700  # WChaRteMaxRtg, W_SF = 1 -> 7000 W
        h[base + DER_702 + 11] = 600  # WDisChaRteMaxRtg -> 6000 W
        h[base + DER_702 + 45] = 1  # W_SF
        h[base + DER_701 + 116] = 0  # W_SF
        h[base + DER_701 + 115] = s16(-2)  # Hz_SF
        h[base + DER_704 + 55] = 1  # WSet_SF: WSet counts tens of watts

    def _build_generic(self) -> None:
        self._define("holding", 0, [0] * 200)
        self._define("input", 0, [0] * 200)
        self._define("coil", 0, [0] * 64)
        self._define("discrete", 0, [0] * 64)

    # ---- behaviour -------------------------------------------------------------------------------------
    def on_write(self, address: int, values: list[int]) -> None:
        h = self.tables["holding"]
        now = time.perf_counter_ns()  # CLOCK_MONOTONIC: comparable across the processes of one machine
        for i, value in enumerate(values):
            h[address + i] = int(value)
            self.writes[address + i] = self.writes.get(address + i, 0) + 1
            if len(self.write_log) < 100_000:
                self.write_log.append((now, address + i, int(value)))
        if self.kind == "charger":
            self._charger_follow()
        elif self.kind == "der":
            self._der_follow()

    def _charger_follow(self) -> None:
        h = self.tables["holding"]
        remote = h[QUASAR["control"]] == 1 and h[QUASAR["setpoint_type"]] == 1
        setpoint = from_s16(h[QUASAR["setpoint"]]) if remote and self.car_connected else 0
        limit = h[QUASAR["max_power"]]
        actual = max(-limit, min(limit, setpoint))
        h[QUASAR["actual_power"]] = s16(actual)
        if not self.car_connected:
            h[QUASAR["state"]] = 0
        else:
            h[QUASAR["state"]] = 1 if actual > 0 else 11 if actual < 0 else 4

    def idle_check(self) -> None:
        """The Quasar idles when no Modbus message arrived within its idle timeout (register 88)."""
        h = self.tables["holding"]
        timeout = h.get(QUASAR["idle_timeout"], 0)
        if self.kind == "charger" and timeout and time.monotonic() - self.last_message > timeout:
            h[QUASAR["setpoint"]] = 0
            self._charger_follow()

    def _der_follow(self) -> None:
        h, base = self.tables["holding"], self.base
        enabled = h[base + DER_704 + 22] == 1
        raw = (h[base + DER_704 + 24] << 16) | h[base + DER_704 + 25]
        raw = raw - (1 << 32) if raw & 0x80000000 else raw
        watts = raw * 10 ** from_s16(h[base + DER_704 + 55]) if enabled else 0
        h[base + DER_701 + 10] = s16(int(watts))

    async def action(self, fc: int, start: int, address: int, count: int, registers: list[int],
                     values: list[int] | list[bool] | None) -> Any:  # fmt: skip
        from pymodbus.constants import ExcCodes

        self.last_message = time.monotonic()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if values is None:
            await self._hold()  # a read answers with the registers as they are when it is released
        table = _FC_TABLE[fc]
        bits = table in ("coil", "discrete")
        # a bit read passes the number of 16-bit words, not bits: probe only its first bit
        span = len(values) if values is not None else 1 if bits else count
        with self.lock:
            self.requests += 1
            for probe in range(address, address + span):
                code = self.exceptions.get((table, probe))
                if code is not None:
                    return ExcCodes(code)
            if values is not None:
                if bits:
                    for i, bit in enumerate(values):
                        self.tables[table][address + i] = int(bool(bit))
                else:
                    self.on_write(address, [int(v) for v in values])
        if values is not None:
            await self._hold()  # a write is applied when it arrives; only its answer is held
            return None
        with self.lock:
            if bits:
                for i in range(count):
                    reg_index = address // 16 + i
                    word = 0
                    for b in range(16):
                        if self.tables[table].get(reg_index * 16 + b):
                            word |= 1 << b
                    registers[reg_index - start] = word
            else:
                for i in range(count):
                    registers[address + i - start] = self.tables[table].get(address + i, 0)
            if len(self.answer_log) < 100_000:
                self.answer_log.append((time.perf_counter_ns(), address, count))
        return None

    async def _hold(self) -> None:
        if self.held:
            self.holding_now += 1
            while self.held:
                await asyncio.sleep(0.001)
            self.holding_now -= 1

    # ---- control channel -------------------------------------------------------------------------------
    def command(self, name: str, args: tuple[Any, ...]) -> Any:
        with self.lock:
            if name == "set":
                table, address, values = args
                for i, value in enumerate(values):
                    self.tables[table][address + i] = int(value)
                if self.kind == "charger" and table == "holding":
                    self._charger_follow()
                return None
            if name == "get":
                table, address, count = args
                return [self.tables[table].get(address + i, 0) for i in range(count)]
            if name == "meter":
                self._meter_values(*args)
                return time.perf_counter_ns()
            if name == "write_log":
                log, self.write_log = self.write_log, []
                return log
            if name == "answer_log":
                answers, self.answer_log = self.answer_log, []
                return answers
            if name == "delay":
                self.delay_s = float(args[0])
                return None
            if name == "hold":
                self.held = bool(args[0])
                return None
            if name == "held":
                return self.holding_now
            if name == "exception":
                table, address, code = args
                if code is None:
                    self.exceptions.pop((table, address), None)
                else:
                    self.exceptions[(table, address)] = int(code)
                return None
            if name == "writes":
                return dict(self.writes)
            if name == "requests":
                return self.requests
            if name == "car":
                self.car_connected = bool(args[0])
                self._charger_follow()
                return None
        raise ValueError(f"unknown command {name}")


def _control_loop(model: DeviceModel, conn: Connection) -> None:
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the test process is gone: do not linger
        try:
            conn.send(("ok", model.command(name, args)))
        except Exception as exc:
            conn.send(("error", repr(exc)))


async def _serve(kind: str, port: int, unit: int, options: dict[str, Any], conn: Connection) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    model = DeviceModel(kind, options)
    blocks: list[list[SimData]] = []
    for table in ("coil", "discrete", "holding", "input"):
        ranges = model.ranges[table] or [(0, 1)]
        bits = table in ("coil", "discrete")
        blocks.append(
            [
                SimData(start, values=[False] * count, datatype=DataType.BITS)
                if bits
                else SimData(start, count=count, values=0, datatype=DataType.REGISTERS)
                for start, count in ranges
            ]
        )
    device = SimDevice(id=unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=model.action)
    server = ModbusTcpServer(context=[device], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    threading.Thread(target=_control_loop, args=(model, conn), daemon=True).start()
    conn.send(("ready", port))
    while True:
        await asyncio.sleep(0.1)
        with model.lock:
            model.idle_check()


def _child_main(kind: str, port: int, unit: int, options: dict[str, Any], conn: Connection) -> None:
    asyncio.run(_serve(kind, port, unit, options, conn))


class ModbusPeer:
    """A simulated device in its own process on 127.0.0.1:``port``; use as a context manager."""

    def __init__(self, kind: str, *, port: int | None = None, unit: int = 1, **options: Any) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.unit = unit
        self.options = options
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def start(self, timeout_s: float = 20.0) -> ModbusPeer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_child_main, args=(self.kind, self.port, self.unit, self.options, child), daemon=True
        )
        process.start()
        child.close()
        try:
            if not parent.poll(timeout_s):
                raise EOFError
            status, _port = parent.recv()
        except EOFError:
            process.kill()
            raise RuntimeError(f"modbus test peer '{self.kind}' did not start on port {self.port}") from None
        assert status == "ready"
        self._process, self._conn = process, parent
        return self

    def __enter__(self) -> ModbusPeer:
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def _call(self, name: str, *args: Any) -> Any:
        assert self._conn is not None, "peer not running"
        self._conn.send((name, args))
        if not self._conn.poll(10.0):
            raise RuntimeError(f"modbus test peer did not answer '{name}'")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"modbus test peer: {value}")
        return value

    # registers
    def set_registers(self, address: int, values: list[int], table: str = "holding") -> None:
        self._call("set", table, address, values)

    def registers(self, address: int, count: int = 1, table: str = "holding") -> list[int]:
        result: list[int] = self._call("get", table, address, count)
        return result

    def set_float(self, address: int, value: float) -> None:
        self.set_registers(address, float_registers(value))

    def set_bits(self, address: int, values: list[bool], table: str = "coil") -> None:
        self._call("set", table, address, [int(v) for v in values])

    # device behaviour
    def set_meter(
        self, hz: float | None = None, watts: float | None = None, volts: float | None = None
    ) -> None:
        self._call("meter", hz, watts, volts)

    def plug_car(self, connected: bool) -> None:
        self._call("car", connected)

    def set_meter_at(self, hz: float) -> int:
        """Set the frequency; returns when (perf_counter_ns, CLOCK_MONOTONIC) the server applied it."""
        applied: int = self._call("meter", hz, None, None)
        return applied

    def take_write_log(self) -> list[tuple[int, int, int]]:
        """(perf_counter_ns, register, value) of every register write since the last call."""
        log: list[tuple[int, int, int]] = self._call("write_log")
        return log

    def take_answer_log(self) -> list[tuple[int, int, int]]:
        """(perf_counter_ns when answered, address, count) of every register read since the last call."""
        log: list[tuple[int, int, int]] = self._call("answer_log")
        return log

    def write_counts(self) -> dict[int, int]:
        counts: dict[int, int] = self._call("writes")
        return counts

    def request_count(self) -> int:
        count: int = self._call("requests")
        return count

    # faults
    def delay(self, seconds: float) -> None:
        self._call("delay", seconds)

    def hold(self, held: bool = True) -> None:
        """Keep every answer back until ``hold(False)`` (the device is slow for as long as the test says)."""
        self._call("hold", held)

    def held_requests(self) -> int:
        """How many requests are waiting for their answer right now."""
        count: int = self._call("held")
        return count

    def raise_exception(self, address: int, code: int | None = 2, table: str = "holding") -> None:
        """Answer every request touching ``address`` with exception ``code`` (None: stop)."""
        self._call("exception", table, address, code)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def restart(self) -> None:
        """A fresh server process on the same port (the device rebooted)."""
        self.kill()
        self.start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.01) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)
