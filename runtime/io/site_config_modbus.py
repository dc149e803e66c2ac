"""The ``[devices.<name>]`` tables of the site configuration: Modbus TCP devices and their points.

Parsing produces a ``DeviceDraft`` (points can still be added by ``[bindings]``); ``finish_device``
runs the checks that need the whole device (register overlaps, heartbeat against the device's own
fallback timer) and freezes it into the ``DeviceSpec`` the driver runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, cast, get_args

from .config_reader import ProblemPolicy as Problems  # the site file's collect-all policy
from .config_reader import TableReader, did_you_mean
from .modbus.codec import REGISTER_TYPES, ByteOrder, WordOrder, register_count
from .modbus.model import (
    BIT_TABLES,
    DEFAULT_SUNSPEC_BASES,
    MAX_READ_REGISTERS,
    MIN_POLL_MS,
    TABLES,
    WRITABLE_TABLES,
    DeviceSpec,
    PointSpec,
    PollGroupSpec,
    Profile,
    SunSpecRef,
    Table,
)
from .modbus.profiles import EV_FIELDS, QUASAR_CONNECTED_STATES, QUASAR_MAX_POWER_W, quasar, sunspec_der
from .modbus.sunspec_models import MODELS

PROFILES: tuple[str, ...] = get_args(Profile)
FREQUENCY_PLAUSIBLE = (45.0, 65.0)
_SUNSPEC_REF = re.compile(r"^(\d+)\.([A-Za-z_][A-Za-z0-9_]*)$")
_PROFILE_KEYS = {
    "quasar": ("ev", "fields", "idle_timeout_s", "max_power_w", "connected_states", "bidirectional_allowed"),
    "sunspec-der": ("ev", "fields", "revert_s", "wset_mod", "max_power_w", "bidirectional_allowed"),
}
_ALL_PROFILE_KEYS = sorted({k for keys in _PROFILE_KEYS.values() for k in keys})


@dataclass
class DeviceDraft:
    """A parsed device whose points may still grow (``[bindings]`` adds SunSpec points by name)."""

    spec: DeviceSpec
    min_poll_ms: int
    word_order: WordOrder = "big"
    byte_order: ByteOrder = "big"
    fallback_key: str | None = None  # the key that set the device's fallback timer
    points: list[PointSpec] = field(default_factory=list)
    # EV session fields the device cannot report, set once from the site file (path -> value, key)
    session_values: dict[str, tuple[object, str | None]] = field(default_factory=dict)

    def point(self, name: str) -> PointSpec | None:
        return next((p for p in self.points if p.name == name), None)


def parse_sunspec_ref(text: str) -> tuple[SunSpecRef | None, str]:
    """``"213.Hz"`` -> ref, or None and why not."""
    match = _SUNSPEC_REF.match(text)
    if match is None:
        return None, f"'{text}' is not a SunSpec point reference like '213.Hz' (model id, dot, point name)"
    model_id, point = int(match.group(1)), match.group(2)
    model = MODELS.get(model_id)
    if model is None:
        known = ", ".join(str(m) for m in MODELS)
        return None, f"SunSpec model {model_id} has no point table in plcrun (known models: {known})"
    if point not in model.points:
        hint = did_you_mean(point, list(model.points))
        return None, f"SunSpec model {model_id} ({model.label}) has no point '{point}'{hint}"
    return SunSpecRef(model_id, point), ""


def sunspec_point(name: str, key: str, ref: SunSpecRef) -> PointSpec:
    """An input point for a SunSpec model point, with the model's type and scale factor."""
    definition = MODELS[ref.model].points[ref.point]
    return PointSpec(
        name=name,
        key=key,
        direction="in",
        table="holding",
        dtype=definition.dtype,
        registers=definition.registers,
        sunspec=ref,
        sunspec_sf=definition.sf,
        sunspec_sentinels=True,
        plausible=FREQUENCY_PLAUSIBLE if ref.point == "Hz" else None,
    )


