"""``SimDriver``: the built-in simulation of a grid, a site meter and an EV fleet behind the ``Driver`` API.

Everything runs synchronously on the scan thread: ``read_inputs(now_ns)`` advances the models in
fixed steps of the scenario's scan period up to ``now_ns`` and returns the new samples;
``write_outputs`` stores the program's setpoints, which the cars follow from the next step on. With
the same scenario and the same sequence of ``now_ns`` values the results are identical, in virtual
and in real time. Scenario time 0 is the clock time at ``start`` (or at the first ``read_inputs``).

A step costs a few microseconds whatever the fleet size: the fleet is advanced in closed form
(``LazyFleet``) and only evaluated where something is due (a car's report, a setpoint that changes a
target, an event), the grid and base load come from precomputed chunks, the meter does nothing
between fault boundaries but copy the values, an unchanged set of setpoints is recognised by one
dictionary comparison, and the fleet's history columns are filled in batches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from ...executor.driver_api import Clock, Driver, DriverStatus, InputGroup, Quality, Sample
from ..config_errors import ConfigError
from ..ev_session import EV_INPUT_FIELDS, SETPOINT_FIELD
from .ev_samples import DYNAMIC_FIELDS, EvReporter
from .fleet_lazy import LazyFleet
from .grid import GridModel
from .history import HistoryRecorder, SimHistory
from .meter import CHANNELS, MeterModel, quantise_all
from .scenario import Scenario

FloatArray = npt.NDArray[np.float64]

__all__ = ["DYNAMIC_FIELDS", "EV_INPUT_FIELDS", "SETPOINT_FIELD", "SimDriver"]


_GRID_CHUNK = 4096
_VECTOR_SETPOINTS = 48  # from this many output values on, they are parsed with numpy
# History rows are filled in batches of about this many row x car values: small enough that one batch
# (about 60 ns per value) stays well inside a real-time scan, large enough to amortise the numpy calls;
# in virtual time no scan waits, and larger batches cost less per row (at 100 EVs in a whole run:
# 6.6 µs a row at 2**13, 4.5 at 2**14, 3.7 at 2**15; the rows are the same whatever the batch).
_FILL_CELLS = 1 << 13
_FILL_CELLS_VIRTUAL = 1 << 15
_QUALITY_VALUE = {quality: float(quality) for quality in Quality}
_GOOD = Quality.GOOD
_GOOD_VALUE = _QUALITY_VALUE[_GOOD]
_NUMBER_TYPES = (int, float, np.integer, np.floating, np.bool_)


def _as_number(value: object) -> float:
    """A setpoint as a float; anything that is not a real number is NaN (counted as bad)."""
    if type(value) is float:
        return value
    return float(value) if isinstance(value, _NUMBER_TYPES) else math.nan


log = logging.getLogger("plcrun.sim")


class SimDriver(Driver):
    """Feeds meter and EV-session paths from the simulation and takes the EV setpoints back.

    ``meter_paths`` maps ``"frequency_hz"``, ``"voltage_v"``, ``"power_w"`` (any subset) to process
    image paths. EV fields go to ``f"{ev_prefix}[{i}].{field}"`` for ``i`` in
    ``first_index .. first_index + n_evs - 1`` and setpoints come from ``...[i].p_setpoint_w``.
    ``n_evs`` is the number of session slots the program has (default: the scenario's fleet size);
    slots beyond the fleet read as not connected. ``history()`` keeps the most recent
    ``max_history_rows`` rows (default: the whole scenario, and at least one hour of 10 ms scans).
    ``realtime=False`` (virtual time) fills the history in larger batches (``_FILL_CELLS_VIRTUAL``).
    """

    kind = "sim"
    delivers_groups = True
    outputs_by_value = True  # equal setpoints: nothing moves (write_outputs)

    def __init__(
        self,
        scenario: Scenario,
        meter_paths: Mapping[str, str] | None = None,
        ev_prefix: str | None = None,
        n_evs: int | None = None,
        *,
        ev_fields: Iterable[str] = EV_INPUT_FIELDS,
        first_index: int = 1,
        name: str = "sim",
        max_history_rows: int | None = None,
        realtime: bool = True,
    ) -> None:
        self.name = name
        self.scenario = scenario
        self._end_logged = False
        self.meter_paths = dict(meter_paths or {})
        unknown = set(self.meter_paths) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown meter channel(s) {sorted(unknown)}; expected {list(CHANNELS)}")
        self.ev_fields = tuple(ev_fields)
        bad_fields = set(self.ev_fields) - set(EV_INPUT_FIELDS)
        if bad_fields:
            raise ValueError(f"unknown EV field(s) {sorted(bad_fields)}; expected {list(EV_INPUT_FIELDS)}")
        slots = (scenario.n_evs if n_evs is None else n_evs) if ev_prefix else 0
        if ev_prefix and scenario.n_evs > slots:
            raise ConfigError(
                scenario.source,
                "fleet.n_evs",
                f"the scenario has {scenario.n_evs} cars but the program binds only {slots} sessions",
            )
        self.n_slots = slots
        self.ev_prefix = ev_prefix
        self._ev_paths = {
            f: [f"{ev_prefix}[{first_index + i}].{f}" for i in range(slots)] for f in self.ev_fields
        }
        self._setpoint_paths = [f"{ev_prefix}[{first_index + i}].{SETPOINT_FIELD}" for i in range(slots)]
        self._setpoint_slot = {p: i for i, p in enumerate(self._setpoint_paths) if i < scenario.n_evs}

        self.dt_s = scenario.scan_period_s
        self._n_steps = scenario.n_steps  # a property that computes: once, not per read
        self.dt_ns = scenario.scan_period_ns
        self._half_step_ns = self.dt_ns // 2  # a read lands on the nearest step
        self.grid = GridModel(scenario)
        self.fleet = LazyFleet(scenario.fleet, scenario.nominal_voltage_v, self.dt_s)
        self.meter = MeterModel(scenario.meter, scenario.faults, scenario.scan_period_s)
        # keep the whole scenario, and at least an hour of a run that goes on in real time
        keep = max_history_rows if max_history_rows is not None else max(scenario.n_steps + 1, 360_000)
        self.recorder = HistoryRecorder(scenario.n_steps + 1, scenario.n_evs, keep)
        cells = _FILL_CELLS if realtime else _FILL_CELLS_VIRTUAL
        self._fill_batch = min(self.recorder.fill_limit, max(16, cells // max(scenario.n_evs, 1)))
        self._t0_ns: int | None = None
        self.step_index = -1  # no state computed yet
        self._grid_chunk_start = -1
        self._grid_chunk_end = -1
        self._grid_hz: list[float] = []
        self._grid_v: list[float] = []
        self._meter_hz: list[float] = []  # the grid's values at the meter's register resolution
        self._meter_v: list[float] = []
        self._stamp_step = -1  # the step whose time stamp is in _stamp_of_step
        self._stamp_of_step = 0
        self._base_load: list[float] = []
        self._voltage_now = scenario.nominal_voltage_v
        every = max(1, round(scenario.fleet.report_period_s / self.dt_s))
        self._reporter = EvReporter(scenario, self.fleet, self._ev_paths, slots, every) if slots else None
        self._meter_bindings = [(self.meter_paths[ch], ch) for ch in CHANNELS if ch in self.meter_paths]
        self._meter_group = tuple(path for path, _ in self._meter_bindings)  # every channel at once
        self._meter_single = {path: (path,) for path, _ in self._meter_bindings}
        self._meter_all = [ch for _, ch in self._meter_bindings] == list(CHANNELS)
        self._setpoints: list[float] = [0.0] * self.fleet.n  # mirror of fleet.setpoint_w
        self._setpoint_keys: tuple[str, ...] = ()  # the order of the last values handled by numpy
        self._setpoint_positions = np.zeros(0, dtype=np.int64)  # ... where the cars' setpoints are
        self._setpoint_cars = np.zeros(0, dtype=np.int64)  # ... and whose
        self._setpoint_sum: float | None = 0.0  # None: to be summed again
        self._all_connected: bool | None = None  # None: to be looked at again (a car came or went)
        self._last_outputs: dict[str, object] | None = None  # the last values written, if still in force
        self._outputs_given: Mapping[str, object] | None = None  # the mapping of the last write_outputs
        self._last_bad = 0
        self.bad_setpoints = 0

    # -- Driver API ----------------------------------------------------------------------------
    def start(self, clock: Clock) -> None:
        if self._t0_ns is None:
            self._t0_ns = clock.now_ns()
        if self.step_index < 0:
            self._begin()  # the first grid chunk and state: before the first scan, not inside it

    def input_paths(self) -> frozenset[str]:
        paths = set(self.meter_paths.values())
        for per_field in self._ev_paths.values():
            paths.update(per_field)
        return frozenset(paths)

    def output_paths(self) -> frozenset[str]:
        return frozenset(self._setpoint_paths)

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        new = tuple.__new__  # Sample(...) without the named tuple's Python-level __new__
        return {
            path: new(Sample, (value, group.quality, group.timestamp_ns))
            for group in self.read_input_groups(now_ns)
            for path, value in zip(group.paths, group.values, strict=True)
        }

    def read_input_groups(self, now_ns: int) -> list[InputGroup]:
        # the usual read in virtual time: one step on, a quiet one (``_advance_to``'s conditions, then
        # ``_quiet_read``: ``_quiet_step`` and ``_quiet_groups`` in one pass)
        step = self.step_index + 1
        t0 = self._t0_ns
        fleet = self.fleet
        trip = fleet.trip_below_v
        if (
            t0 is not None
            and step > 0
            and (now_ns - t0 + self._half_step_ns) // self.dt_ns == step
            and step < self._n_steps  # (the end of the scenario is logged by the general path)
            and self._meter_all
            and fleet._next_event >= step
            and fleet._next_connection > step
            and fleet.tripped_now == (trip > 0 and self._voltage_now < trip)
        ):
            groups = self._quiet_read(step)
            if groups is not None:
                return groups
        if self._t0_ns is None:
            self._t0_ns = now_ns
        target = (now_ns - self._t0_ns + self._half_step_ns) // self.dt_ns
        if target < 0:
            target = 0
        if self.step_index < 0:
            self._begin()
        if self.step_index < target:
            self._advance_to(target)
        if not self._end_logged and self.step_index >= self._n_steps:
            self._end_logged = True  # the models go on (grid held at its last value, cars as set)
            log.info(
                "simulation '%s' reached the end of its scenario (%g s)",
                self.scenario.name,
                self.scenario.duration_s,
            )
        return self._collect_groups()

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        last = self._last_outputs
        if values is self._outputs_given and last is not None:
            # the same mapping handed over again (outputs_by_value: the same values): nothing moves,
            # and the last history row already holds the setpoint total (every row is appended with
            # the total in force, and only _apply_setpoints changes it, followed by the line below)
            if self._last_bad:
                self.bad_setpoints += self._last_bad
            return
        if last is not None and values == last:
            self.bad_setpoints += self._last_bad  # the same setpoints as last time: nothing moves
        else:
            self._apply_setpoints(values)
        self._outputs_given = values  # handed over again when equal (outputs_by_value)
        total = self._setpoint_sum
        self.recorder.set_last_setpoint(self._setpoint_total() if total is None else total)

    def apply_safe_state(self, values: Mapping[str, object]) -> None:
        self.write_outputs(0, values)

    def status(self) -> DriverStatus:
        where = f"t = {self.time_s:.2f} s of {self.scenario.duration_s:g} s"
        points = {
            path: self.meter.readings[ch].quality
            for ch, path in self.meter_paths.items()
            if ch in self.meter.readings
        }
        return DriverStatus(
            name=self.name,
            kind=self.kind,
            connected=all(q != Quality.COMM_LOST for q in points.values()),
            detail=f"scenario {self.scenario.name}, {where}",
            counters={
                "steps": max(self.step_index, 0),
                "evs_connected": int(self.fleet.connected.sum()),
                "bad_setpoints": self.bad_setpoints,
            },
            points=points,
        )

    # -- Extra API for `plcrun sim` ------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return max(self.step_index, 0) * self.dt_s

    def done(self, now_ns: int) -> bool:
        """True once ``now_ns`` has reached the end of the scenario."""
        return self._t0_ns is not None and now_ns - self._t0_ns >= self.scenario.duration_ns

    def history(self) -> SimHistory:
        self._fill_history()
        rec, fleet = self.recorder, self.fleet
        counters = fleet.counters()
        ev_t, ev_p = rec.per_ev()
        return SimHistory(
            scan_period_s=self.dt_s,
            t_s=rec.column("t_s"),
            grid_hz=rec.column("grid_hz"),
            meter_hz=rec.column("meter_hz"),
            meter_quality=rec.column("meter_quality"),
            voltage_v=rec.column("voltage_v"),
            site_power_w=rec.column("site_power_w"),
            fleet_power_w=rec.column("fleet_power_w"),
            setpoint_w=rec.column("setpoint_w"),
            soc_mean_pct=rec.column("soc_mean_pct"),
            soc_min_pct=rec.column("soc_min_pct"),
            connected=rec.column("connected"),
            per_ev_t_s=ev_t,
            per_ev_power_w=ev_p,
            energy_charged_wh=counters.energy_charged_wh,
            energy_discharged_wh=counters.energy_discharged_wh,
            below_floor_discharge_wh=counters.below_floor_discharge_wh,
            floor_discharge_requests=counters.floor_discharge_requests,
            min_soc_pct=fleet.min_soc.copy(),
            final_soc_pct=counters.soc_pct,
            lowest_soc_pct=np.where(np.isfinite(fleet.lowest_soc), fleet.lowest_soc, np.nan),
        )

    # -- Setpoints -----------------------------------------------------------------------------
    def _apply_setpoints(self, values: Mapping[str, object]) -> None:
        self._last_outputs = dict(values)
        if len(values) >= _VECTOR_SETPOINTS and self._apply_setpoints_numpy(values):
            return
        slots, current = self._setpoint_slot, self._setpoints
        cars: list[int] = []
        numbers: list[float] = []
        bad = 0
        for path, value in values.items():
            car = slots.get(path)
            if car is None:
                continue
            number = _as_number(value)
            if not math.isfinite(number):
                bad += 1
                number = 0.0
            if number != current[car]:
                current[car] = number
                cars.append(car)
                numbers.append(number)
        self.bad_setpoints += bad
        self._last_bad = bad
        if cars:
            self.fleet.set_setpoints(cars, numbers)
            self._setpoint_sum = None

    def _apply_setpoints_numpy(self, values: Mapping[str, object]) -> bool:
        """``_apply_setpoints`` for many values at once; False if they are not all plain numbers."""
        raw = np.array(list(values.values()))
        if raw.dtype.kind not in "biuf":
            return False
        keys = tuple(values)
        if keys != self._setpoint_keys:  # the executor sends the same paths in the same order
            self._setpoint_keys = keys
            bound = [
                (position, self._setpoint_slot[key])
                for position, key in enumerate(keys)
                if key in self._setpoint_slot
            ]
            self._setpoint_positions = np.array([position for position, _ in bound], dtype=np.int64)
            self._setpoint_cars = np.array([car for _, car in bound], dtype=np.int64)
        numbers = raw[self._setpoint_positions].astype(np.float64)
        bad = ~np.isfinite(numbers)
        count = int(bad.sum())
        if count:
            numbers[bad] = 0.0
        self.bad_setpoints += count
        self._last_bad = count
        cars = self._setpoint_cars
        changed = numbers != self.fleet.setpoint_w[cars]
        if changed.any():
            moved, numbers = cars[changed], numbers[changed]
            for car, number in zip(moved.tolist(), numbers.tolist(), strict=True):
                self._setpoints[car] = number
            self.fleet.set_setpoints(moved, numbers)
            self._setpoint_sum = None
        return True

    def _setpoint_total(self) -> float:
        if self._setpoint_sum is None:
            fleet = self.fleet
            if self._all_connected is None:
                self._all_connected = bool(fleet.connected.all())
            # every car connected (the usual case): the same numbers in the same order, without the
            # copy the mask makes
            chosen = fleet.setpoint_w if self._all_connected else fleet.setpoint_w[fleet.connected]
            self._setpoint_sum = float(chosen.sum())
        return self._setpoint_sum

    # -- Model stepping ------------------------------------------------------------------------
    def _load_chunk(self, step: int) -> None:
        self._grid_chunk_start, self._grid_chunk_end = step, step + _GRID_CHUNK
        times = (step + np.arange(_GRID_CHUNK, dtype=np.float64)) * self.dt_s
        hz, volts = self.grid.sample(times)
        self._grid_hz, self._grid_v = hz.tolist(), volts.tolist()
        spec = self.scenario.meter
        self._meter_hz = quantise_all(hz, spec.resolution_hz)
        self._meter_v = quantise_all(volts, spec.resolution_v)
        site = self.scenario.site
        if site.base_load_profile:
            points = site.base_load_profile
            load = np.interp(times, [p[0] for p in points], [p[1] for p in points])
            self._base_load = load.tolist()
        else:
            self._base_load = [site.base_load_w] * _GRID_CHUNK

    def _observe(self, step: int) -> None:
        """Meter reading and history row for the state at ``step``."""
        if not self._grid_chunk_start <= step < self._grid_chunk_end:
            self._load_chunk(step)
        offset = step - self._grid_chunk_start
        t_s = step * self.dt_s
        meter = self.meter
        grid_v = self._grid_v[offset]
        fleet_power = self.fleet.total_power()
        site_power = self._base_load[offset] + fleet_power
        voltage = self._voltage_now = meter.observe(
            step, t_s, self._meter_hz[offset], grid_v, self._meter_v[offset], site_power
        )
        freq = meter.readings["frequency_hz"]
        setpoint = self._setpoint_sum
        recorder = self.recorder
        recorder.append(
            self._grid_hz[offset],
            freq.value,
            _QUALITY_VALUE[freq.quality],
            voltage,
            site_power,
            fleet_power,
            self._setpoint_total() if setpoint is None else setpoint,
        )
        if self._reporter is not None:
            self._reporter.step_observed(step)
        if recorder.appended - recorder.filled >= self._fill_batch:  # recorder.pending
            self._fill_history()

    def _begin(self) -> None:
        self.step_index = 0
        self._observe(0)

    def _advance_to(self, target: int) -> None:
        """Step up to ``target``: a quiet step (``_quiet_step``) where the fleet has nothing due and
        does not trip, else ``_advance``."""
        fleet = self.fleet
        trip = fleet.trip_below_v
        step = self.step_index
        while step < target:
            if not (
                fleet._next_event > step
                and fleet._next_connection > step + 1
                and fleet.tripped_now == (trip > 0 and self._voltage_now < trip)
                and self._quiet_step(step + 1)
            ):
                self._advance()
            step = self.step_index

    def _advance(self) -> None:
        fleet = self.fleet
        switched = fleet.advance(self._voltage_now)
        self.step_index += 1
        if switched:  # a session starts or ends with setpoint 0; a car arriving or leaving reports at once
            for car in switched:
                self._setpoints[car] = 0.0
            self._setpoint_sum = None
            self._all_connected = None
            self._last_outputs = None
            if self._reporter is not None:
                self._reporter.switched(switched)
        self._observe(self.step_index)

    def _quiet_values(self, step: int, fresh: bool) -> tuple[float, float, float, float] | None:
        """``fleet.advance`` and ``_observe(step)`` in one pass for a step where nothing happens: the
        fleet has no event or connection due and does not trip (checked by the caller), the meter
        has no active fault and reads every step, the grid chunk holds the step, the setpoint sum
        is known. The same operations on the same operands as the general path, without its calls;
        the readings' ``fresh`` flag as given (a read that takes them at once leaves it False). The
        readings (frequency, voltage, power) and the step's time, or None (nothing done) when the
        step is not such a step."""
        meter = self.meter
        trio = meter._trio
        t_s = step * self.dt_s
        setpoint = self._setpoint_sum
        if (
            trio is None
            or not meter._quiet
            or meter.every != 1
            or not meter._valid_from <= t_s < meter._valid_to
            or step >= self._grid_chunk_end
            or setpoint is None
        ):
            return None
        fleet = self.fleet
        fleet.now = step
        self.step_index = step
        offset = step - self._grid_chunk_start
        fleet_power = fleet.total_power()
        site_power = self._base_load[offset] + fleet_power
        power_w = site_power  # MeterModel.observe's quiet pass
        resolution = meter._resolution_w
        if resolution > 0.0 and power_w - power_w == 0.0:
            power_w = round(power_w / resolution) * resolution
        frequency_hz = self._meter_hz[offset]
        grid_v = self._voltage_now = self._grid_v[offset]
        meter_v = self._meter_v[offset]
        freq, volts, power = trio
        good = _GOOD
        freq.value, freq.quality, freq.acquired_s, freq.fresh = frequency_hz, good, t_s, fresh
        volts.value, volts.quality, volts.acquired_s, volts.fresh = meter_v, good, t_s, fresh
        power.value, power.quality, power.acquired_s, power.fresh = power_w, good, t_s, fresh
        meter.quiet_step = step
        recorder = self.recorder
        recorder._appended.extend(
            (self._grid_hz[offset], frequency_hz, _GOOD_VALUE, grid_v, site_power, fleet_power, setpoint)
        )
        recorder.appended += 1
        if recorder.appended - recorder.filled >= self._fill_batch:
            self._fill_history()
        return frequency_hz, meter_v, power_w, t_s

    def _quiet_step(self, step: int) -> bool:
        """``_quiet_values`` and the reporter's step; False (nothing done) when the step is not quiet."""
        if self._quiet_values(step, True) is None:
            return False
        reporter = self._reporter
        if reporter is not None:  # reporter.step_observed(step)
            reporter._steps += 1
            phase = step % reporter.report_every
            if reporter._by_phase[phase]:
                reporter._phases.append(phase)
        return True

    def _quiet_read(self, step: int) -> list[InputGroup] | None:
        """``_quiet_step(step)`` then ``_quiet_groups(step)`` as one, for a read one step on
        (``read_input_groups`` checked the fleet's conditions): the same state, history row and groups,
        without the readings' ``fresh`` flags set only to be cleared. None (nothing done) when the
        step is not quiet."""
        values = self._quiet_values(step, False)  # taken at once by this read, as _quiet_groups leaves it
        if values is None:
            return None
        frequency_hz, meter_v, power_w, t_s = values
        assert self._t0_ns is not None  # (read_input_groups checked)
        self._stamp_step = step
        stamp_now = self._stamp_of_step = self._t0_ns + round(t_s * 1e9)  # t_s = step * dt_s, step > 0
        groups = [
            tuple.__new__(InputGroup, (self._meter_group, [frequency_hz, meter_v, power_w], _GOOD, stamp_now))
        ]
        reporter = self._reporter
        if reporter is not None:
            # reporter.step_observed(step), then collect when a car reports (else its answer: no samples)
            phase = step % reporter.report_every
            due = reporter._by_phase[phase]
            if due or reporter._phases or reporter._first or reporter._switched:
                reporter._steps += 1
                if due:
                    reporter._phases.append(phase)
                reporter.collect(groups, stamp_now)
            else:
                reporter._steps = 0
        return groups

    def _fill_history(self) -> None:
        """Complete the pending history rows from the fleet."""
        recorder = self.recorder
        if not recorder.pending:
            return
        first, last = recorder.filled, recorder.appended - 1  # a row's ever-index is its step
        per_ev_rows = recorder.pending_per_ev_rows()
        rows = self.fleet.rows(first, last, per_ev_rows)
        t_s = np.arange(first, last + 1, dtype=np.float64) * self.dt_s  # as step * dt_s
        recorder.fill(t_s, rows.soc_mean_pct, rows.soc_min_pct, rows.connected, rows.power_w)

    # -- Samples -------------------------------------------------------------------------------
    def _stamp_ns(self, t_s: float) -> int:
        assert self._t0_ns is not None
        return self._t0_ns + round(t_s * 1e9)

    def _step_stamp_ns(self) -> int:
        """``_stamp_ns(self.time_s)``, computed once per step."""
        step = self.step_index
        if step != self._stamp_step:
            self._stamp_step = step
            self._stamp_of_step = self._stamp_ns(max(step, 0) * self.dt_s)
        return self._stamp_of_step

    def _quiet_groups(self, step: int) -> list[InputGroup]:
        """``_collect_groups`` after a step whose meter read every channel GOOD (``quiet_step``)
        with every channel bound: one group as the general path makes it."""
        trio = self.meter._trio
        assert trio is not None  # made before any step can be quiet
        freq, volts, power = trio
        freq.fresh = volts.fresh = power.fresh = False
        if step != self._stamp_step:  # _step_stamp_ns() without the calls
            assert self._t0_ns is not None
            self._stamp_step = step
            self._stamp_of_step = self._t0_ns + round(max(step, 0) * self.dt_s * 1e9)
        stamp_now = self._stamp_of_step
        groups = [
            tuple.__new__(
                InputGroup, (self._meter_group, [freq.value, volts.value, power.value], _GOOD, stamp_now)
            )
        ]
        reporter = self._reporter
        if reporter is not None:
            if reporter._phases or reporter._first or reporter._switched:
                reporter.collect(groups, stamp_now)
            else:  # collect's answer when no car reports
                reporter._steps = 0
        return groups

    def _collect_groups(self) -> list[InputGroup]:
        step = self.step_index
        if self.meter.quiet_step == step and self._meter_all:
            return self._quiet_groups(step)  # the last step read every channel GOOD, now
        groups: list[InputGroup] = []
        readings = self.meter.readings
        acquired_s, stamp = math.nan, 0
        now_s = max(self.step_index, 0) * self.dt_s
        meter: list[tuple[str, float, Quality, int]] = []
        for path, channel in self._meter_bindings:
            reading = readings[channel]
            if reading.fresh:
                if reading.acquired_s != acquired_s:  # the channels are usually read together
                    acquired_s = reading.acquired_s
                    stamp = self._step_stamp_ns() if acquired_s == now_s else self._stamp_ns(acquired_s)
                meter.append((path, reading.value, reading.quality, stamp))
                reading.fresh = False
        for reading in readings.values():
            reading.fresh = False
        if meter:
            quality, first_stamp = meter[0][2], meter[0][3]
            if len(meter) == len(self._meter_group) and all(
                q is quality and s == first_stamp for _, _, q, s in meter
            ):
                groups.append(
                    InputGroup(self._meter_group, [v for _, v, _, _ in meter], quality, first_stamp)
                )
            else:
                single = self._meter_single
                groups.extend(InputGroup(single[p], (v,), q, s) for p, v, q, s in meter)
        if self._reporter is not None:
            self._reporter.collect(groups, self._step_stamp_ns())
        return groups
