"""The Modbus register map of the SCADA server: which coil or register shows which located variable.

Built from the program's located variables (``AT %QW4``) and their IEC types:

- ``%IX<b>.<i>`` -> discrete input ``8*b + i``; ``%QX<b>.<i>`` -> coil ``8*b + i``;
  ``%MX<b>.<i>`` -> coil ``memory_base + 8*b + i``;
- ``%IB/%IW/%ID/%IL<n>`` -> input registers; ``%QB/%QW/%QD/%QL<n>`` -> holding registers;
  ``%MB/%MW/%MD/%ML<n>`` -> holding registers from ``memory_base``. A word ``W<n>`` is register ``n``,
  ``D<n>`` registers ``2n, 2n+1``, ``L<n>`` registers ``4n .. 4n+3`` (IEC byte addressing: ``%QD1`` is
  bytes 4..7, like ``%QW2`` and ``%QW3``); a byte ``B<n>`` is the high (even ``n``) or low (odd ``n``)
  half of register ``n // 2``.

Multi-register values follow ``word_order`` (big: most significant register first). Integers are two's
complement of the address width, REAL is IEEE float32 in a D address (float64 in an L address), LREAL
float64 in an L address. %I and %Q are read-only to SCADA (the program owns outputs); %M is writable.
"""

from __future__ import annotations

import enum
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config_errors import ConfigError
from .scada_config import REGISTER_TYPES, NamedRegister

_LOCATION = re.compile(r"^%([IQM])([XBWDL]?)(\d+)(?:\.(\d+))?$")
_REGISTERS = {"B": 1, "W": 1, "D": 2, "L": 4}
_WIDTH_BITS = {"X": 1, "B": 8, "W": 16, "D": 32, "L": 64}
MODBUS_MAX_ADDRESS = 65535

# Modbus exception codes the server answers with
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03


class Table(enum.Enum):
    COILS = "coil"
    DISCRETE_INPUTS = "discrete input"
    INPUT_REGISTERS = "input register"
    HOLDING_REGISTERS = "holding register"

    @property
    def bits(self) -> bool:
        return self in (Table.COILS, Table.DISCRETE_INPUTS)


