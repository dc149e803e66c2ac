"""Register codecs: how Modbus registers turn into numbers and back.

A Modbus register is 16 bits. Wider values span several registers; devices disagree on the order of
the registers (word order) and, rarely, of the two bytes inside a register (byte order). SunSpec and
most meters use big-endian for both ("big", "big"). Addresses elsewhere in this package are the
0-based protocol addresses that go on the wire.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final, Literal

WordOrder = Literal["big", "little"]
ByteOrder = Literal["big", "little"]

# struct format and register count of every numeric register type
_FORMATS: Final[dict[str, tuple[str, int]]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}

NUMERIC_TYPES: Final[frozenset[str]] = frozenset(_FORMATS)
FLOAT_TYPES: Final[frozenset[str]] = frozenset({"float32", "float64"})
INTEGER_TYPES: Final[frozenset[str]] = NUMERIC_TYPES - FLOAT_TYPES
# "bool" is a coil / discrete input, or one bit of a register; "string" is ASCII packed two per register
REGISTER_TYPES: Final[frozenset[str]] = NUMERIC_TYPES | {"bool", "string"}

INTEGER_RANGES: Final[dict[str, tuple[int, int]]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}

# SunSpec "not implemented" values, as the decoded number of each type
SUNSPEC_SENTINELS: Final[dict[str, int]] = {
    "int16": -0x8000,
    "uint16": 0xFFFF,
    "int32": -0x80000000,
    "uint32": 0xFFFFFFFF,
    "int64": -0x8000000000000000,
    "uint64": 0xFFFFFFFFFFFFFFFF,
}
SUNSPEC_SF_NOT_IMPLEMENTED: Final[int] = -0x8000


def register_count(dtype: str, string_registers: int = 0) -> int:
    """How many registers a value of ``dtype`` occupies."""
    if dtype == "string":
        return string_registers
    if dtype == "bool":
        return 1
    return _FORMATS[dtype][1]


def _registers_to_bytes(registers: Sequence[int], word_order: WordOrder, byte_order: ByteOrder) -> bytes:
    words = list(registers) if word_order == "big" else list(reversed(registers))
    out = bytearray()
    for word in words:
        high, low = (word >> 8) & 0xFF, word & 0xFF
        out += bytes((high, low)) if byte_order == "big" else bytes((low, high))
    return bytes(out)


def _bytes_to_registers(data: bytes, word_order: WordOrder, byte_order: ByteOrder) -> list[int]:
    words = []
    for i in range(0, len(data), 2):
        high, low = data[i], data[i + 1]
        words.append((high << 8) | low if byte_order == "big" else (low << 8) | high)
    return words if word_order == "big" else list(reversed(words))


def decode(
    registers: Sequence[int],
    dtype: str,
    word_order: WordOrder = "big",
    byte_order: ByteOrder = "big",
) -> int | float:
    """Decode a numeric value from ``register_count(dtype)`` registers."""
    fmt, count = _FORMATS[dtype]
    if len(registers) != count:
        raise ValueError(f"{dtype} needs {count} registers, got {len(registers)}")
    data = _registers_to_bytes(registers, word_order, byte_order)
    value: int | float = struct.unpack(">" + fmt, data)[0]
    if dtype == "float32" and math.isfinite(value):
        return _shortest_float32(value, data)
    return value


def _shortest_float32(value: float, data: bytes) -> float:
    """The shortest decimal that is the same float32: a meter's 49.8 Hz reads 49.8, not 49.79999923706055."""
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == data:
            return candidate
    return value


def encode(
    value: int | float,
    dtype: str,
    word_order: WordOrder = "big",
    byte_order: ByteOrder = "big",
) -> list[int]:
    """Encode a number as registers; integers must already be in range (see ``clamp_to_type``)."""
    fmt, _count = _FORMATS[dtype]
    packed_value: int | float = float(value) if dtype in FLOAT_TYPES else int(value)
    return _bytes_to_registers(struct.pack(">" + fmt, packed_value), word_order, byte_order)


def clamp_to_type(value: float, dtype: str) -> tuple[int | float, bool]:
    """Round ``value`` for an integer type and clamp it into the type's range.

    Returns the value and whether it had to be clamped.
    """
    if dtype in FLOAT_TYPES:
        return float(value), False
    low, high = INTEGER_RANGES[dtype]
    rounded = round(value)
    if rounded < low:
        return low, True
    if rounded > high:
        return high, True
    return rounded, False


def decode_string(registers: Sequence[int]) -> str:
    """ASCII text packed two characters per register, NUL padded (SunSpec strings)."""
    raw = _registers_to_bytes(registers, "big", "big")
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()


def encode_string(text: str, registers: int) -> list[int]:
    raw = text.encode("ascii")[: registers * 2].ljust(registers * 2, b"\x00")
    return _bytes_to_registers(raw, "big", "big")


def is_not_implemented(value: int | float, dtype: str) -> bool:
    """True for the SunSpec "not implemented" value of ``dtype`` (NaN for floats)."""
    if dtype in FLOAT_TYPES:
        return math.isnan(value)
    return value == SUNSPEC_SENTINELS.get(dtype)
