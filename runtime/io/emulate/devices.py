"""Register images of emulated field devices: a SunSpec meter, a Wallbox Quasar charger, a SunSpec DER.

Each device is a set of holding registers laid out like the real device (SunSpec models from
``plcrun.io.modbus.sunspec_models``, the Quasar map from ``plcrun.io.modbus.profiles``) and behaves
like one: values are quantised to their register types and repeat while nothing changes, the meter
updates its registers at its own rate (not on every poll), points a real meter does not implement hold
the SunSpec "not implemented" sentinels, a Quasar under remote control follows its power setpoint and
idles (setpoint 0) when no Modbus message arrives within its idle timeout (register 88), a DER follows
``WSet`` while ``WSetEna`` is 1 and reverts after ``WSetRvrtTms``. Every answer takes 5 to 50 ms
(``answer_ms``). The simulation (``plcrun.io.emulate.rehearsal``) sets the physical values.
"""

from __future__ import annotations

import asyncio
import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..modbus import profiles as Q
from ..modbus.sunspec_models import MODELS

SUNS = (0x5375, 0x6E53)
NOT_IMPLEMENTED_INT16 = 0x8000
NOT_IMPLEMENTED_UINT16 = 0xFFFF
NAN_FLOAT32 = (0x7FC0, 0x0000)
_FC_TABLE = {3: "holding", 6: "holding", 16: "holding", 4: "input"}


def s16(value: float) -> int:
    number = max(-32768, min(32767, round(value)))
    return number & 0xFFFF


def from_s16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def float_registers(value: float) -> tuple[int, int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def _text(text: str, count: int) -> list[int]:
    raw = text.encode("ascii")[: count * 2].ljust(count * 2, b"\x00")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, count * 2, 2)]


@dataclass
class Timing:
    """How long the device takes to answer: uniformly 5..50 ms by default (``answer_ms``)."""

    low_ms: float = 5.0
    high_ms: float = 50.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def delay_s(self) -> float:
        return self.rng.uniform(self.low_ms, self.high_ms) / 1000.0


