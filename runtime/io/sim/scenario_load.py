"""Reading scenario files (TOML) and built-in scenarios into ``Scenario`` objects.

Every problem raises ``ConfigError`` naming the file, the dotted key and what is wrong; unknown keys
are errors too, so a typo never silently falls back to a default. The file format is described in
docs/simulation.md; the built-in scenarios are the TOML files in the ``scenarios`` folder beside
this module (examples/scenarios/ holds identical copies).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config_errors import ConfigError
from ..config_reader import SCENARIO_WORDING, FailFast, TableReader
from .catalogue import CATALOGUE, model_fields, pick_models, random_session
from .events import EVENTS
from .grid import cached_trace
from .scenario import (
    FAULT_KINDS,
    FAULT_TARGETS,
    QUANTITIES,
    SEGMENT_KINDS,
    ChatterCheck,
    Criteria,
    EvSpec,
    Fault,
    FleetSpec,
    FullActivation,
    MeterSpec,
    PointCheck,
    RangeCheck,
    Scenario,
    Segment,
    ServiceSpec,
    SiteSpec,
    TraceSpec,
    Trigger,
)
from .traces import TRACE_FORMATS

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_EPOCH_S = 1_735_689_600  # 2025-01-01T00:00:00Z: wall time of scenario time 0
EV_NUMBER_KEYS = (
    "capacity_kwh",
    "p_charge_max_w",
    "p_charge_min_w",
    "p_discharge_max_w",
    "p_discharge_min_w",
    "soc_pct",
    "min_soc_pct",
    "target_soc_pct",
    "arrive_s",
    "depart_s",
    "departure_time_s",
    "lag_s",
)
_PERCENT_KEYS = ("soc_pct", "min_soc_pct", "target_soc_pct")
_REQUIRED_EV_KEYS = (
    "capacity_kwh",
    "p_charge_max_w",
    "p_charge_min_w",
    "p_discharge_max_w",
    "p_discharge_min_w",
    "bidirectional",
    "soc_pct",
    "min_soc_pct",
    "target_soc_pct",
)


def builtin_scenarios() -> list[str]:
    """Names accepted by ``load_scenario`` besides file paths."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_scenario(
    path_or_name: str | os.PathLike[str], edit: Callable[[dict[str, Any], str], None] | None = None
) -> Scenario:
    """A scenario from a TOML file or a built-in name (see ``builtin_scenarios()``). ``edit(data,
    source)`` may change the parsed TOML before it is checked (e.g. resize the fleet)."""
    text = os.fspath(path_or_name)
    builtin = BUILTIN_DIR / f"{text}.toml"
    if os.sep not in text and not text.endswith(".toml") and builtin.is_file():
        return _load_file(builtin, f"builtin:{text}", edit)
    path = Path(text)
    if not path.is_file():
        names = ", ".join(builtin_scenarios())
        raise ConfigError(text, "", f"no such scenario file or built-in name (built-in: {names})")
    return _load_file(path, str(path), edit)


def _load_file(path: Path, source: str, edit: Callable[[dict[str, Any], str], None] | None) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    if edit is not None:
        edit(data, source)
    return parse_scenario(data, source, path.parent, default_name=path.stem)


