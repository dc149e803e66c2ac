"""The parsed form of a simulation scenario: grid, meter faults, EV fleet, site, service and criteria.

A ``Scenario`` is fully explicit: generated EVs are already expanded into ``EvSpec`` entries, so the
same scenario always drives the models the same way. ``load_scenario`` (scenario_load.py) builds it
from a TOML file or a built-in name; docs/simulation.md describes the file format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SEGMENT_KINDS = ("const", "steps", "ramp", "noise", "trace", "event")
FAULT_KINDS = ("stale", "nan", "scale", "comm_lost", "voltage_collapse")
FAULT_TARGETS = ("frequency", "voltage", "power", "all")
QUANTITIES = (
    "grid_hz",
    "meter_hz",
    "voltage_v",
    "site_power_w",
    "fleet_power_w",
    "setpoint_w",
    "soc_mean_pct",
    "soc_min_pct",
    "connected",
)


@dataclass(frozen=True)
class TraceSpec:
    """A recorded CSV trace: which columns hold what, and which part of it to play."""

    file: str  # absolute path (resolved against the scenario file's folder)
    frequency_column: str
    time_column: str
    time_format: str  # strptime format, or "seconds" for a numeric column
    voltage_column: str | None = None
    voltage_scale: float = 1.0
    start: str | None = None  # a time value in the trace's own format; None = the first row
    offset_s: float = 0.0  # added after ``start``


@dataclass(frozen=True)
class Segment:
    """One piece of the grid signal, starting at ``start_s`` (seconds of scenario time).

    ``duration_s`` None means "until the end of the scenario". ``hz``/``voltage_v`` None mean "the
    value the previous segment ended with" (resolved by the grid model).
    """

    kind: str
    start_s: float
    duration_s: float | None
    hz: float | None = None
    to_hz: float | None = None
    voltage_v: float | None = None
    points: tuple[tuple[float, float], ...] = ()
    sigma_hz: float = 0.0
    sigma_v: float = 0.0
    event: str | None = None
    trace: TraceSpec | None = None


@dataclass(frozen=True)
class Fault:
    """A sensor fault of the site meter between ``start_s`` and ``end_s`` (scenario time)."""

    kind: str
    start_s: float
    end_s: float
    target: str = "all"
    factor: float = 10.0  # for "scale"
    voltage_v: float = 0.0  # for "voltage_collapse"
    frequency_hz: float | None = None  # for "voltage_collapse": what the meter reports meanwhile


@dataclass(frozen=True)
class MeterSpec:
    update_period_s: float = 0.0  # 0 = a fresh reading every scan
    freshness_s: float = 1.0  # a frozen reading turns STALE after this
    # register resolution of the readings, as a real meter's registers have (0 = exact): steady values
    # repeat exactly, reading after reading
    resolution_hz: float = 0.001
    resolution_v: float = 0.1
    resolution_w: float = 1.0


@dataclass(frozen=True)
class EvSpec:
    """One car and its charging session. Powers in W (magnitudes), SoC in %, times in scenario seconds."""

    capacity_kwh: float
    p_charge_max_w: float
    p_charge_min_w: float
    p_discharge_max_w: float
    p_discharge_min_w: float
    bidirectional: bool
    soc_pct: float
    min_soc_pct: float
    target_soc_pct: float
    arrive_s: float = 0.0
    depart_s: float | None = None  # None: stays connected
    departure_time_s: float | None = None  # reported planned departure; None: unknown (0)
    lag_s: float = 1.0
    model: str = "custom"


@dataclass(frozen=True)
class FleetSpec:
    evs: tuple[EvSpec, ...]
    car_enforces_floor: bool = True
    report_period_s: float = 0.5
    soc_resolution_pct: float = 0.01
    power_resolution_w: float = 1.0
    trip_below_voltage_pu: float = 0.0  # chargers stop when voltage < this x nominal; 0 = never


@dataclass(frozen=True)
class SiteSpec:
    base_load_w: float = 0.0
    base_load_profile: tuple[tuple[float, float], ...] = ()  # (time_s, W) points, overrides base_load_w
    import_limit_w: float | None = None
    export_limit_w: float | None = None  # magnitude


@dataclass(frozen=True)
class ServiceSpec:
    """The service selected; ``params`` is the raw TOML table the program parameters are taken from."""

    name: str = "none"
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Trigger:
    hz: float
    direction: str  # "below" or "above"


@dataclass(frozen=True)
class FullActivation:
    within_s: float
    power_w: float | None = None  # expected signed change of fleet power; None: the setpoint change
    fraction: float = 0.9


@dataclass(frozen=True)
class PointCheck:
    at_s: float
    quantity: str
    value: float
    tolerance: float


@dataclass(frozen=True)
class RangeCheck:
    from_s: float
    to_s: float
    quantity: str
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class ChatterCheck:
    """Setpoint chatter in ``[from_s, to_s]``: reversals of the total setpoint (a move back by more
    than ``tolerance_w`` from the last extreme counts one) and its total variation (sum of |change|)."""

    from_s: float
    to_s: float
    tolerance_w: float
    max_reversals: int | None
    max_total_variation_w: float | None


@dataclass(frozen=True)
class Criteria:
    trigger: Trigger | None = None
    max_latency_scans: int | None = None
    response_tolerance_w: float = 1.0
    full_activation: FullActivation | None = None
    soc_floors_held: bool = False
    no_discharge_below_floor: bool = False
    site_limits_held: bool = False
    site_limit_tolerance_w: float = 0.0
    max_site_excursion_w: float | None = None  # worst excursion beyond a site limit, W
    min_floor_margin_pct: float | None = None  # every bidirectional car's lowest SoC above its floor by this
    chatter: ChatterCheck | None = None
    points: tuple[PointCheck, ...] = ()
    ranges: tuple[RangeCheck, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str  # file path or "builtin:<name>"
    description: str
    duration_s: float
    scan_period_s: float
    seed: int
    start_epoch_s: int
    nominal_hz: float
    nominal_voltage_v: float
    segments: tuple[Segment, ...]
    faults: tuple[Fault, ...]
    meter: MeterSpec
    fleet: FleetSpec
    site: SiteSpec
    service: ServiceSpec
    criteria: Criteria

    @property
    def n_evs(self) -> int:
        return len(self.fleet.evs)

    @property
    def n_steps(self) -> int:
        """Number of scan periods in the scenario (the executor runs steps 0..n_steps)."""
        return round(self.duration_s / self.scan_period_s)

    @property
    def duration_ns(self) -> int:
        return round(self.duration_s * 1e9)

    @property
    def scan_period_ns(self) -> int:
        return round(self.scan_period_s * 1e9)
