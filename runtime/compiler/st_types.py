"""The ST type system: elementary types with their widths and ranges, and derived types.

Representation at run time (what generated code stores): BOOL -> bool; integers and bit strings ->
int, wrapped to their width on store; REAL -> float rounded to binary32 on store; LREAL -> float;
TIME/LTIME/DATE/TOD/DT -> int nanoseconds (signed 64-bit); STRING -> str; enumerations -> int;
STRUCT -> an object with slots; ARRAY -> a (nested) list; FUNCTION_BLOCK -> an object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Type:
    name: str

    @property
    def display(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.display


@dataclass(frozen=True, repr=False, eq=True)
class ElementaryType(Type):
    name: str
    kind: str  # bool, int, bits, real, time, date, string
    bits: int = 0
    signed: bool = False

    @property
    def minimum(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def maximum(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def is_integer(self) -> bool:
        return self.kind == "int"

    @property
    def is_bits(self) -> bool:
        return self.kind in ("bits", "bool")

    @property
    def is_real(self) -> bool:
        return self.kind == "real"

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "real")

    @property
    def is_anyint(self) -> bool:
        """Integers and bit strings (not BOOL): both are Python ints."""
        return self.kind in ("int", "bits")


def _int(name: str, bits: int, signed: bool) -> ElementaryType:
    return ElementaryType(name, "int", bits, signed)


BOOL = ElementaryType("BOOL", "bool", 1)
SINT = _int("SINT", 8, True)
INT = _int("INT", 16, True)
DINT = _int("DINT", 32, True)
LINT = _int("LINT", 64, True)
USINT = _int("USINT", 8, False)
UINT = _int("UINT", 16, False)
UDINT = _int("UDINT", 32, False)
ULINT = _int("ULINT", 64, False)
BYTE = ElementaryType("BYTE", "bits", 8)
WORD = ElementaryType("WORD", "bits", 16)
DWORD = ElementaryType("DWORD", "bits", 32)
LWORD = ElementaryType("LWORD", "bits", 64)
REAL = ElementaryType("REAL", "real", 32, True)
LREAL = ElementaryType("LREAL", "real", 64, True)
TIME = ElementaryType("TIME", "time", 64, True)
LTIME = ElementaryType("LTIME", "time", 64, True)
DATE = ElementaryType("DATE", "date", 64, True)
TOD = ElementaryType("TOD", "date", 64, True)
DT = ElementaryType("DT", "date", 64, True)

_ALL = (
    BOOL,
    SINT,
    INT,
    DINT,
    LINT,
    USINT,
    UINT,
    UDINT,
    ULINT,
    BYTE,
    WORD,
    DWORD,
    LWORD,
    REAL,
    LREAL,
    TIME,
    LTIME,
    DATE,
    TOD,
    DT,
)
ELEMENTARY: dict[str, ElementaryType] = {t.name: t for t in _ALL}
ELEMENTARY_ALIASES = {
    "TIME_OF_DAY": TOD,
    "DATE_AND_TIME": DT,
    "LTOD": TOD,
    "LTIME_OF_DAY": TOD,
    "LDT": DT,
    "LDATE_AND_TIME": DT,
    "LDATE": DATE,
}

INTEGER_TYPES = (SINT, INT, DINT, LINT, USINT, UINT, UDINT, ULINT)
BIT_TYPES = (BYTE, WORD, DWORD, LWORD)


@dataclass(frozen=True, repr=False)
class StringType(Type):
    length: int = 80
    wide: bool = False

    @property
    def name(self) -> str:  # type: ignore[override]
        base = "WSTRING" if self.wide else "STRING"
        return base if self.length == 80 else f"{base}({self.length})"


STRING = StringType()
WSTRING = StringType(wide=True)


@dataclass(frozen=True, repr=False)
class LiteralIntType(Type):
    """The type of an integer literal without a prefix: it adopts the type of its context."""

    name: str = "integer literal"


@dataclass(frozen=True, repr=False)
class LiteralRealType(Type):
    name: str = "real literal"


ANY_INT_LIT = LiteralIntType()
ANY_REAL_LIT = LiteralRealType()


@dataclass(eq=False, repr=False)
class SubrangeType(Type):
    base: ElementaryType
    low: int
    high: int
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.base.name}({self.low}..{self.high})"


@dataclass(eq=False, repr=False)
class EnumType(Type):
    name: str
    values: dict[str, int]  # upper-case value name -> number
    spelling: dict[str, str] = field(default_factory=dict)  # upper-case -> as declared
    default: int = 0

    def value_name(self, number: int) -> str:
        for key, value in self.values.items():
            if value == number:
                return self.spelling.get(key, key)
        return str(number)


@dataclass(eq=False, repr=False)
class ArrayType(Type):
    element: Type
    dims: list[tuple[int, int]]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            ranges = ", ".join(f"{lo}..{hi}" for lo, hi in self.dims)
            self.name = f"ARRAY[{ranges}] OF {self.element.display}"

    @property
    def size(self) -> int:
        total = 1
        for lo, hi in self.dims:
            total *= hi - lo + 1
        return total


@dataclass(eq=False, repr=False)
class VarInfo:
    """One declared variable of a POU, struct field, or global."""

    name: str  # as declared
    type: Type
    section: str  # VAR, VAR_INPUT, VAR_OUTPUT, VAR_IN_OUT, VAR_TEMP, VAR_GLOBAL, VAR_EXTERNAL, FIELD
    pos: Any
    init: Any = None  # AST initialiser
    constant: bool = False
    retain: bool = False
    location: str | None = None
    attributes: dict[str, str | None] = field(default_factory=dict)
    used: bool = False
    assigned: bool = False
    owner: str = ""  # POU or struct name
    reported: bool = False  # a problem with this declaration was reported (report it once)

    @property
    def key(self) -> str:
        return self.name.upper()


@dataclass(eq=False, repr=False)
class StructType(Type):
    name: str
    fields: dict[str, VarInfo]  # upper-case name -> field


@dataclass(eq=False, repr=False)
class PouType(Type):
    """A FUNCTION_BLOCK, PROGRAM or FUNCTION with its interface and locals."""

    name: str
    kind: str
    variables: dict[str, VarInfo] = field(default_factory=dict)  # upper-case name -> var
    return_type: Type | None = None
    decl: Any = None  # the st_ast.Pou
    library: bool = False
    # set by the checker: the POUs its body calls, and a FUNCTION's result variable
    calls: list[PouType] = field(default_factory=list)
    result_var: VarInfo | None = None

    def inputs(self) -> list[VarInfo]:
        return [v for v in self.variables.values() if v.section == "VAR_INPUT"]

    def outputs(self) -> list[VarInfo]:
        return [v for v in self.variables.values() if v.section == "VAR_OUTPUT"]

    def in_outs(self) -> list[VarInfo]:
        return [v for v in self.variables.values() if v.section == "VAR_IN_OUT"]

    def interface(self) -> str:
        parts = []
        ins = [v.name for v in self.inputs()]
        outs = [v.name for v in self.outputs()]
        io = [v.name for v in self.in_outs()]
        if ins:
            parts.append("inputs " + ", ".join(ins))
        if io:
            parts.append("in-outs " + ", ".join(io))
        if outs:
            parts.append("outputs " + ", ".join(outs))
        return f"{self.name} has " + ("; ".join(parts) if parts else "no parameters")


@dataclass(frozen=True, repr=False)
class ErrorType(Type):
    """The type of an expression that already produced a diagnostic: it is compatible with anything."""

    name: str = "<error>"


ERROR = ErrorType()


def resolve_alias(t: Type) -> Type:
    return t


def underlying(t: Type) -> Type:
    """Subranges behave like their base type in expressions."""
    if isinstance(t, SubrangeType):
        return t.base
    return t


def is_integer_like(t: Type) -> bool:
    t = underlying(t)
    return isinstance(t, LiteralIntType) or (isinstance(t, ElementaryType) and t.is_anyint)


def is_real_like(t: Type) -> bool:
    t = underlying(t)
    return isinstance(t, LiteralRealType) or (isinstance(t, ElementaryType) and t.is_real)


def is_numeric(t: Type) -> bool:
    return is_integer_like(t) or is_real_like(t)


def is_bool(t: Type) -> bool:
    return underlying(t) is BOOL


def is_time(t: Type) -> bool:
    t = underlying(t)
    return isinstance(t, ElementaryType) and t.kind == "time"


def is_string(t: Type) -> bool:
    return isinstance(t, StringType)


def is_elementary(t: Type) -> bool:
    return isinstance(underlying(t), ElementaryType | StringType | LiteralIntType | LiteralRealType)


def int_range(t: Type) -> tuple[int, int] | None:
    """Value range of an integer-like or enum type, for wrap-around and literal checks."""
    if isinstance(t, SubrangeType):
        return (t.low, t.high)
    if isinstance(t, ElementaryType) and (t.is_anyint or t.kind in ("time", "date")):
        return (t.minimum, t.maximum)
    return None


def wider(a: ElementaryType, b: ElementaryType) -> ElementaryType:
    """The result type of arithmetic on two integers/bit strings (the wider one; signed wins a tie)."""
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    if a.kind == "int" and b.kind == "int" and a.signed != b.signed:
        return a if a.signed else b
    if a.kind != b.kind:
        return a if a.kind == "int" else b
    return a


def same_type(a: Type, b: Type) -> bool:
    if a is b:
        return True
    if isinstance(a, ElementaryType) and isinstance(b, ElementaryType):
        return a.name == b.name
    if isinstance(a, StringType) and isinstance(b, StringType):
        return a.wide == b.wide
    if isinstance(a, ArrayType) and isinstance(b, ArrayType):
        return [hi - lo for lo, hi in a.dims] == [hi - lo for lo, hi in b.dims] and same_type(
            a.element, b.element
        )
    if isinstance(a, SubrangeType) or isinstance(b, SubrangeType):
        return same_type(underlying(a), underlying(b))
    return False


def describe_layout(t: Type) -> str:
    """A stable text for a type, used in retain layout hashes and online change."""
    if isinstance(t, ArrayType):
        dims = ",".join(f"{lo}..{hi}" for lo, hi in t.dims)
        return f"ARRAY[{dims}] OF {describe_layout(t.element)}"
    if isinstance(t, StructType):
        inner = ";".join(f"{f.name.upper()}:{describe_layout(f.type)}" for f in t.fields.values())
        return f"STRUCT {t.name.upper()}({inner})"
    if isinstance(t, EnumType):
        return f"ENUM {t.name.upper()}"
    if isinstance(t, PouType):
        return f"FB {t.name.upper()}"
    return t.display
