"""The Modbus driver's part of the site file: ``[devices.<name>]`` and ``[bindings]``.

``check`` reads every device (profiles, points, poll groups; see site_config_modbus), binds points to
program variables (a point's ``bind`` key, a profile's EV slot, or a ``[bindings]`` entry such as
``"main.site_w" = "site-meter.213.W"``) and checks each binding against the catalog: the variable
exists, its type fits the point, its direction fits a located address, and no variable is bound
twice. ``build`` returns one ``ModbusDeviceDriver`` per device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..config_reader import TableReader, did_you_mean, join_key
from ..registry import BuildContext, DriverType, SiteContext, Wiring
from ..site_config_modbus import DeviceDraft, finish_device, parse_device, parse_sunspec_ref, sunspec_point
from ..site_config_types import binding_problem, located_direction, unknown_variable
from .driver import build_modbus_drivers
from .model import DEFAULT_SUNSPEC_BASES, DeviceSpec, Direction, PointSpec


@dataclass(frozen=True, slots=True)
class Binding:
    """One process-image path and the device point behind it."""

    path: str
    device: str
    point: str
    direction: Direction
    st_type: str


@dataclass(frozen=True)
class ModbusSite:
    devices: Mapping[str, DeviceSpec]
    bindings: Mapping[str, Binding]  # process-image path -> device point
    # EV session fields a charger profile cannot read from the device (bidirectional_allowed), written
    # once before the first scan; a [parameters] entry of the same path wins
    session_values: Mapping[str, object] = field(default_factory=dict)


def check(tables: Mapping[str, Any], site: SiteContext) -> ModbusSite | None:
    problems = site.problems
    drafts: dict[str, DeviceDraft] = {}
    devices = site.reader(tables, "devices")
    if devices is not None:
        for device_name, value in devices.items():
            if not isinstance(value, dict):
                devices.problem(device_name, "must be a table describing the device")
                continue
            draft = parse_device(
                device_name, TableReader(value, devices.key_of(device_name), problems), problems
            )
            if draft is not None:
                drafts[device_name] = draft
    bindings = site.reader(tables, "bindings")
    if bindings is not None:
        for path, target in bindings.items():
            _bind_by_name(path, target, bindings.key_of(path), drafts, bindings)
    resolved = _check_bindings(drafts, site.catalog, site)
    session_values = _session_values(drafts, site.catalog, site)
    specs = {
        name: _with_setpoint_age(finish_device(draft, problems), site.catalog)
        for name, draft in drafts.items()
    }
    return ModbusSite(specs, resolved, session_values)


def build(config: ModbusSite, context: BuildContext) -> Wiring:
    drivers = build_modbus_drivers(list(config.devices.values()), context.alarms, context.worker_time)
    described = ", ".join(config.devices) or "none"
    return Wiring(
        drivers=list(drivers),
        initial_writes=dict(config.session_values),
        descriptions=[f"Modbus devices: {described}"] if drivers else [],
    )


def _with_setpoint_age(spec: DeviceSpec, catalog: Mapping[str, str]) -> DeviceSpec:
    """A charger profile keeps ``<ev>.setpoint_age`` when the program's record has that TIME field."""
    path = spec.setpoint_age_path
    if path is None:
        return spec
    found = _catalog_lookup(path, catalog, {p.casefold(): p for p in catalog if p.endswith("setpoint_age")})
    if found is None or catalog[found].upper() != "TIME":
        return replace(spec, setpoint_age_path=None)
    return replace(spec, setpoint_age_path=found)


def _session_values(
    drafts: dict[str, DeviceDraft], catalog: Mapping[str, str], site: SiteContext
) -> dict[str, object]:
    folded = {p.casefold(): p for p in catalog}
    values: dict[str, object] = {}
    for draft in drafts.values():
        for path, (value, key) in draft.session_values.items():
            found = _catalog_lookup(path, catalog, folded)
            if found is None:
                if key is not None:  # None: the profile's default, for a record without the field
                    site.problems.add(key, unknown_variable(path, catalog))
            else:
                values[found] = value
    return values


DRIVER = DriverType("modbus", ("devices", "bindings"), check, build, "Modbus TCP meters and chargers")


def _bind_by_name(
    path: str, target: object, key: str, drafts: dict[str, DeviceDraft], r: TableReader
) -> None:
    """``"main.x" = "device.point"``: bind a named point, or a SunSpec point such as ``site-meter.213.Hz``."""
    if not isinstance(target, str) or "." not in target:
        r.problem(path, "must be a string '<device>.<point>', e.g. 'site-meter.213.Hz' or 'charger-1.state'")
        return
    device_name, _, point_name = target.partition(".")
    draft = drafts.get(device_name)
    if draft is None:
        r.problem(path, f"unknown device '{device_name}'{did_you_mean(device_name, list(drafts))}")
        return
    point = draft.point(point_name)
    if point is None and point_name[:1].isdigit():
        ref, why = parse_sunspec_ref(point_name)
        if ref is None:
            r.problem(path, why)
            return
        point = sunspec_point(point_name, key, ref)
        if draft.spec.sunspec_bases is None:
            draft.spec = replace(draft.spec, sunspec_bases=DEFAULT_SUNSPEC_BASES)
        draft.points.append(point)
    if point is None:
        names = [p.name for p in draft.points]
        r.problem(
            path, f"device '{device_name}' has no point '{point_name}'{did_you_mean(point_name, names)}"
        )
        return
    if point.path is not None:
        r.problem(path, f"point '{target}' is already bound to '{point.path}' ({_binding_key(point)})")
        return
    index = draft.points.index(point)
    draft.points[index] = replace(point, path=path, key=key)


def _binding_key(point: PointSpec) -> str:
    """The key that bound the point: ``...points.x.bind``, a profile's ``...ev`` or a ``bindings`` entry."""
    if point.key.startswith("bindings.") or point.key.endswith(".ev"):
        return point.key
    return join_key(point.key, "bind")


def _catalog_lookup(path: str, catalog: Mapping[str, str], folded: dict[str, str]) -> str | None:
    """The catalog's spelling of ``path`` (IEC identifiers are case-insensitive)."""
    if path in catalog:
        return path
    return folded.get(path.casefold())


def _check_bindings(
    drafts: dict[str, DeviceDraft], catalog: Mapping[str, str], site: SiteContext
) -> dict[str, Binding]:
    problems = site.problems
    folded = {p.casefold(): p for p in catalog}
    bound: dict[str, tuple[Binding, str]] = {}
    for device_name, draft in drafts.items():
        for index, point in enumerate(draft.points):
            if point.path is None:
                continue
            key = _binding_key(point)
            if located_direction(point.path) == "memory":
                problems.add(
                    key, f"{point.path} is a memory address: devices bind %I (inputs) or %Q (outputs)"
                )
                continue
            path = _catalog_lookup(point.path, catalog, folded)
            if path is None:
                problems.add(key, unknown_variable(point.path, catalog))
                continue
            st_type = catalog[path]
            why = binding_problem(point, path, st_type)
            if why is not None:
                problems.add(key, why)
                continue
            if path in bound:
                other, other_key = bound[path]
                problems.add(
                    key,
                    f"'{path}' is bound twice: already to point '{other.point}' of device '{other.device}' "
                    f"({other_key})",
                )
                continue
            binding = Binding(path, device_name, point.name, point.direction, st_type.strip().upper())
            bound[path] = (binding, key)
            draft.points[index] = replace(point, path=path, st_type=binding.st_type)
    return {path: binding for path, (binding, _key) in bound.items()}