def _parse_point(name: str, r: TableReader, draft: DeviceDraft) -> PointSpec | None:
    ok = True
    ref_text = r.string("sunspec", None)
    direction = cast("Any", r.string("direction", "in", choices=("in", "out")))
    if ref_text is not None:
        ref, why = parse_sunspec_ref(ref_text)
        if ref is None:
            r.problem("sunspec", why)
            return None
        for key in ("table", "address", "type", "registers", "scale_register"):
            if r.has(key):
                r.problem(key, "not used with 'sunspec': the SunSpec model defines it")
        point = replace(sunspec_point(name, r.key, ref), direction=direction)
        if direction == "out":
            point = replace(point, sunspec_sentinels=False)
    else:
        table = cast("Table", r.string("table", "holding", choices=TABLES))
        default_type = "bool" if table in BIT_TABLES else "uint16"
        dtype = r.string("type", default_type, choices=sorted(REGISTER_TYPES)) or default_type
        address = r.integer("address", None, required=True, minimum=0, maximum=65535)
        registers = register_count(dtype)
        if dtype == "string":
            registers = r.integer("registers", 1, required=True, minimum=1, maximum=MAX_READ_REGISTERS) or 1
        if table in BIT_TABLES and dtype != "bool":
            r.problem("type", f"a {table} holds one bit: its type must be 'bool', not '{dtype}'")
            ok = False
        if address is not None and address + registers > 65536:
            r.problem("address", f"{dtype} at {address} would run past register 65535")
            ok = False
        scale_register = r.integer("scale_register", None, minimum=0, maximum=65535)
        if scale_register is not None and table in BIT_TABLES:
            r.problem("scale_register", f"a {table} cannot be scaled")
            ok = False
        point = PointSpec(
            name=name,
            key=r.key,
            direction=direction,
            table=table,
            dtype=dtype,
            registers=registers,
            address=address,
            scale_register=scale_register,
            word_order=cast("WordOrder", r.string("word_order", draft.word_order, choices=("big", "little"))),
            byte_order=cast("ByteOrder", r.string("byte_order", draft.byte_order, choices=("big", "little"))),
        )
    finished = _point_options(point, r, draft)
    if finished is None or not ok:
        return None
    if finished.direction == "out" and finished.table not in WRITABLE_TABLES:
        r.problem("direction", f"a {point.table} cannot be written: outputs need a holding register or coil")
        return None
    return finished


def _point_options(point: PointSpec, r: TableReader, draft: DeviceDraft) -> PointSpec | None:
    register_table = point.table not in BIT_TABLES
    bit = r.integer("bit", None, minimum=0, maximum=15)
    if bit is not None and (not register_table or point.dtype not in ("uint16", "int16")):
        r.problem("bit", "'bit' picks one bit of a 16-bit register (type 'uint16' or 'int16')")
        bit = None
    true_values = r.integer_list("true_values", None)
    scale = r.number("scale", 1.0)
    if scale == 0.0:
        r.problem("scale", "must not be 0")
    poll = r.string("poll", "default") or "default"
    if poll not in draft.spec.poll_groups:
        groups = list(draft.spec.poll_groups)
        r.problem(
            "poll", f"unknown poll group '{poll}' (groups: {', '.join(groups)}){did_you_mean(poll, groups)}"
        )
    limits = r.range_pair("limits")
    if limits is not None and point.direction != "out":
        r.problem("limits", "only outputs are clamped; use 'plausible' to reject implausible inputs")
    plausible = r.range_pair("plausible")
    if plausible is not None and point.direction != "in":
        r.problem("plausible", "only applies to inputs")
    stuck_ms = r.integer("stuck_ms", None, minimum=MIN_POLL_MS, unit="ms")
    if stuck_ms is not None and point.direction != "in":
        r.problem("stuck_ms", "only applies to inputs")
    write_function = r.integer("write_function", None)
    valid_functions = (5, 15) if point.table == "coil" else (6, 16)
    if write_function is not None and write_function not in valid_functions:
        r.problem("write_function", f"must be one of {valid_functions} for a {point.table}")
        write_function = None
    if write_function == 6 and point.registers > 1:
        r.problem(
            "write_function", f"function 6 writes one register; a {point.dtype} needs {point.registers}"
        )
    if (bit is not None or true_values is not None) and point.direction == "out":
        r.problem("bit" if bit is not None else "true_values", "only applies to inputs")
    return replace(
        point,
        path=r.string("bind", None),
        bit=bit,
        true_values=frozenset(true_values) if true_values is not None else None,
        scale=scale if scale else 1.0,
        offset=r.number("offset", 0.0) or 0.0,
        negate=r.boolean("negate", False),
        plausible=plausible if plausible is not None else point.plausible,
        sentinel=r.integer("sentinel", None),
        poll_group=poll,
        stale_ms=r.integer("stale_ms", None, minimum=MIN_POLL_MS, unit="ms"),
        stuck_ms=stuck_ms,
        limits=limits,
        write_function=cast("Any", write_function),
    )