def parse_scenario(data: dict[str, object], source: str, base_dir: Path, default_name: str = "") -> Scenario:
    """Build a ``Scenario`` from parsed TOML; relative trace paths resolve against ``base_dir``."""
    root = TableReader(data, "", FailFast(source, SCENARIO_WORDING))
    head = root.table_or_empty("scenario", required=True)
    name = head.string("name", default_name or "scenario")
    description = head.string("description", "", allow_empty=True)
    duration = head.number("duration_s", positive=True)
    scan = head.number("scan_period_s", 0.01, positive=True, maximum=duration)
    seed = head.integer("seed", 0, minimum=0)
    epoch = head.integer("start_epoch_s", DEFAULT_EPOCH_S, minimum=0)
    head.finish()

    grid = root.table_or_empty("grid")
    nominal_hz = grid.number("nominal_hz", 50.0, positive=True)
    nominal_v = grid.number("nominal_voltage_v", 230.0, positive=True)
    segments = _segments(grid.tables("segments"), duration, base_dir)
    grid.finish()

    faults = tuple(_fault(t, nominal_v) for t in root.tables("faults"))
    meter_table = root.table_or_empty("meter")
    meter = MeterSpec(
        update_period_s=meter_table.number("update_period_s", 0.0, minimum=0.0),
        freshness_s=meter_table.number("freshness_s", 1.0, positive=True),
        resolution_hz=meter_table.number("resolution_hz", 0.001, minimum=0.0),
        resolution_v=meter_table.number("resolution_v", 0.1, minimum=0.0),
        resolution_w=meter_table.number("resolution_w", 1.0, minimum=0.0),
    )
    meter_table.finish()
    fleet = _fleet(root.table_or_empty("fleet"), seed)
    site = _site(root.table_or_empty("site"))
    service = _service(root.table_or_empty("service"))
    criteria = _criteria(root.table_or_empty("criteria"), duration, site)
    root.finish()
    return Scenario(
        name=name,
        source=source,
        description=description,
        duration_s=duration,
        scan_period_s=scan,
        seed=seed,
        start_epoch_s=epoch,
        nominal_hz=nominal_hz,
        nominal_voltage_v=nominal_v,
        segments=segments,
        faults=faults,
        meter=meter,
        fleet=fleet,
        site=site,
        service=service,
        criteria=criteria,
    )


# -- grid ------------------------------------------------------------------------------------------
def _segments(tables: list[TableReader], duration: float, base_dir: Path) -> tuple[Segment, ...]:
    result: list[Segment] = []
    start = 0.0
    for index, table in enumerate(tables):
        last = index == len(tables) - 1
        segment = _segment(table, start, last, base_dir)
        result.append(segment)
        if segment.duration_s is not None:
            start += segment.duration_s
        if start > duration + 1e-9 and not last:
            table.fail("duration_s", f"segments already end at {start:g} s, after duration_s {duration:g}")
    return tuple(result)


def _segment(table: TableReader, start: float, last: bool, base_dir: Path) -> Segment:
    kind = table.string("kind", choices=SEGMENT_KINDS)
    duration = table.number("duration_s", None, positive=True)
    hz = table.number("hz", None, positive=True)
    volts = table.number("voltage_v", None, minimum=0.0)
    sigma_hz = table.number("sigma_hz", 0.0, minimum=0.0)
    sigma_v = table.number("sigma_v", 0.0, minimum=0.0)
    to_hz: float | None = None
    points: tuple[tuple[float, float], ...] = ()
    event: str | None = None
    trace: TraceSpec | None = None
    if kind == "ramp":
        to_hz = table.number("to_hz", positive=True)
        if duration is None:
            table.fail("duration_s", "a ramp needs duration_s")
    elif kind == "steps":
        points = table.pairs("points")
        offsets = [p[0] for p in points]
        if offsets[0] < 0 or any(b <= a for a, b in itertools.pairwise(offsets)):
            table.fail("points", "step times must be >= 0 and increasing")
    elif kind == "noise" and sigma_hz == 0 and sigma_v == 0:
        table.fail("sigma_hz", "a noise segment needs sigma_hz > 0 (or sigma_v > 0)")
    elif kind == "event":
        event = table.string("name", choices=sorted(EVENTS))
        if duration is None and not last:
            duration = EVENTS[event].duration_s
    elif kind == "trace":
        trace = _trace_spec(table, base_dir)
        if duration is None and not last:
            loaded = cached_trace(trace, table.file, table.key)
            duration = loaded.duration_s
            if duration <= 0:
                table.fail("start", "nothing of the trace is left after start/offset_s")
    if duration is None and not last:
        table.fail("duration_s", "required for every segment but the last")
    table.finish()
    return Segment(kind, start, duration, hz, to_hz, volts, points, sigma_hz, sigma_v, event, trace)


