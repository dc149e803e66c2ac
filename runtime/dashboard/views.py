"""Which program variables the dashboard's chart and EV table show.

``DashboardViews`` names them explicitly; every path left ``None`` is looked up in the program by
type and name: an ``ARRAY OF EV_SESSION`` for the EV table, a REAL/LREAL called like ``grid_hz`` for
the frequency, one called like ``site_p_w`` for the site power (also the ``frequency_hz`` and
``power_w`` fields of a ``METER_READING`` variable). What cannot be found is reported with a reason
that the page shows in place of the panel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..compiler import st_types as T
from ..errors import PlcrunError
from ..io.conventions import EV_COUNT_NAMES, EV_STRUCT, FREQUENCY_NAMES, METER_STRUCT, SITE_POWER_NAMES
from ..state.program import CompiledProgram, PathError
from .variables import resolve


class ViewError(PlcrunError, ValueError):
    """An explicitly configured view path that the program does not have (or of the wrong type)."""


@dataclass(frozen=True)
class DashboardViews:
    """What the chart and the EV table show; ``None`` = find it in the program.

    ``frequency_path`` and ``site_power_path`` name numeric variables, ``ev_array_path`` a
    one-dimensional array of EV_SESSION (or of a structure with the same field names) and
    ``ev_count_path`` an integer holding how many of its slots are in use. The chart samples
    ``sample_hz`` times a second and keeps ``chart_seconds`` of history.
    """

    frequency_path: str | None = None
    site_power_path: str | None = None
    ev_array_path: str | None = None
    ev_count_path: str | None = None
    sample_hz: float = 10.0
    chart_seconds: float = 120.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.sample_hz <= 100.0:
            raise ViewError(f"DashboardViews.sample_hz: {self.sample_hz} is outside 0.1..100")
        if not 1.0 <= self.chart_seconds <= 3600.0:
            raise ViewError(f"DashboardViews.chart_seconds: {self.chart_seconds} is outside 1..3600")


@dataclass(frozen=True)
class ResolvedViews:
    """The paths in use (canonical) and, for each one that is None, why."""

    frequency_path: str | None
    site_power_path: str | None
    ev_array_path: str | None
    ev_count_path: str | None
    ev_first_index: int = 1
    ev_slots: int = 0
    missing: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "frequency_path": self.frequency_path,
            "site_power_path": self.site_power_path,
            "ev_array_path": self.ev_array_path,
            "ev_count_path": self.ev_count_path,
            "ev_first_index": self.ev_first_index,
            "ev_slots": self.ev_slots,
            "missing": dict(self.missing),
        }


def resolve_views(program: CompiledProgram, views: DashboardViews) -> ResolvedViews:
    """Check the explicit paths and find the others; raises ``ViewError`` for a bad explicit path."""
    missing: dict[str, str] = {}
    frequency = _numeric(program, "frequency_path", views.frequency_path)
    if frequency is None and views.frequency_path is None:
        frequency = _find_numeric(program, FREQUENCY_NAMES, "frequency_hz")
        if frequency is None:
            missing["frequency_path"] = (
                "no REAL/LREAL variable named like grid_hz or frequency_hz; set DashboardViews.frequency_path"
            )
    site = _numeric(program, "site_power_path", views.site_power_path)
    if site is None and views.site_power_path is None:
        site = _find_numeric(program, SITE_POWER_NAMES, "power_w")
        if site is None:
            missing["site_power_path"] = (
                "no REAL/LREAL variable named like site_p_w or site_power_w; "
                "set DashboardViews.site_power_path"
            )
    array_path, array_type = _ev_array(program, views.ev_array_path)
    if array_path is None:
        missing["ev_array_path"] = (
            f"no variable of type ARRAY OF {EV_STRUCT}; set DashboardViews.ev_array_path"
        )
    count = _numeric(program, "ev_count_path", views.ev_count_path, integer=True)
    if count is None and views.ev_count_path is None and array_path is not None:
        count = _find_count(program, array_path)
        if count is None:
            missing["ev_count_path"] = "no integer like n_evs next to the EV array: every slot is shown"
    first, slots = (array_type.dims[0][0], array_type.size) if array_type is not None else (1, 0)
    return ResolvedViews(frequency, site, array_path, count, first, slots, missing)


def _numeric(program: CompiledProgram, key: str, path: str | None, integer: bool = False) -> str | None:
    if path is None:
        return None
    try:
        node = resolve(program, path)
    except PathError as error:
        raise ViewError(f"DashboardViews.{key}: {error}") from None
    u = T.underlying(node.type) if node.type is not None else None
    wanted = T.is_integer_like if integer else T.is_numeric
    if u is None or not wanted(u):
        what = "an integer" if integer else "a number"
        shown = node.type.display if node.type is not None else "a program instance"
        raise ViewError(f"DashboardViews.{key}: '{path}' is {shown}, not {what}")
    return node.path


def _ev_array(program: CompiledProgram, path: str | None) -> tuple[str | None, T.ArrayType | None]:
    if path is not None:
        try:
            node = resolve(program, path)
        except PathError as error:
            raise ViewError(f"DashboardViews.ev_array_path: {error}") from None
        u = T.underlying(node.type) if node.type is not None else None
        if (
            not isinstance(u, T.ArrayType)
            or len(u.dims) != 1
            or not isinstance(T.underlying(u.element), T.StructType)
        ):
            raise ViewError(
                f"DashboardViews.ev_array_path: '{path}' is not a one-dimensional array of structures"
            )
        return node.path, u
    for var_path, var in _top_level(program):
        u = T.underlying(var.type)
        if isinstance(u, T.ArrayType) and len(u.dims) == 1:
            element = T.underlying(u.element)
            if isinstance(element, T.StructType) and element.name.upper() == EV_STRUCT:
                return var_path, u
    return None, None


def _top_level(program: CompiledProgram) -> Iterator[tuple[str, T.VarInfo]]:
    """Every top-level variable of the program instances, then of the globals, in declaration order."""
    for inst in program.instances:
        for var in inst.pou.variables.values():
            if var.section not in ("VAR_TEMP", "VAR_EXTERNAL", "VAR_IN_OUT"):
                yield f"{inst.name.lower()}.{var.name.lower()}", var
    for var in program.model.globals.values():
        yield f"{program.model.globals_name.lower()}.{var.name.lower()}", var


def _find_numeric(program: CompiledProgram, names: tuple[str, ...], meter_field: str) -> str | None:
    """The best-named real variable; a METER_READING's field counts as its preferred name."""
    best: tuple[int, str] | None = None
    for var_path, var in _top_level(program):
        u = T.underlying(var.type)
        candidates: list[tuple[str, str]] = []
        if T.is_real_like(u):
            candidates.append((var.name.lower(), var_path))
        elif isinstance(u, T.StructType) and u.name.upper() == METER_STRUCT:
            member = u.fields.get(meter_field.upper())
            if member is not None:
                candidates.append((names[0], f"{var_path}.{meter_field}"))
        for name, path in candidates:
            if name in names:
                rank = names.index(name)
                if best is None or rank < best[0]:
                    best = (rank, path)
    return None if best is None else best[1]


def _find_count(program: CompiledProgram, array_path: str) -> str | None:
    root, _, array_name = array_path.partition(".")
    names = (*EV_COUNT_NAMES, f"n_{array_name}", f"{array_name}_count")
    best: tuple[int, str] | None = None
    for var_path, var in _top_level(program):
        if not var_path.startswith(root + ".") or not T.is_integer_like(T.underlying(var.type)):
            continue
        name = var.name.lower()
        if name in names and (best is None or names.index(name) < best[0]):
            best = (names.index(name), var_path)
    return None if best is None else best[1]