def parse_device(name: str, r: TableReader, problems: Problems) -> DeviceDraft | None:
    """Read one ``[devices.<name>]`` table; problems are collected, None if it is unusable."""
    r.string("protocol", "modbus-tcp", choices=("modbus-tcp",))
    host = r.string("host", None, required=True)
    port = r.integer("port", None, required=True, minimum=1, maximum=65535)
    unit = r.integer("unit", 1, minimum=0, maximum=255)
    profile = cast("Profile", r.string("profile", "generic", choices=PROFILES) or "generic")
    timeout_ms = r.integer("timeout_ms", 500, minimum=1, maximum=60000, unit="ms") or 500
    min_poll = r.integer("min_poll_ms", MIN_POLL_MS, minimum=MIN_POLL_MS, unit="ms") or MIN_POLL_MS
    poll_ms = _poll_period(r, "poll_ms", 100, min_poll)
    stale_ms = r.integer("stale_ms", None, minimum=MIN_POLL_MS, unit="ms")
    groups = {"default": _group("default", poll_ms, stale_ms)}
    poll_table = r.table("poll_groups")
    if poll_table is not None:
        for group_name, _value in poll_table.items():
            period = _poll_period(poll_table, group_name, poll_ms, min_poll)
            groups[group_name] = _group(group_name, period, stale_ms)
    # reconnect backoff: from one poll period, doubling up to a cap (1 s: a charger back online gets
    # its setpoint within about a second)
    fastest = min(g.period_ms for g in groups.values())
    reconnect_max = r.integer("reconnect_max_ms", 1000, minimum=1, unit="ms") or 1000
    reconnect_min = r.integer("reconnect_min_ms", None, minimum=1, unit="ms") or min(fastest, reconnect_max)
    if reconnect_min > reconnect_max:
        r.problem("reconnect_min_ms", f"{reconnect_min} ms is above reconnect_max_ms ({reconnect_max} ms)")
    if isinstance(r.data.get("sunspec_base"), list):
        bases_value = r.integer_list("sunspec_base", None, minimum=0, maximum=65534)
    else:
        single = r.integer("sunspec_base", None, minimum=0, maximum=65534)
        bases_value = None if single is None else [single]
    spec = DeviceSpec(
        name=name,
        key=r.key,
        host=host or "",
        port=port or 0,
        unit=unit if unit is not None else 1,
        profile=profile,
        timeout_ms=timeout_ms,
        reconnect_min_ms=reconnect_min,
        reconnect_max_ms=reconnect_max,
        comm_lost_after=r.integer("comm_lost_after", 2, minimum=1, maximum=100) or 2,
        sunspec_bases=tuple(bases_value) if bases_value else None,
        poll_groups=groups,
        heartbeat_ms=r.integer("heartbeat_ms", None, minimum=MIN_POLL_MS, unit="ms"),
        fallback_ms=r.integer("fallback_ms", None, minimum=1, unit="ms")
        if profile in ("generic", "sunspec")
        else None,
        max_block=r.integer("max_block", MAX_READ_REGISTERS, minimum=1, maximum=MAX_READ_REGISTERS)
        or MAX_READ_REGISTERS,
        max_gap=r.integer("max_gap", 0, minimum=0, maximum=MAX_READ_REGISTERS) or 0,
        retry_bad_ms=r.integer("retry_bad_ms", 5000, minimum=MIN_POLL_MS, unit="ms") or 5000,
        write_connection=r.boolean("write_connection", False),
    )
    draft = DeviceDraft(
        spec,
        min_poll,
        word_order=cast("WordOrder", r.string("word_order", "big", choices=("big", "little"))),
        byte_order=cast("ByteOrder", r.string("byte_order", "big", choices=("big", "little"))),
    )
    if profile in _PROFILE_KEYS:
        _apply_profile(draft, r)
    else:
        for key in _ALL_PROFILE_KEYS:
            if r.has(key):
                r.mark_used(key)
                users = [p for p, keys in _PROFILE_KEYS.items() if key in keys]
                r.problem(key, f"only used with profile {' or '.join(repr(p) for p in users)}")
    points = r.table("points")
    if points is not None:
        for point_name, value in points.items():
            if not isinstance(value, dict):
                points.problem(point_name, "must be a table")
                continue
            if draft.point(point_name) is not None:
                points.problem(point_name, f"the profile '{profile}' already defines a point '{point_name}'")
                continue
            point_reader = TableReader(value, points.key_of(point_name), problems)
            point = _parse_point(point_name, point_reader, draft)
            point_reader.finish()
            if point is not None:
                draft.points.append(point)
    needs_sunspec = profile in ("sunspec", "sunspec-der") or any(p.sunspec for p in draft.points)
    if needs_sunspec and draft.spec.sunspec_bases is None:
        draft.spec = replace(draft.spec, sunspec_bases=DEFAULT_SUNSPEC_BASES)
    r.finish(_ALL_PROFILE_KEYS)
    if host is None or port is None:
        return None
    return draft


