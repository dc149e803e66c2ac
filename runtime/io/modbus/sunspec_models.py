"""SunSpec model point tables for the models plcrun binds by name (``213.Hz``, ``704.WSet``).

Each table is laid out the way the SunSpec model definitions do it: the model ID register, the length
register ``L``, then the points in order, each taking the registers its type needs. Offsets are
counted from the model ID register. Only the points plcrun needs (plus the points in front of them)
are listed; the sequences follow the public SunSpec model definitions (sunspec/models, json/model_*.json):

- 1 (common), 201-204 (integer meters with scale factors), 211-214 (float32 meters),
- 701 (DER AC measurement), 702 (DER capacity), 704 (DER AC controls), 711 (frequency droop).

Check values from the grid-services notes: 203 Hz +16, Hz_SF +17, W +18, W_SF +22; 213 Hz +26, W +28;
701 W +10, Hz +17, W_SF +116; 702 WChaRteMaxRtg +10, WDisChaRteMaxRtg +11; 704 WSetEna +22, WSetMod
+23, WSet +24, WSetRvrtTms +31, WSet_SF +55; 711 DbOf +14, DbUf +16, KOf +18, KUf +19, RspTms +20.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

# SunSpec point types -> codec types
_SUNSPEC_TYPES: Final[dict[str, str]] = {
    "int16": "int16",
    "uint16": "uint16",
    "sunssf": "int16",
    "enum16": "uint16",
    "bitfield16": "uint16",
    "count": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "acc32": "uint32",
    "enum32": "uint32",
    "bitfield32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "acc64": "uint64",
    "float32": "float32",
    "float64": "float64",
}
_SIZES: Final[dict[str, int]] = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}


@dataclass(frozen=True, slots=True)
class SunSpecPoint:
    """One point of a model: offset from the model ID register, codec type, scale factor point."""

    name: str
    offset: int
    dtype: str  # codec type ("int16", "float32", "string", ...)
    registers: int
    sf: str | None = None  # name of the scale-factor point in the same model
    is_scale_factor: bool = False


@dataclass(frozen=True, slots=True)
class SunSpecModel:
    model_id: int
    label: str
    length: int | None  # the usual value of L; None when it varies (repeating groups)
    points: dict[str, SunSpecPoint] = field(default_factory=dict)


def _layout(
    model_id: int, label: str, length: int | None, spec: Sequence[tuple[str, str, str | None]]
) -> SunSpecModel:
    """Lay points out one after the other from offset 2. A spec entry is (name, sunspec type, sf).

    ``("-", "pad3", None)`` skips three registers; ``("Mn", "string16", None)`` is a 16-register string.
    """
    points: dict[str, SunSpecPoint] = {}
    offset = 2
    for name, stype, sf in spec:
        if stype.startswith("pad"):
            offset += int(stype[3:])
            continue
        if stype.startswith("string"):
            size = int(stype[6:])
            points[name] = SunSpecPoint(name, offset, "string", size)
        else:
            dtype = _SUNSPEC_TYPES[stype]
            size = 2 if dtype == "float32" else 4 if dtype == "float64" else _SIZES[dtype]
            points[name] = SunSpecPoint(name, offset, dtype, size, sf, stype == "sunssf")
        offset += size
    return SunSpecModel(model_id, label, length, points)


_COMMON = [
    ("Mn", "string16", None),
    ("Md", "string16", None),
    ("Opt", "string8", None),
    ("Vr", "string8", None),
    ("SN", "string16", None),
    ("DA", "uint16", None),
]


def _int_meter(model_id: int, label: str) -> SunSpecModel:
    a, v, w, va, var, pf = "A_SF", "V_SF", "W_SF", "VA_SF", "VAR_SF", "PF_SF"
    spec: list[tuple[str, str, str | None]] = [
        ("A", "int16", a), ("AphA", "int16", a), ("AphB", "int16", a), ("AphC", "int16", a),
        ("A_SF", "sunssf", None),
        ("PhV", "int16", v), ("PhVphA", "int16", v), ("PhVphB", "int16", v), ("PhVphC", "int16", v),
        ("PPV", "int16", v), ("PhVphAB", "int16", v), ("PhVphBC", "int16", v), ("PhVphCA", "int16", v),
        ("V_SF", "sunssf", None),
        ("Hz", "int16", "Hz_SF"), ("Hz_SF", "sunssf", None),
        ("W", "int16", w), ("WphA", "int16", w), ("WphB", "int16", w), ("WphC", "int16", w),
        ("W_SF", "sunssf", None),
        ("VA", "int16", va), ("VAphA", "int16", va), ("VAphB", "int16", va), ("VAphC", "int16", va),
        ("VA_SF", "sunssf", None),
        ("VAR", "int16", var), ("VARphA", "int16", var), ("VARphB", "int16", var), ("VARphC", "int16", var),
        ("VAR_SF", "sunssf", None),
        ("PF", "int16", pf), ("PFphA", "int16", pf), ("PFphB", "int16", pf), ("PFphC", "int16", pf),
        ("PF_SF", "sunssf", None),
        ("TotWhExp", "acc32", "TotWh_SF"), ("-", "pad6", None),
        ("TotWhImp", "acc32", "TotWh_SF"), ("-", "pad6", None),
        ("TotWh_SF", "sunssf", None),
    ]  # fmt: skip
    return _layout(model_id, label, 105, spec)


def _float_meter(model_id: int, label: str) -> SunSpecModel:
    names = [
        "A", "AphA", "AphB", "AphC", "PhV", "PhVphA", "PhVphB", "PhVphC", "PPV", "PPVphAB", "PPVphBC",
        "PPVphCA", "Hz", "W", "WphA", "WphB", "WphC", "VA", "VAphA", "VAphB", "VAphC", "VAR", "VARphA",
        "VARphB", "VARphC", "PF", "PFphA", "PFphB", "PFphC", "TotWhExp", "TotWhExpPhA", "TotWhExpPhB",
        "TotWhExpPhC", "TotWhImp",
    ]  # fmt: skip
    spec: list[tuple[str, str, str | None]] = [(name, "float32", None) for name in names]
    return _layout(model_id, label, 124, spec)


def _der_measure() -> SunSpecModel:
    spec: list[tuple[str, str, str | None]] = [
        ("ACType", "enum16", None), ("St", "enum16", None), ("InvSt", "enum16", None),
        ("ConnSt", "enum16", None), ("Alrm", "bitfield32", None), ("DERMode", "bitfield32", None),
        ("W", "int16", "W_SF"), ("VA", "int16", "VA_SF"), ("Var", "int16", "Var_SF"),
        ("PF", "uint16", "PF_SF"), ("A", "int16", "A_SF"), ("LLV", "int16", "V_SF"),
        ("LNV", "int16", "V_SF"), ("Hz", "uint32", "Hz_SF"),
        ("TotWhInj", "uint64", "TotWh_SF"), ("TotWhAbs", "uint64", "TotWh_SF"),
        # reactive energy (2 x uint64), six temperatures, three phase blocks of 23 registers, ThrotPct,
        # ThrotSrc (uint32)
        ("-", "pad8", None), ("-", "pad6", None), ("-", "pad69", None), ("-", "pad3", None),
        ("A_SF", "sunssf", None), ("V_SF", "sunssf", None), ("Hz_SF", "sunssf", None),
        ("W_SF", "sunssf", None), ("PF_SF", "sunssf", None), ("VA_SF", "sunssf", None),
        ("Var_SF", "sunssf", None), ("TotWh_SF", "sunssf", None),
    ]  # fmt: skip
    return _layout(701, "DER AC measurement", 153, spec)


def _der_capacity() -> SunSpecModel:
    w = "W_SF"
    spec: list[tuple[str, str, str | None]] = [
        ("WMaxRtg", "uint16", w), ("WOvrExtRtg", "uint16", w), ("WOvrExtRtgPF", "uint16", "PF_SF"),
        ("WUndExtRtg", "uint16", w), ("WUndExtRtgPF", "uint16", "PF_SF"), ("VAMaxRtg", "uint16", "VA_SF"),
        ("VarMaxInjRtg", "uint16", "Var_SF"), ("VarMaxAbsRtg", "uint16", "Var_SF"),
        ("WChaRteMaxRtg", "uint16", w), ("WDisChaRteMaxRtg", "uint16", w),
        # VA charge/discharge ratings, voltage/current/PF ratings, susceptance, categories (11 registers)
        ("-", "pad11", None), ("CtrlModes", "bitfield32", None), ("-", "pad1", None),
        ("WMax", "uint16", w), ("-", "pad7", None),
        ("WChaRteMax", "uint16", w), ("WDisChaRteMax", "uint16", w),
        # VAChaRteMax .. IntIslandCat (9 registers in the current definition, 7 in the first one)
        ("-", "pad9", None),
        ("W_SF", "sunssf", None), ("PF_SF", "sunssf", None), ("VA_SF", "sunssf", None),
        ("Var_SF", "sunssf", None), ("V_SF", "sunssf", None), ("A_SF", "sunssf", None),
    ]  # fmt: skip
    return _layout(702, "DER capacity", 50, spec)


def _der_controls() -> SunSpecModel:
    spec: list[tuple[str, str, str | None]] = [
        # PF when injecting / absorbing: enable, reversion enable, reversion time, time remaining
        ("-", "pad12", None),
        ("WMaxLimPctEna", "enum16", None), ("WMaxLimPct", "uint16", "WMaxLimPct_SF"),
        ("WMaxLimPctRvrt", "uint16", "WMaxLimPct_SF"), ("WMaxLimPctEnaRvrt", "enum16", None),
        ("WMaxLimPctRvrtTms", "uint32", None), ("WMaxLimPctRvrtRem", "uint32", None),
        ("WSetEna", "enum16", None), ("WSetMod", "enum16", None),
        ("WSet", "int32", "WSet_SF"), ("WSetRvrt", "int32", "WSet_SF"),
        ("WSetPct", "int16", "WSetPct_SF"), ("WSetPctRvrt", "int16", "WSetPct_SF"),
        ("WSetEnaRvrt", "enum16", None), ("WSetRvrtTms", "uint32", None), ("WSetRvrtRem", "uint32", None),
        # reactive power set (14 registers), ramp rates (3), anti-islanding (1)
        ("-", "pad18", None),
        ("PF_SF", "sunssf", None), ("WMaxLimPct_SF", "sunssf", None), ("WSet_SF", "sunssf", None),
        ("WSetPct_SF", "sunssf", None), ("VarSet_SF", "sunssf", None), ("VarSetPct_SF", "sunssf", None),
    ]  # fmt: skip
    return _layout(704, "DER AC controls", 65, spec)


def _freq_droop() -> SunSpecModel:
    spec: list[tuple[str, str, str | None]] = [
        ("Ena", "enum16", None), ("AdptCtlReq", "uint16", None), ("AdptCtlRslt", "enum16", None),
        ("NCtl", "uint16", None), ("RvrtTms", "uint32", None), ("RvrtRem", "uint32", None),
        ("RvrtCtl", "uint16", None),
        ("Db_SF", "sunssf", None), ("K_SF", "sunssf", None), ("RspTms_SF", "sunssf", None),
        # the first stored control set: the settings in use
        ("DbOf", "uint32", "Db_SF"), ("DbUf", "uint32", "Db_SF"), ("KOf", "uint16", "K_SF"),
        ("KUf", "uint16", "K_SF"), ("RspTms", "uint32", "RspTms_SF"), ("ReadOnly", "enum16", None),
    ]  # fmt: skip
    return _layout(711, "DER frequency droop", None, spec)


MODELS: Final[dict[int, SunSpecModel]] = {
    1: _layout(1, "common", 66, _COMMON),
    201: _int_meter(201, "single phase meter"),
    202: _int_meter(202, "split single phase meter"),
    203: _int_meter(203, "wye three phase meter"),
    204: _int_meter(204, "delta three phase meter"),
    211: _float_meter(211, "single phase meter (float)"),
    212: _float_meter(212, "split single phase meter (float)"),
    213: _float_meter(213, "wye three phase meter (float)"),
    214: _float_meter(214, "delta three phase meter (float)"),
    701: _der_measure(),
    702: _der_capacity(),
    704: _der_controls(),
    711: _freq_droop(),
}

# Older published layouts keyed by their model length: point name -> offset
ALTERNATE_LAYOUTS: Final[dict[tuple[int, int], dict[str, int]]] = {
    # the first 702 definition had two registers fewer in front of the scale factors
    (702, 48): {"W_SF": 43, "PF_SF": 44, "VA_SF": 45, "Var_SF": 46, "V_SF": 47, "A_SF": 48},
    (1, 65): {},
}


def point_offset(model_id: int, length: int, point: SunSpecPoint) -> int:
    """The point's offset in a model instance of the given length (older layouts differ)."""
    return ALTERNATE_LAYOUTS.get((model_id, length), {}).get(point.name, point.offset)