def _trace_spec(table: TableReader, base_dir: Path) -> TraceSpec:
    file_name = table.string("file")
    path = (base_dir / file_name).resolve()
    if not path.is_file():
        table.fail("file", f"trace file not found: {path}")
    fmt = table.string("format", "csv", choices=("csv", *TRACE_FORMATS))
    if fmt == "csv":
        freq_col, volt_col, time_col, time_fmt = "frequency_hz", None, "time_s", "seconds"
    else:
        freq_col, volt_col, time_col, time_fmt = TRACE_FORMATS[fmt]
    voltage_column = table.string("voltage_column", None)
    spec = TraceSpec(
        file=str(path),
        frequency_column=table.string("frequency_column", freq_col),
        time_column=table.string("time_column", time_col),
        time_format=table.string("time_format", time_fmt),
        voltage_column=voltage_column if voltage_column is not None else volt_col,
        voltage_scale=table.number("voltage_scale", 1.0, positive=True),
        start=table.string("start", None),
        offset_s=table.number("offset_s", 0.0, minimum=0.0),
    )
    cached_trace(spec, table.file, table.key)  # fail now, naming the file, rather than at run time
    return spec


def _fault(table: TableReader, nominal_v: float) -> Fault:
    kind = table.string("kind", choices=FAULT_KINDS)
    start = table.number("start_s", minimum=0.0)
    end = table.number("end_s", math.inf)
    if end <= start:
        table.fail("end_s", f"must be after start_s ({start:g}), got {end:g}")
    if kind == "voltage_collapse":
        collapse = Fault(
            kind,
            start,
            end,
            target="voltage",
            voltage_v=table.number("voltage_v", 0.05 * nominal_v, minimum=0.0),
            frequency_hz=table.number("frequency_hz", None, minimum=0.0),
        )
        table.finish()
        return collapse
    default_target = "frequency" if kind in ("nan", "scale") else "all"
    target = table.string("target", default_target, choices=FAULT_TARGETS)
    factor = table.number("factor", 10.0) if kind == "scale" else 10.0
    table.finish()
    return Fault(kind, start, end, target=target, factor=factor)


# -- fleet -----------------------------------------------------------------------------------------
def _ev_values(table: TableReader) -> tuple[str | None, dict[str, object]]:
    """The catalogue model named in ``table`` (if any) and its other EV keys, type- and range-checked."""
    model = table.string("model", None, choices=sorted(CATALOGUE))
    values: dict[str, object] = {}
    for key in EV_NUMBER_KEYS:
        if table.has(key):
            top = 100.0 if key in _PERCENT_KEYS else None
            values[key] = table.number(key, minimum=0.0, maximum=top, positive=key == "capacity_kwh")
    if table.has("bidirectional"):
        values["bidirectional"] = table.boolean("bidirectional")
    return model, values


def _ev_spec(values: dict[str, object], table: TableReader) -> EvSpec:
    for key in _REQUIRED_EV_KEYS:
        if key not in values:
            table.fail(key, "required key is missing (set it here, in fleet.defaults, or give model = ...)")
    spec = EvSpec(**values)  # type: ignore[arg-type]
    if spec.p_charge_min_w > spec.p_charge_max_w:
        table.fail(
            "p_charge_min_w", f"{spec.p_charge_min_w:g} is above p_charge_max_w {spec.p_charge_max_w:g}"
        )
    if spec.p_discharge_min_w > spec.p_discharge_max_w:
        table.fail(
            "p_discharge_min_w",
            f"{spec.p_discharge_min_w:g} is above p_discharge_max_w {spec.p_discharge_max_w:g}",
        )
    if spec.depart_s is not None and spec.depart_s <= spec.arrive_s:
        table.fail("depart_s", f"must be after arrive_s ({spec.arrive_s:g}), got {spec.depart_s:g}")
    return spec


