"""The validated description of a Modbus device, as the site configuration hands it to the driver.

Everything here is plain immutable data: the site configuration builds it (and checks it completely
before anything starts), the driver only executes it. Addresses are 0-based protocol addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .codec import ByteOrder, WordOrder

Table = Literal["holding", "input", "coil", "discrete"]
Direction = Literal["in", "out"]
Profile = Literal["generic", "sunspec", "quasar", "sunspec-der"]

TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})
WRITABLE_TABLES: frozenset[str] = frozenset({"holding", "coil"})
MAX_READ_REGISTERS = 125  # Modbus limit for function 3 / 4
MAX_READ_BITS = 2000  # Modbus limit for function 1 / 2
MIN_POLL_MS = 10  # the scan period: polling faster only loads the device
DEFAULT_SUNSPEC_BASES: tuple[int, ...] = (40000, 0, 50000)


@dataclass(frozen=True, slots=True)
class SunSpecRef:
    """A point of a SunSpec model, found by discovery: ``213.Hz`` is ``SunSpecRef(213, "Hz")``."""

    model: int
    point: str

    def __str__(self) -> str:
        return f"{self.model}.{self.point}"


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One value on a device, bound to a process-image path (or to nothing)."""

    name: str  # unique within the device
    key: str  # dotted configuration key, for messages
    direction: Direction
    table: Table
    dtype: str  # codec type: int16 ... float64, "bool" or "string"
    registers: int  # registers (or bits) the value occupies
    address: int | None = None  # None for SunSpec points until discovery
    sunspec: SunSpecRef | None = None
    path: str | None = None  # process-image path; None = not bound
    st_type: str | None = None  # IEC type of the bound variable
    word_order: WordOrder = "big"
    byte_order: ByteOrder = "big"
    bit: int | None = None  # a BOOL taken from one bit of a register
    true_values: frozenset[int] | None = None  # a BOOL that is true when the register holds one of these
    scale: float = 1.0  # engineering value = raw * scale (* 10^sf) + offset
    offset: float = 0.0
    scale_register: int | None = None  # address of an int16 power-of-ten exponent (same table)
    sunspec_sf: str | None = None  # name of the SunSpec scale-factor point in the same model
    negate: bool = False  # flip the sign (SunSpec DER: generation positive)
    plausible: tuple[float, float] | None = None  # outside this range the value is BAD
    sentinel: int | None = None  # raw value meaning "not implemented"
    sunspec_sentinels: bool = False  # SunSpec "not implemented" values and NaN are BAD
    poll_group: str = "default"
    stale_ms: int | None = None  # None = the poll group's default
    stuck_ms: int | None = None  # STALE when the value has not changed for this long (None = off)
    limits: tuple[float, float] | None = None  # outputs: clamp engineering values into this range
    write_function: Literal[5, 6, 15, 16] | None = None  # None: 5/6 for one coil/register, else 15/16

    @property
    def yields_bool(self) -> bool:
        return self.dtype == "bool" or self.bit is not None or self.true_values is not None

    @property
    def is_integer_valued(self) -> bool:
        """True when the engineering value is always an integer (no scaling, no floats)."""
        return (
            self.dtype in ("int16", "uint16", "int32", "uint32", "int64", "uint64")
            and self.scale == 1.0
            and self.offset == 0.0
            and self.scale_register is None
            and self.sunspec_sf is None
        )


@dataclass(frozen=True, slots=True)
class InitWrite:
    """A register written after every (re)connect, before the first poll (e.g. enable remote control)."""

    description: str
    value: int
    dtype: str = "uint16"
    table: Table = "holding"
    address: int | None = None
    sunspec: SunSpecRef | None = None


@dataclass(frozen=True, slots=True)
class PollGroupSpec:
    name: str
    period_ms: int
    stale_ms: int


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One Modbus TCP device and everything the driver does with it."""

    name: str
    key: str
    host: str
    port: int
    unit: int
    profile: Profile = "generic"
    timeout_ms: int = 500
    reconnect_min_ms: int = 100  # the site configuration makes it one poll period
    reconnect_max_ms: int = 1000
    comm_lost_after: int = 2  # consecutive failed requests before the device counts as lost
    sunspec_bases: tuple[int, ...] | None = None  # None: no SunSpec discovery
    poll_groups: dict[str, PollGroupSpec] = field(default_factory=dict)
    points: tuple[PointSpec, ...] = ()
    init_writes: tuple[InitWrite, ...] = ()
    heartbeat_ms: int | None = None  # outputs are re-written at least this often
    fallback_ms: int | None = None  # the device's own fallback timer (heartbeat must beat it)
    max_block: int = MAX_READ_REGISTERS
    max_gap: int = 0  # unused registers a read may span to join two blocks
    retry_bad_ms: int = 5000  # how often points that raised an exception are tried again
    setpoint_age_path: str | None = None  # EV session field kept at the age of the last accepted setpoint
    write_connection: bool = False  # outputs written on a second TCP connection of their own

    def inputs(self) -> tuple[PointSpec, ...]:
        return tuple(p for p in self.points if p.direction == "in")

    def outputs(self) -> tuple[PointSpec, ...]:
        return tuple(p for p in self.points if p.direction == "out")