class EmulatedDevice:
    """Holding registers plus behaviour; ``action`` is pymodbus' per-request callback."""

    kind = "device"

    def __init__(self, name: str, timing: Timing, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.timing = timing
        self.clock = clock
        self.lock = threading.Lock()
        self.holding: dict[int, int] = {}
        self.ranges: list[tuple[int, int]] = []
        self.last_message = clock()
        self.requests = 0
        self.writes: list[tuple[int, int, int]] = []  # (perf_counter_ns at receipt, address, value)
        self.answers: list[tuple[int, int, int]] = []  # (perf_counter_ns when answered, address, count)
        # every request: (perf_counter_ns at receipt, perf_counter_ns when answered, function, address, count)
        self.transactions: list[tuple[int, int, int, int, int]] = []

    def define(self, start: int, values: list[int]) -> None:
        self.ranges.append((start, len(values)))
        for i, value in enumerate(values):
            self.holding[start + i] = value & 0xFFFF

    def on_write(self, address: int, values: list[int]) -> None:
        """A write from the gateway (with the lock held)."""
        for i, value in enumerate(values):
            self.holding[address + i] = value & 0xFFFF

    async def action(
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> Any:
        from pymodbus.constants import ExcCodes

        received = time.perf_counter_ns()
        table = _FC_TABLE.get(fc)
        if table != "holding":
            await asyncio.sleep(self.timing.delay_s())
            return ExcCodes.ILLEGAL_FUNCTION
        with self.lock:
            self.last_message = self.clock()
            self.requests += 1
            if values is not None:
                words = [int(v) for v in values]
                self.writes.extend((received, address + i, w) for i, w in enumerate(words))
                del self.writes[:-100_000]
                self.on_write(address, words)
        await asyncio.sleep(self.timing.delay_s())
        with self.lock:
            answered = time.perf_counter_ns()
            self.transactions.append((received, answered, fc, address, count))
            del self.transactions[:-100_000]
            if values is not None:
                return None
            for i in range(count):
                registers[address + i - start] = self.holding.get(address + i, 0)
            self.answers.append((answered, address, count))
            del self.answers[:-100_000]
        return None


class SunSpecMeter(EmulatedDevice):
    """Common model 1, integer meter 203 and float meter 213, chain closed by 0xFFFF, at ``base``."""

    kind = "sunspec meter"

    def __init__(self, name: str, timing: Timing, base: int = 40000, update_s: float = 0.1) -> None:
        super().__init__(name, timing)
        self.base = base
        self.update_s = update_s  # a real meter refreshes its registers at its own rate
        self.offsets: dict[int, int] = {}
        regs = list(SUNS)
        for model_id in (1, 203, 213):
            model = MODELS[model_id]
            length = model.length or 0
            self.offsets[model_id] = len(regs)
            block = [0] * (length + 2)
            block[0], block[1] = model_id, length
            if model_id == 1:
                for point, text in (("Mn", "plcrun"), ("Md", "emulated meter"), ("SN", name)):
                    p = model.points[point]
                    block[p.offset : p.offset + p.registers] = _text(text, p.registers)
            regs += block
        regs += [0xFFFF, 0]
        self.define(base, regs)
        self._unimplemented()
        self._set203("V_SF", s16(-1))
        self._set203("Hz_SF", s16(-2))  # 10 mHz steps: an int16 cannot hold 50000 mHz
        self._set203("W_SF", 0)
        self.next_update = 0.0
        self.updated_ns = 0  # perf_counter_ns of the last register update that changed the frequency

    @property
    def frequency_address(self) -> int:
        return self._address(213, "Hz")

    def _address(self, model_id: int, point: str) -> int:
        return self.base + self.offsets[model_id] + MODELS[model_id].points[point].offset

    def _set203(self, point: str, raw: int) -> None:
        self.holding[self._address(203, point)] = raw & 0xFFFF

    def _unimplemented(self) -> None:
        """What this meter does not measure reads as SunSpec's 'not implemented'."""
        for point in ("VAR", "PF", "VA", "TotWhExp", "TotWhImp"):
            for model_id in (203, 213):
                p = MODELS[model_id].points.get(point)
                if p is None:
                    continue
                address = self._address(model_id, point)
                if p.dtype == "float32":
                    self.holding[address], self.holding[address + 1] = NAN_FLOAT32
                elif p.dtype == "int16":
                    self.holding[address] = NOT_IMPLEMENTED_INT16

    def measure(self, hz: float, volts: float, watts: float) -> None:
        """The physical values now; the registers follow at the meter's own update rate."""
        now = self.clock()
        with self.lock:
            if now < self.next_update:
                return
            self.next_update = now + self.update_s
            h = self.holding
            at = self._address(213, "Hz")
            registers = float_registers(round(hz, 3))
            if (h[at], h[at + 1]) != registers:
                self.updated_ns = time.perf_counter_ns()
            h[at], h[at + 1] = registers
            h[self._address(213, "W")], h[self._address(213, "W") + 1] = float_registers(round(watts))
            h[self._address(213, "PhV")], h[self._address(213, "PhV") + 1] = float_registers(round(volts, 1))
            h[self._address(203, "Hz")] = s16(hz * 100)
            h[self._address(203, "W")] = s16(watts)
            h[self._address(203, "PhV")] = s16(volts * 10)


class QuasarCharger(EmulatedDevice):
    """Wallbox Quasar 1: remote control (81), setpoint type (83), idle timeout (88), setpoint (260),
    available power (514), actual power (526), state (537), SoC (538)."""

    kind = "quasar charger"

    def __init__(self, name: str, timing: Timing, max_power_w: int = Q.QUASAR_MAX_POWER_W) -> None:
        super().__init__(name, timing)
        self.define(80, [0] * 11)
        self.define(256, [0] * 8)
        self.define(510, [0] * 32)
        self.max_power_w = max_power_w
        self.holding[Q.QUASAR_MAX_AVAILABLE_POWER] = max_power_w
        self.holding[Q.QUASAR_STATE] = 2
        self.idle = False

    def setpoint_w(self) -> float:
        """What the charger asks the car for: the setpoint under remote power control, else 0."""
        with self.lock:
            h = self.holding
            remote = h.get(Q.QUASAR_CONTROL) == 1 and h.get(Q.QUASAR_SETPOINT_TYPE) == 1
            timeout = h.get(Q.QUASAR_IDLE_TIMEOUT, 0)
            self.idle = bool(timeout) and self.clock() - self.last_message > timeout
            if self.idle:  # no Modbus message within the idle timeout: the charger stops on its own
                h[Q.QUASAR_POWER_SETPOINT] = 0
            if not remote or self.idle:
                return 0.0
            setpoint = from_s16(h.get(Q.QUASAR_POWER_SETPOINT, 0))
            return float(max(-self.max_power_w, min(self.max_power_w, setpoint)))

    def report(self, connected: bool, soc_pct: float, present_w: float, available_w: float) -> None:
        with self.lock:
            h = self.holding
            h[Q.QUASAR_SOC] = max(0, min(100, round(soc_pct)))
            h[Q.QUASAR_ACTUAL_POWER] = s16(present_w)
            h[Q.QUASAR_MAX_AVAILABLE_POWER] = max(0, min(self.max_power_w, round(available_w)))
            if not connected:
                h[Q.QUASAR_STATE] = 0
            elif self.idle:
                h[Q.QUASAR_STATE] = 4
            else:
                h[Q.QUASAR_STATE] = 1 if present_w > 0.5 else 11 if present_w < -0.5 else 4


class SunSpecDer(EmulatedDevice):
    """SunSpec DER as bidirectional charger: models 1, 701 (W, generation positive), 702 (ratings),
    704 (WSetEna, WSetMod, WSet with WSet_SF, WSetRvrtTms)."""

    kind = "sunspec DER"

    def __init__(self, name: str, timing: Timing, base: int = 40000, rating_w: int = 7000) -> None:
        super().__init__(name, timing)
        self.base = base
        self.offsets: dict[int, int] = {}
        regs = list(SUNS)
        for model_id in (1, 701, 702, 704):
            model = MODELS[model_id]
            length = model.length or max(p.offset + p.registers for p in model.points.values())
            self.offsets[model_id] = len(regs)
            block = [0] * (length + 2)
            block[0], block[1] = model_id, length
            regs += block
        regs += [0xFFFF, 0]
        self.define(base, regs)
        self.rating_w = rating_w
        self.holding[self._address(702, "WChaRteMaxRtg")] = rating_w // 10
        self.holding[self._address(702, "WDisChaRteMaxRtg")] = rating_w // 10
        self.holding[self._address(702, "W_SF")] = 1
        self.holding[self._address(704, "WSet_SF")] = 0
        self.written_at = self.clock()

    def _address(self, model_id: int, point: str) -> int:
        return self.base + self.offsets[model_id] + MODELS[model_id].points[point].offset

    def on_write(self, address: int, values: list[int]) -> None:
        super().on_write(address, values)
        self.written_at = self.clock()

    def setpoint_w(self) -> float:
        """The charge power asked for (plcrun's sign: WSet counts discharge as positive)."""
        with self.lock:
            h = self.holding
            if h.get(self._address(704, "WSetEna")) != 1:
                return 0.0
            revert = (h.get(self._address(704, "WSetRvrtTms"), 0) << 16) | h.get(
                self._address(704, "WSetRvrtTms") + 1, 0
            )
            if revert and self.clock() - self.written_at > revert:
                return 0.0
            at = self._address(704, "WSet")
            raw = (h.get(at, 0) << 16) | h.get(at + 1, 0)
            raw = raw - (1 << 32) if raw & 0x80000000 else raw
            scale = 10 ** from_s16(h.get(self._address(704, "WSet_SF"), 0))
            return float(max(-self.rating_w, min(self.rating_w, -raw * scale)))

    def report(self, connected: bool, soc_pct: float, present_w: float, available_w: float) -> None:
        with self.lock:
            self.holding[self._address(701, "W")] = s16(-present_w)  # generation positive