def _fleet(table: TableReader, scenario_seed: int) -> FleetSpec:
    seed = table.integer("seed", scenario_seed, minimum=0)
    lag = table.number("lag_s", 1.0, minimum=0.0)
    defaults_table = table.table_or_empty("defaults")
    default_model, defaults = _ev_values(defaults_table)
    defaults_table.finish()
    evs: list[EvSpec] = []
    for ev_table in table.tables("evs"):
        count = ev_table.integer("count", 1, minimum=1)
        model, own = _ev_values(ev_table)
        model = model or default_model
        # precedence: catalogue model < fleet.defaults < the car's own keys
        values = {"lag_s": lag, **(model_fields(model) if model else {}), **defaults, **own}
        if "departure_time_s" not in values and values.get("depart_s") is not None:
            values["departure_time_s"] = values["depart_s"]
        ev_table.finish()
        evs.extend([_ev_spec(values, ev_table)] * count)
    n_evs = table.integer("n_evs", len(evs), minimum=0)
    if n_evs < len(evs):
        table.fail("n_evs", f"{n_evs} is less than the {len(evs)} cars listed in fleet.evs")
    models_raw = table.raw("models", sorted(CATALOGUE))
    if not isinstance(models_raw, list) or not models_raw or any(m not in CATALOGUE for m in models_raw):
        table.fail("models", f"expected a non-empty list of catalogue names ({', '.join(sorted(CATALOGUE))})")
    rng = np.random.default_rng([seed, 1])
    for model in pick_models(rng, tuple(models_raw), n_evs - len(evs)):
        values = {"lag_s": lag, **model_fields(model), **random_session(rng), **defaults}
        evs.append(_ev_spec(values, table))
    spec = FleetSpec(
        evs=tuple(evs),
        car_enforces_floor=table.boolean("car_enforces_floor", True),
        report_period_s=table.number("report_period_s", 0.5, minimum=0.0),
        soc_resolution_pct=table.number("soc_resolution_pct", 0.01, positive=True),
        power_resolution_w=table.number("power_resolution_w", 1.0, positive=True),
        trip_below_voltage_pu=table.number("trip_below_voltage_pu", 0.0, minimum=0.0, maximum=1.0),
    )
    table.finish()
    return spec


def _site(table: TableReader) -> SiteSpec:
    profile = table.pairs("base_load_profile") if table.has("base_load_profile") else ()
    if any(b[0] <= a[0] for a, b in itertools.pairwise(profile)):
        table.fail("base_load_profile", "times must increase")
    spec = SiteSpec(
        base_load_w=table.number("base_load_w", 0.0),
        base_load_profile=profile,
        import_limit_w=table.number("import_limit_w", None, minimum=0.0),
        export_limit_w=table.number("export_limit_w", None, minimum=0.0),
    )
    table.finish()
    return spec


_SERVICE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _service(table: TableReader) -> ServiceSpec:
    if not table.data:
        return ServiceSpec()
    # any identifier here; the program's GRID_SERVICE enumeration decides which exist (site_io)
    name = table.string("name")
    if not _SERVICE_NAME.match(name):
        table.problem("name", f"'{name}' is not a service name (letters, digits and _, e.g. 'fcr')")
    params = {key: value for key, value in table.data.items() if key != "name"}
    return ServiceSpec(name, params)