def _poll_period(r: TableReader, name: str, default: int, min_poll: int) -> int:
    value = r.integer(name, default, minimum=1, unit="ms")
    if value is None:
        return default
    if value < min_poll:
        why = "the scan period" if min_poll == MIN_POLL_MS else "this device's min_poll_ms"
        r.problem(
            name, f"poll period {value} ms is faster than allowed: the minimum is {min_poll} ms ({why})"
        )
        return min_poll
    return value


def _group(name: str, period_ms: int, stale_ms: int | None) -> PollGroupSpec:
    # a value counts as stale when several polls in a row brought nothing new from the device
    return PollGroupSpec(name, period_ms, stale_ms or max(5 * period_ms, 500))


def _apply_profile(draft: DeviceDraft, r: TableReader) -> None:
    spec = draft.spec
    if spec.profile == "quasar":
        idle_s = r.integer("idle_timeout_s", 10, minimum=1, maximum=3600, unit="s") or 10
        max_power = r.number("max_power_w", QUASAR_MAX_POWER_W, minimum=0.0, maximum=32767.0)
        states = r.integer_list("connected_states", None, minimum=0, maximum=65535)
        setup = quasar(
            spec.key,
            idle_s,
            max_power or QUASAR_MAX_POWER_W,
            frozenset(states) if states else QUASAR_CONNECTED_STATES,
        )
        fallback_name = "idle_timeout_s"
    else:
        revert_s = r.integer("revert_s", 10, minimum=1, maximum=86400, unit="s") or 10
        wset_mod = r.integer("wset_mod", 1, minimum=0, maximum=65535)
        setup = sunspec_der(
            spec.key, revert_s, 1 if wset_mod is None else wset_mod, r.number("max_power_w", None)
        )
        fallback_name = "revert_s"
    ev = r.string("ev", None)
    # neither device says whether the car and its contract allow discharging: the site file does
    # (both are bidirectional chargers, so by default they may)
    explicit = r.has("bidirectional_allowed")
    bidirectional = r.boolean("bidirectional_allowed", True)
    if ev is not None:  # key None: the default, skipped when the program's record lacks the field
        key = r.key_of("bidirectional_allowed") if explicit else None
        draft.session_values[f"{ev}.bidirectional_allowed"] = (bidirectional, key)
    fields = r.string_list("fields", None)
    available = EV_FIELDS[spec.profile]
    if fields is not None:
        for wrong in [f for f in fields if f not in available]:
            r.problem(
                "fields", f"'{wrong}' is not a field the profile fills{did_you_mean(wrong, list(available))}"
            )
    selected = set(available if fields is None else fields)
    for point in setup.points:
        path = f"{ev}.{point.name}" if ev is not None and point.name in selected else None
        draft.points.append(replace(point, path=path, key=r.key_of("ev") if path else point.key))
    age_path = f"{ev}.setpoint_age" if ev is not None and "p_setpoint_w" in selected else None
    draft.spec = replace(
        spec, init_writes=setup.init_writes, fallback_ms=setup.fallback_ms, setpoint_age_path=age_path
    )
    draft.fallback_key = r.key_of(fallback_name)


