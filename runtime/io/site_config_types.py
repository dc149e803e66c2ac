"""Checks between a device point and the ST variable it is bound to.

The compiler hands the site configuration a catalog: every bindable process-image path with its IEC
type name (``"main.grid_hz": "LREAL"``, ``"%IW0": "INT"``, ``"main.evs[1].soc_pct": "REAL"``).
These functions say, in one sentence, why a binding cannot work (or return None when it can).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from .config_errors import ConfigError
from .config_reader import TableReader, did_you_mean
from .modbus.codec import INTEGER_RANGES
from .modbus.model import PointSpec

INTEGER_ST_RANGES: Final[dict[str, tuple[int, int]]] = {
    "SINT": (-(2**7), 2**7 - 1),
    "INT": (-(2**15), 2**15 - 1),
    "DINT": (-(2**31), 2**31 - 1),
    "LINT": (-(2**63), 2**63 - 1),
    "USINT": (0, 2**8 - 1),
    "UINT": (0, 2**16 - 1),
    "UDINT": (0, 2**32 - 1),
    "ULINT": (0, 2**64 - 1),
    "BYTE": (0, 2**8 - 1),
    "WORD": (0, 2**16 - 1),
    "DWORD": (0, 2**32 - 1),
    "LWORD": (0, 2**64 - 1),
}
FLOAT_ST_TYPES: Final[frozenset[str]] = frozenset({"REAL", "LREAL"})
STRING_ST = re.compile(r"^W?STRING(\[\d+\])?$")
LOCATED = re.compile(r"^%([IQM])([XBWDL]?)(\d+(?:\.\d+)?)$")


def normalise_type(st_type: str) -> str:
    return st_type.strip().upper()


def located_direction(path: str) -> str | None:
    """``"in"`` for ``%I...``, ``"out"`` for ``%Q...``, ``"memory"`` for ``%M...``; None if not located."""
    match = LOCATED.match(path)
    if match is None:
        return None
    return {"I": "in", "Q": "out", "M": "memory"}[match.group(1)]


def unknown_variable(path: str, catalog: Mapping[str, str]) -> str:
    hint = did_you_mean(path, catalog)
    if not hint and "." in path:
        # a typo in the record field: compare the last part against the fields of the same record
        prefix, _, _field = path.rpartition(".")
        siblings = [p for p in catalog if p.startswith(prefix + ".")]
        hint = did_you_mean(path, siblings)
    return f"unknown variable '{path}': the program has no such bindable variable{hint}"


def _describe(point: PointSpec) -> str:
    if point.sunspec is not None:
        return f"SunSpec point {point.sunspec} ({point.dtype})"
    if point.yields_bool:
        return "a BOOL point"
    return f"a {point.dtype} point"


def binding_problem(point: PointSpec, path: str, st_type: str) -> str | None:
    """Why ``point`` cannot feed (or be fed by) the ST variable ``path`` of type ``st_type``."""
    st = normalise_type(st_type)
    what = _describe(point)
    direction = located_direction(path)
    if direction == "in" and point.direction == "out":
        return f"output point bound to input address {path}: outputs need a %Q address"
    if direction == "out" and point.direction == "in":
        return f"input point bound to output address {path}: inputs need a %I address"

    if point.dtype == "string":
        if STRING_ST.match(st):
            return None
        return f"{what} holds text and cannot be bound to {path} of type {st}"
    if st == "BOOL":
        if point.yields_bool:
            return None
        return (
            f"type mismatch: {what} cannot be bound to {path} of type BOOL "
            "(use a coil/discrete input, 'bit' or 'true_values')"
        )
    if point.yields_bool:
        if point.direction == "in":
            return f"type mismatch: {what} cannot be bound to {path} of type {st}: declare it BOOL"
        return f"type mismatch: a BOOL output point cannot take {path} of type {st}"
    if STRING_ST.match(st):
        return f"type mismatch: {what} cannot be bound to {path} of type {st}"
    if st in FLOAT_ST_TYPES:
        return None
    if st not in INTEGER_ST_RANGES:
        return f"{path} has type {st}, which no Modbus point can be bound to"
    if point.direction == "out":
        return None  # integers go into any numeric register; out-of-range values are clamped
    if not point.is_integer_valued:
        return (
            f"type mismatch: {what} gives fractional values (scaled or floating point) "
            f"but {path} is {st}: declare it REAL or LREAL"
        )
    low, high = INTEGER_RANGES[point.dtype]
    if point.negate:
        low, high = -high, -low
    st_low, st_high = INTEGER_ST_RANGES[st]
    if low < st_low or high > st_high:
        return (
            f"type mismatch: {what} ranges {low}..{high}, which does not fit {path} of type {st} "
            f"({st_low}..{st_high})"
        )
    return None


def session_field_paths(
    reader: TableReader,
    fields: list[str],
    prefix: str,
    slot: int,
    catalog: Mapping[str, str],
    prefix_key: str,
    allowed_types: Mapping[str, tuple[str, ...]],
) -> dict[str, str]:
    """The program paths of one EV session's ``fields`` (``prefix[slot].field``, case-insensitive), each
    checked against the ST types its driver can fill; a missing path names the slot when the program
    has the session array, else the prefix key."""
    folded = {path.casefold(): path for path in catalog}
    paths: dict[str, str] = {}
    for field in fields:
        wanted = f"{prefix}[{slot}].{field}"
        path = wanted if wanted in catalog else folded.get(wanted.casefold())
        if path is None:
            known_prefix = any(p.casefold().startswith(prefix.casefold() + "[") for p in catalog)
            key = reader.key_of("slot") if known_prefix else prefix_key
            raise ConfigError(reader.file, key, unknown_variable(wanted, catalog))
        st_type = catalog[path].strip().upper()
        allowed = allowed_types[field]
        if st_type not in allowed:
            raise ConfigError(
                reader.file,
                reader.key_of("slot"),
                f"{path} is {st_type}, but {field} needs {' or '.join(allowed)}",
            )
        paths[field] = path
    return paths