# -- criteria --------------------------------------------------------------------------------------
def _criteria(table: TableReader, duration: float, site: SiteSpec) -> Criteria:
    trigger = None
    if table.has("trigger"):
        t = table.table_or_empty("trigger")
        trigger = Trigger(t.number("hz", positive=True), t.string("direction", choices=("below", "above")))
        t.finish()
    full = None
    if table.has("full_activation"):
        f = table.table_or_empty("full_activation")
        full = FullActivation(
            within_s=f.number("within_s", positive=True),
            power_w=f.number("power_w", None),
            fraction=f.number("fraction", 0.9, positive=True, maximum=1.0),
        )
        f.finish()
    latency = table.integer("max_latency_scans", minimum=0) if table.has("max_latency_scans") else None
    for key, needed in (("max_latency_scans", latency is not None), ("full_activation", full is not None)):
        if needed and trigger is None:
            table.fail(key, "needs [criteria.trigger] (hz and direction) to know when the event starts")
    site_held = table.boolean("site_limits_held", False)
    if site_held and site.import_limit_w is None and site.export_limit_w is None:
        table.fail("site_limits_held", "no site.import_limit_w or site.export_limit_w to hold")
    excursion = table.number("max_site_excursion_w", None, minimum=0.0)
    if excursion is not None and site.import_limit_w is None and site.export_limit_w is None:
        table.fail("max_site_excursion_w", "no site.import_limit_w or site.export_limit_w to measure against")
    chatter = None
    if table.has("chatter"):
        c = table.table_or_empty("chatter")
        chatter = ChatterCheck(
            from_s=c.number("from_s", 0.0, minimum=0.0, maximum=duration),
            to_s=c.number("to_s", duration, minimum=0.0, maximum=duration),
            tolerance_w=c.number("tolerance_w", 100.0, minimum=0.0),
            max_reversals=c.integer("max_reversals", minimum=0) if c.has("max_reversals") else None,
            max_total_variation_w=c.number("max_total_variation_w", None, minimum=0.0),
        )
        if chatter.to_s < chatter.from_s:
            c.fail("to_s", f"must not be before from_s ({chatter.from_s:g})")
        if chatter.max_reversals is None and chatter.max_total_variation_w is None:
            c.fail("max_reversals", "give max_reversals, max_total_variation_w or both")
        c.finish()
    points = []
    for p in table.tables("points"):
        points.append(
            PointCheck(
                at_s=p.number("at_s", minimum=0.0, maximum=duration),
                quantity=p.string("quantity", choices=QUANTITIES),
                value=p.number("value"),
                tolerance=p.number("tol", minimum=0.0),
            )
        )
        p.finish()
    ranges = []
    for r in table.tables("ranges"):
        low, high = r.number("min", None), r.number("max", None)
        check = RangeCheck(
            from_s=r.number("from_s", minimum=0.0, maximum=duration),
            to_s=r.number("to_s", duration, minimum=0.0, maximum=duration),
            quantity=r.string("quantity", choices=QUANTITIES),
            minimum=low,
            maximum=high,
        )
        if check.to_s < check.from_s:
            r.fail("to_s", f"must not be before from_s ({check.from_s:g})")
        if low is None and high is None:
            r.fail("min", "give min, max or both")
        r.finish()
        ranges.append(check)
    criteria = Criteria(
        trigger=trigger,
        max_latency_scans=latency,
        response_tolerance_w=table.number("response_tolerance_w", 1.0, minimum=0.0),
        full_activation=full,
        soc_floors_held=table.boolean("soc_floors_held", False),
        no_discharge_below_floor=table.boolean("no_discharge_below_floor", False),
        site_limits_held=site_held,
        site_limit_tolerance_w=table.number("site_limit_tolerance_w", 0.0, minimum=0.0),
        max_site_excursion_w=excursion,
        min_floor_margin_pct=table.number("min_floor_margin_pct", None),
        chatter=chatter,
        points=tuple(points),
        ranges=tuple(ranges),
    )
    table.finish()
    return criteria


def load_with_fleet_size(name: str, evs: int | None) -> Scenario:
    """A scenario, optionally with its fleet resized to ``evs`` cars (generated from the catalogue)."""
    if evs is None:
        return load_scenario(name)

    def resize(data: dict[str, Any], source: str) -> None:
        fleet = data.setdefault("fleet", {})
        if not isinstance(fleet, dict):
            raise ConfigError(source, "fleet", "must be a table")
        explicit = sum(int(ev.get("count", 1)) for ev in fleet.get("evs", []) if isinstance(ev, dict))
        if evs < explicit:
            raise ConfigError(
                source, "fleet.n_evs", f"--evs {evs} is fewer than the {explicit} cars the scenario lists"
            )
        fleet["n_evs"] = evs

    return load_scenario(name, resize)