@dataclass(frozen=True)
class IecType:
    name: str
    kind: str  # bool, int, real
    bits: int
    signed: bool = False

    @property
    def minimum(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def maximum(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


IEC_TYPES: dict[str, IecType] = {
    t.name: t
    for t in (
        IecType("BOOL", "bool", 1),
        IecType("SINT", "int", 8, True),
        IecType("INT", "int", 16, True),
        IecType("DINT", "int", 32, True),
        IecType("LINT", "int", 64, True),
        IecType("USINT", "int", 8),
        IecType("UINT", "int", 16),
        IecType("UDINT", "int", 32),
        IecType("ULINT", "int", 64),
        IecType("BYTE", "int", 8),
        IecType("WORD", "int", 16),
        IecType("DWORD", "int", 32),
        IecType("LWORD", "int", 64),
        IecType("REAL", "real", 32, True),
        IecType("LREAL", "real", 64, True),
    )
}


@dataclass(frozen=True)
class Slot:
    """One served variable: where it sits in which table and how its value is encoded."""

    address: str  # as declared, e.g. "%MW10" (also its journal path)
    table: Table
    first: int  # first coil / register
    count: int  # number of registers (1 for a bit or a byte)
    width: int  # bits of the address: 1, 8, 16, 32, 64
    byte: int | None  # for a B address: 0 = high byte, 1 = low byte of the register
    iec: IecType
    writable: bool
    scale: float = 1.0  # a variable served by name: register = value x scale
    named: bool = False  # ``address`` is a variable path (``[server.registers]``), not a location

    @property
    def last(self) -> int:
        return self.first + self.count - 1


@dataclass(frozen=True)
class Refusal:
    """Why a write is refused, with the Modbus exception code to answer."""

    code: int
    reason: str


@dataclass(frozen=True)
class Skipped:
    address: str
    reason: str


class ScadaMap:
    """The map of one program: cells per table, table sizes, and the variables left out."""

    def __init__(self, slots: Sequence[Slot], skipped: Sequence[Skipped], word_order: str) -> None:
        self.slots = tuple(slots)
        self.skipped = tuple(skipped)
        self.word_order = word_order
        self.cells: dict[Table, dict[int, tuple[Slot, ...]]] = {table: {} for table in Table}
        for slot in slots:
            cells = self.cells[slot.table]
            for index in range(slot.first, slot.first + slot.count):
                cells[index] = (*cells.get(index, ()), slot)
        self.sizes = {table: (max(cells) + 1 if cells else 0) for table, cells in self.cells.items()}

    # ------------------------------------------------------------ reads
    def read_registers(self, table: Table, start: int, count: int, values: Mapping[str, object]) -> list[int]:
        out = [0] * count
        seen: set[str] = set()
        for index in range(start, start + count):
            for slot in self.cells[table].get(index, ()):
                if slot.address in seen:
                    continue
                seen.add(slot.address)
                value = values.get(slot.address)
                if value is None:
                    continue
                for register, word in self._words(slot, value):
                    if start <= register < start + count:
                        out[register - start] |= word
        return out

    def read_bits(self, table: Table, start: int, count: int, values: Mapping[str, object]) -> list[bool]:
        cells = self.cells[table]
        out = []
        for index in range(start, start + count):
            slots = cells.get(index)
            out.append(bool(values.get(slots[0].address)) if slots else False)
        return out

    def _words(self, slot: Slot, value: object) -> list[tuple[int, int]]:
        raw = encode(slot, value)
        if slot.byte is not None:
            return [(slot.first, raw << 8 if slot.byte == 0 else raw)]
        words = [(raw >> (16 * (slot.count - 1 - k))) & 0xFFFF for k in range(slot.count)]
        if self.word_order == "little":
            words.reverse()
        return [(slot.first + k, word) for k, word in enumerate(words)]

    # ------------------------------------------------------------ writes
    def plan_register_write(self, start: int, words: Sequence[int]) -> list[tuple[str, object]] | Refusal:
        """The journal writes for a holding-register write, or why the whole request is refused."""
        table = Table.HOLDING_REGISTERS
        end = start + len(words)
        covered = self._covered(table, start, end)
        if isinstance(covered, Refusal):
            return covered
        writes: list[tuple[str, object]] = []
        for slot in covered:
            if slot.first < start or slot.last >= end:
                return Refusal(
                    ILLEGAL_VALUE,
                    f"{slot.address} spans holding registers {slot.first}..{slot.last}: "
                    "write all of its registers in one request",
                )
            part = list(words[slot.first - start : slot.last + 1 - start])
            if slot.byte is not None:
                raw = part[0] >> 8 if slot.byte == 0 else part[0] & 0xFF
            else:
                if self.word_order == "little":
                    part.reverse()
                raw = 0
                for word in part:
                    raw = (raw << 16) | (word & 0xFFFF)
            value = decode(slot, raw)
            if isinstance(value, Refusal):
                return value
            writes.append((slot.address, value))
        return writes

    def plan_coil_write(self, start: int, bits: Sequence[bool]) -> list[tuple[str, object]] | Refusal:
        covered = self._covered(Table.COILS, start, start + len(bits))
        if isinstance(covered, Refusal):
            return covered
        return [(slot.address, bool(bits[slot.first - start])) for slot in covered]

    def _covered(self, table: Table, start: int, end: int) -> list[Slot] | Refusal:
        cells = self.cells[table]
        covered: list[Slot] = []
        for index in range(start, end):
            slots = cells.get(index)
            if not slots:
                return Refusal(ILLEGAL_ADDRESS, f"{table.value} {index} holds no variable")
            for slot in slots:
                if not slot.writable:
                    return Refusal(
                        ILLEGAL_ADDRESS,
                        f"{table.value} {index} is {slot.address}, which the program owns (read-only)",
                    )
                if slot not in covered:
                    covered.append(slot)
        return covered


# ---------------------------------------------------------------- value codec
def encode(slot: Slot, value: object) -> int:
    """The unsigned raw value (``slot.width`` bits) of a variable's value."""
    mask = (1 << slot.width) - 1
    if slot.iec.kind == "bool":
        return 1 if value else 0
    if slot.named and slot.iec.kind == "int":  # a value by name into an integer register: scaled, clamped
        scaled = round(float(value) * slot.scale)  # type: ignore[arg-type]
        return max(slot.iec.minimum, min(slot.iec.maximum, scaled)) & mask
    if slot.iec.kind == "real":
        number = float(value) * slot.scale  # type: ignore[arg-type]
        if slot.width == 32:
            return int(struct.unpack(">I", struct.pack(">f", number))[0])
        return int(struct.unpack(">Q", struct.pack(">d", number))[0])
    return int(value) & mask  # type: ignore[call-overload,no-any-return]


def decode(slot: Slot, raw: int) -> object | Refusal:
    """The variable value a raw value written by SCADA stands for, or why it does not fit."""
    iec = slot.iec
    if iec.kind == "bool":
        if raw not in (0, 1):
            return Refusal(ILLEGAL_VALUE, f"{slot.address} is a BOOL: write 0 or 1, not {raw}")
        return raw == 1
    if iec.kind == "real":
        if slot.width == 32:
            number = float(struct.unpack(">f", struct.pack(">I", raw))[0])
        else:
            number = float(struct.unpack(">d", struct.pack(">Q", raw))[0])
        if not math.isfinite(number):
            return Refusal(ILLEGAL_VALUE, f"{slot.address}: {number} is not a finite number")
        return number / slot.scale
    value = raw
    if iec.signed and raw >= 1 << (slot.width - 1):
        value = raw - (1 << slot.width)
    if not iec.minimum <= value <= iec.maximum:
        return Refusal(
            ILLEGAL_VALUE,
            f"{slot.address} is {iec.name} ({iec.minimum}..{iec.maximum}): {value} does not fit",
        )
    if slot.named and slot.scale != 1.0:
        return value / slot.scale
    return value


# ---------------------------------------------------------------- building the map
def build_map(
    located_types: Mapping[str, str],
    *,
    memory_base: int,
    word_order: str,
    config_file: str,
    program_file: str,
    named: Sequence[NamedRegister] = (),
) -> ScadaMap:
    """Place every located variable; raise ``ConfigError`` when two share a cell or %Q reaches
    ``memory_base``. Variables that cannot be served (type, address form) are listed in ``skipped``."""
    slots: list[Slot] = [_named_slot(n) for n in named]
    skipped: list[Skipped] = []
    for address, type_name in sorted(located_types.items()):
        placed = _place(address, type_name.strip().upper(), memory_base)
        if isinstance(placed, Skipped):
            skipped.append(placed)
            continue
        if placed.address.startswith("%Q") and placed.last >= memory_base:
            raise ConfigError(
                config_file,
                "server.memory_base",
                f"{address} needs {placed.table.value} {placed.last}, at or above memory_base "
                f"{memory_base}: raise memory_base above {placed.last}",
            )
        if placed.last > MODBUS_MAX_ADDRESS:
            where = "from memory_base " + str(memory_base) if address.startswith("%M") else ""
            skipped.append(
                Skipped(
                    address, f"would need {placed.table.value} {placed.last} {where}, beyond 65535".strip()
                )
            )
            continue
        slots.append(placed)
    _check_overlaps(slots, program_file)
    return ScadaMap(slots, skipped, word_order)


def _named_slot(named: NamedRegister) -> Slot:
    """A variable served by name in the holding registers (``[server.registers]``)."""
    iec_name, count = REGISTER_TYPES[named.type]
    return Slot(
        named.path,
        Table.HOLDING_REGISTERS,
        named.address,
        count,
        16 * count,
        None,
        IEC_TYPES[iec_name],
        named.writable,
        named.scale,
        named=True,
    )


def _place(address: str, type_name: str, memory_base: int) -> Slot | Skipped:
    match = _LOCATION.match(address)
    if match is None:
        return Skipped(address, "not an address of the form %<I|Q|M><X|B|W|D|L><n>[.<bit>]")
    area, size, number_text, bit_text = match.groups()
    number = int(number_text)
    if not size:
        if bit_text is None:
            return Skipped(address, "a bit address needs a bit number, e.g. %QX0.1")
        size = "X"
    iec = IEC_TYPES.get(type_name)
    if iec is None:
        return Skipped(address, f"type {type_name} has no Modbus representation")
    base = memory_base if area == "M" else 0
    writable = area == "M"
    if size == "X":
        if bit_text is None or int(bit_text) > 7:
            return Skipped(address, "a bit address is %<area>X<byte>.<bit> with bit 0..7")
        if iec.kind != "bool":
            return Skipped(address, f"a bit address holds a BOOL, not {type_name}")
        table = Table.DISCRETE_INPUTS if area == "I" else Table.COILS
        return Slot(address, table, base + 8 * number + int(bit_text), 1, 1, None, iec, writable)
    if bit_text is not None:
        return Skipped(address, "only X (bit) addresses have a bit number")
    width = _WIDTH_BITS[size]
    if iec.bits > width:
        return Skipped(address, f"{type_name} ({iec.bits} bits) does not fit a {width}-bit address")
    table = Table.INPUT_REGISTERS if area == "I" else Table.HOLDING_REGISTERS
    if size == "B":
        return Slot(address, table, base + number // 2, 1, 8, number % 2, iec, writable)
    count = _REGISTERS[size]
    return Slot(address, table, base + count * number, count, width, None, iec, writable)


def _check_overlaps(slots: list[Slot], program_file: str) -> None:
    owners: dict[tuple[Table, int, int | None], Slot] = {}
    for slot in slots:
        for index in range(slot.first, slot.last + 1):
            halves: tuple[int | None, ...] = (slot.byte,) if slot.byte is not None else (0, 1)
            for half in halves:
                other = owners.get((slot.table, index, half))
                if other is not None:
                    raise ConfigError(
                        program_file,
                        slot.address,
                        f"shares {slot.table.value} {index} with {other.address}: the Modbus server "
                        "needs located variables that do not overlap",
                    )
                owners[(slot.table, index, half)] = slot