def _overlaps(a: PointSpec, b: PointSpec) -> bool:
    if a.table != b.table:
        return False
    if a.sunspec is not None or b.sunspec is not None:
        return a.sunspec == b.sunspec
    assert a.address is not None and b.address is not None
    return a.address < b.address + b.registers and b.address < a.address + a.registers


def _same_read(a: PointSpec, b: PointSpec) -> bool:
    """Two inputs reading the very same registers (e.g. a state register feeding two variables)."""
    return a.direction == b.direction == "in" and (a.address, a.registers, a.dtype, a.sunspec) == (
        b.address,
        b.registers,
        b.dtype,
        b.sunspec,
    )


def _describe(point: PointSpec) -> str:
    if point.sunspec is not None:
        return f"SunSpec {point.sunspec}"
    assert point.address is not None
    end = point.address + point.registers - 1
    span = str(point.address) if end == point.address else f"{point.address}..{end}"
    return f"{point.table} {span}"


def finish_device(draft: DeviceDraft, problems: Problems) -> DeviceSpec:
    """Whole-device checks, then the frozen spec."""
    spec = draft.spec
    points = [p for p in draft.points if p.sunspec is not None or p.address is not None]
    for i, a in enumerate(points):
        for b in points[i + 1 :]:
            if _overlaps(a, b) and not _same_read(a, b):
                problems.add(
                    b.key,
                    f"register overlap in device '{spec.name}': point '{b.name}' ({_describe(b)}) overlaps "
                    f"point '{a.name}' ({_describe(a)})",
                )
    heartbeat = spec.heartbeat_ms
    has_outputs = any(p.direction == "out" for p in draft.points)
    if spec.fallback_ms is not None and has_outputs:
        budget = spec.fallback_ms - spec.timeout_ms
        fallback_key = draft.fallback_key or f"{spec.key}.fallback_ms"
        if heartbeat is None:
            heartbeat = budget // 3
            if heartbeat < MIN_POLL_MS:
                problems.add(
                    fallback_key,
                    f"the device's fallback timer ({spec.fallback_ms} ms) leaves no room for a heartbeat "
                    f"after the request timeout ({spec.timeout_ms} ms)",
                )
        elif heartbeat >= budget:
            problems.add(
                f"{spec.key}.heartbeat_ms",
                f"heartbeat {heartbeat} ms is not shorter than the device's timeout: its fallback timer is "
                f"{spec.fallback_ms} ms ({fallback_key.rsplit('.', 1)[-1]}) and a request may take up to "
                f"timeout_ms = {spec.timeout_ms} ms, so the heartbeat must be below {budget} ms",
            )
    return replace(spec, points=tuple(draft.points), heartbeat_ms=heartbeat)
