"""``SimDriver``: the built-in simulation of a grid, a site meter and an EV fleet behind the ``Driver`` API.

Everything runs synchronously on the scan thread: ``read_inputs(now_ns)`` advances the models in
fixed steps of the scenario's scan period up to ``now_ns`` and returns the new samples;
``write_outputs`` stores the program's setpoints, which the cars follow from the next step on. With
the same scenario and the same sequence of ``now_ns`` values the results are identical, in virtual
and in real time. Scenario time 0 is the clock time at ``start`` (or at the first ``read_inputs``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from ..config_errors import ConfigError
from .fleet import FleetModel
from .grid import GridModel
from .history import HistoryRecorder, SimHistory
from .meter import CHANNELS, MeterModel, collapse_voltage
from .scenario import Scenario

FloatArray = npt.NDArray[np.float64]

# The EV_SESSION fields (stdlib/ev_session.st) the simulation fills; the ages are the executor's.
EV_INPUT_FIELDS = (
    "connected",
    "bidirectional_allowed",
    "soc_pct",
    "min_soc_pct",
    "target_soc_pct",
    "departure_time",
    "p_charge_max_w",
    "p_charge_min_w",
    "p_discharge_max_w",
    "p_discharge_min_w",
    "e_target_wh",
    "e_min_wh",
    "e_max_wh",
    "p_present_w",
)
# Measured values: sent at every report of the car (fleet.report_period_s), changed or not, so that
# their age is the age of the measurement. The other fields are sent when they change.
DYNAMIC_FIELDS = frozenset({"soc_pct", "e_target_wh", "e_min_wh", "e_max_wh", "p_present_w"})
SETPOINT_FIELD = "p_setpoint_w"
_GRID_CHUNK = 4096


def _as_number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


class SimDriver(Driver):
    """Feeds meter and EV-session paths from the simulation and takes the EV setpoints back.

    ``meter_paths`` maps ``"frequency_hz"``, ``"voltage_v"``, ``"power_w"`` (any subset) to process
    image paths. EV fields go to ``f"{ev_prefix}[{i}].{field}"`` for ``i`` in
    ``first_index .. first_index + n_evs - 1`` and setpoints come from ``...[i].p_setpoint_w``.
    ``n_evs`` is the number of session slots the program has (default: the scenario's fleet size);
    slots beyond the fleet read as not connected. ``history()`` keeps the most recent
    ``max_history_rows`` rows (default: the whole scenario, and at least one hour of 10 ms scans).
    """

    kind = "sim"

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
    ) -> None:
        self.name = name
        self.scenario = scenario
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
        self.dt_ns = scenario.scan_period_ns
        self.grid = GridModel(scenario)
        self.fleet = FleetModel(scenario.fleet, scenario.nominal_voltage_v)
        self.meter = MeterModel(scenario.meter, scenario.faults, scenario.scan_period_s)
        # keep the whole scenario, and at least an hour of a run that goes on in real time
        keep = max_history_rows if max_history_rows is not None else max(scenario.n_steps + 1, 360_000)
        self.recorder = HistoryRecorder(scenario.n_steps + 1, scenario.n_evs, keep)
        self._t0_ns: int | None = None
        self.step_index = -1  # no state computed yet
        self._grid_chunk_start = -1
        self._grid_hz: FloatArray = np.zeros(0)
        self._grid_v: FloatArray = np.zeros(0)
        self._voltage_now = scenario.nominal_voltage_v
        self._ev_sent: dict[str, npt.NDArray[Any]] = {}
        self._ev_due = np.zeros(slots, dtype=np.bool_)
        every = max(1, round(scenario.fleet.report_period_s / self.dt_s))
        self._report_every = every
        self._report_offset = (np.arange(slots) * every) // max(slots, 1)
        self.bad_setpoints = 0

    # -- Driver API ----------------------------------------------------------------------------
    def start(self, clock: Clock) -> None:
        if self._t0_ns is None:
            self._t0_ns = clock.now_ns()

    def input_paths(self) -> frozenset[str]:
        paths = set(self.meter_paths.values())
        for per_field in self._ev_paths.values():
            paths.update(per_field)
        return frozenset(paths)

    def output_paths(self) -> frozenset[str]:
        return frozenset(self._setpoint_paths)

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        if self._t0_ns is None:
            self._t0_ns = now_ns
        target = max(0, (now_ns - self._t0_ns + self.dt_ns // 2) // self.dt_ns)
        if self.step_index < 0:
            self._begin()
        while self.step_index < target:
            self._advance()
        return self._collect_samples()

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        slots = self._setpoint_slot
        pairs = [(slots[path], value) for path, value in values.items() if path in slots]
        if pairs:
            index = [slot for slot, _ in pairs]
            raw = np.array([value for _, value in pairs])
            if raw.dtype.kind in "biuf":
                numbers = raw.astype(np.float64)
            else:  # something that is not a number reached a setpoint
                numbers = np.array([_as_number(value) for _, value in pairs])
            bad = ~np.isfinite(numbers)
            if bad.any():
                self.bad_setpoints += int(bad.sum())
                numbers[bad] = 0.0
            self.fleet.setpoint_w[index] = numbers
        self.recorder.set_last("setpoint_w", self._setpoint_total())

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
        rec, fleet = self.recorder, self.fleet
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
            energy_charged_wh=fleet.energy_charged_wh.copy(),
            energy_discharged_wh=fleet.energy_discharged_wh.copy(),
            below_floor_discharge_wh=fleet.below_floor_discharge_wh.copy(),
            floor_discharge_requests=fleet.floor_discharge_requests.copy(),
            min_soc_pct=fleet.min_soc.copy(),
            final_soc_pct=fleet.soc_pct.copy(),
        )

    # -- Model stepping ------------------------------------------------------------------------
    def _grid_at(self, step: int) -> tuple[float, float]:
        if not self._grid_chunk_start <= step < self._grid_chunk_start + len(self._grid_hz):
            self._grid_chunk_start = step
            times = (step + np.arange(_GRID_CHUNK, dtype=np.float64)) * self.dt_s
            self._grid_hz, self._grid_v = self.grid.sample(times)
        offset = step - self._grid_chunk_start
        return float(self._grid_hz[offset]), float(self._grid_v[offset])

    def _base_load(self, t_s: float) -> float:
        site = self.scenario.site
        if site.base_load_profile:
            times = [p[0] for p in site.base_load_profile]
            watts = [p[1] for p in site.base_load_profile]
            return float(np.interp(t_s, times, watts))
        return site.base_load_w

    def _setpoint_total(self) -> float:
        return float(self.fleet.setpoint_w[self.fleet.connected].sum())

    def _observe(self, step: int) -> None:
        """Meter reading and history row for the state at ``step``."""
        t_s = step * self.dt_s
        grid_hz, grid_v = self._grid_at(step)
        self._voltage_now = collapse_voltage(self.scenario.faults, t_s, grid_v)
        fleet_power = float(self.fleet.power_w.sum())
        site_power = self._base_load(t_s) + fleet_power
        truth = {"frequency_hz": grid_hz, "voltage_v": self._voltage_now, "power_w": site_power}
        self.meter.update(step, t_s, truth)
        freq = self.meter.readings["frequency_hz"]
        soc_mean, soc_min = self.fleet.soc_stats()
        row = {
            "t_s": t_s,
            "grid_hz": grid_hz,
            "meter_hz": freq.value,
            "meter_quality": float(freq.quality),
            "voltage_v": self._voltage_now,
            "site_power_w": site_power,
            "fleet_power_w": fleet_power,
            "setpoint_w": self._setpoint_total(),
            "soc_mean_pct": soc_mean,
            "soc_min_pct": soc_min,
            "connected": float(self.fleet.connected.sum()),
        }
        self.recorder.append(row, self.fleet.power_w)
        if self.n_slots:
            phase = (step - self._report_offset) % self._report_every == 0
            self._ev_due |= phase

    def _begin(self) -> None:
        self.step_index = 0
        self._observe(0)

    def _advance(self) -> None:
        t_s = self.step_index * self.dt_s
        was_connected = self.fleet.connected.copy()
        self.fleet.step(t_s, self.dt_s, self._voltage_now)
        self.step_index += 1
        if self.n_slots:  # a car arriving or leaving reports at once
            changed = np.zeros(self.n_slots, dtype=np.bool_)
            changed[: self.fleet.n] = was_connected != self.fleet.connected
            self._ev_due |= changed
        self._observe(self.step_index)

    # -- Samples -------------------------------------------------------------------------------
    def _stamp_ns(self, t_s: float) -> int:
        assert self._t0_ns is not None
        return self._t0_ns + round(t_s * 1e9)

    def _collect_samples(self) -> dict[str, Sample]:
        out: dict[str, Sample] = {}
        for channel, path in self.meter_paths.items():
            reading = self.meter.readings[channel]
            if reading.fresh:
                out[path] = Sample(reading.value, reading.quality, self._stamp_ns(reading.acquired_s))
        for reading in self.meter.readings.values():
            reading.fresh = False
        if self.n_slots:
            self._collect_ev_samples(out)
        return out

    def _ev_values(self) -> dict[str, npt.NDArray[Any]]:
        """Every EV field as an array over the slots, as the program should see it now."""
        fleet, spec, n = self.fleet, self.scenario.fleet, self.n_slots

        def pad(values: FloatArray) -> FloatArray:
            full = np.zeros(n)
            full[: fleet.n] = values
            return full

        on = np.zeros(n, dtype=np.bool_)
        on[: fleet.n] = fleet.connected
        bidirectional = np.zeros(n, dtype=np.bool_)
        bidirectional[: fleet.n] = fleet.bidirectional

        def when_on(values: FloatArray) -> FloatArray:
            return np.where(on, values, 0.0)

        res, p_res = spec.soc_resolution_pct, spec.power_resolution_w
        soc = pad(np.round(fleet.soc_pct / res) * res)
        cap = pad(fleet.capacity_wh)
        min_soc, target_soc = pad(fleet.min_soc), pad(fleet.target_soc)
        departure = np.where(
            np.isfinite(fleet.departure_time_s), self.scenario.start_epoch_s + fleet.departure_time_s, 0.0
        )
        return {
            "connected": on,
            "bidirectional_allowed": on & bidirectional,
            "soc_pct": when_on(soc),
            "min_soc_pct": when_on(min_soc),
            "target_soc_pct": when_on(target_soc),
            "departure_time": when_on(pad(departure)).astype(np.int64),
            "p_charge_max_w": when_on(pad(fleet.p_charge_max)),
            "p_charge_min_w": when_on(pad(fleet.p_charge_min)),
            "p_discharge_max_w": when_on(pad(np.where(fleet.bidirectional, fleet.p_discharge_max, 0.0))),
            "p_discharge_min_w": when_on(pad(np.where(fleet.bidirectional, fleet.p_discharge_min, 0.0))),
            "e_target_wh": when_on(np.round((target_soc - soc) / 100.0 * cap)),
            "e_min_wh": when_on(np.round((min_soc - soc) / 100.0 * cap)),
            "e_max_wh": when_on(np.round((100.0 - soc) / 100.0 * cap)),
            "p_present_w": when_on(pad(np.round(fleet.power_w / p_res) * p_res)),
        }

    def _collect_ev_samples(self, out: dict[str, Sample]) -> None:
        values = self._ev_values()
        stamp = self._stamp_ns(self.time_s)
        due = self._ev_due
        for field in self.ev_fields:
            current = values[field]
            previous = self._ev_sent.get(field)
            if previous is None:
                send = np.ones(self.n_slots, dtype=np.bool_)
            elif field in DYNAMIC_FIELDS:
                send = due
            else:
                send = current != previous
            indices = np.flatnonzero(send)
            if len(indices) == 0:
                continue
            paths = self._ev_paths[field]
            for index, value in zip(indices.tolist(), current[indices].tolist(), strict=True):
                out[paths[index]] = Sample(value, Quality.GOOD, stamp)
            self._ev_sent[field] = current
        self._ev_due = np.zeros(self.n_slots, dtype=np.bool_)
