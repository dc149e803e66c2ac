"""The simulated site meter: raw readings of frequency, voltage and site power, with sensor faults.

The meter reports what a real one would, not a cleaned-up value: NaN and a x10 scale error come with
GOOD quality (checking validity is the program's job). Only two faults show in the quality: a frozen
reading ("stale") turns STALE once it is older than the freshness limit, and a lost meter
("comm_lost") gives COMM_LOST with the last value. A voltage collapse changes the physical voltage
(chargers may trip on it) and, if the fault says so, what the meter reports as frequency.

Which faults are active only changes at their start and end times, so it is worked out again only
when the time passes one of them; without an active fault a reading is three attribute updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...executor.driver_api import Quality
from .scenario import Fault, MeterSpec

CHANNELS = ("frequency_hz", "voltage_v", "power_w")
_TARGET_OF_CHANNEL = {"frequency_hz": "frequency", "voltage_v": "voltage", "power_w": "power"}


@dataclass(slots=True)
class Reading:
    """The meter's current output on one channel; ``fresh`` means it changed since it was last taken."""

    value: float
    quality: Quality
    acquired_s: float
    fresh: bool = True


def _quantise(value: float, resolution: float) -> float:
    if resolution <= 0.0 or not math.isfinite(value):
        return value
    return round(value / resolution) * resolution


def quantise_all(values: npt.NDArray[np.float64], resolution: float) -> list[float]:
    """``_quantise`` of every value, vectorised (np.rint rounds half to even, as ``round`` does)."""
    if resolution <= 0.0:
        return values.tolist()  # type: ignore[no-any-return]
    with np.errstate(invalid="ignore"):
        quantised = np.rint(values / resolution) * resolution
    return np.where(np.isfinite(values), quantised, values).tolist()  # type: ignore[no-any-return]


def collapse_voltage(faults: tuple[Fault, ...], t_s: float, voltage_v: float) -> float:
    """The physical voltage at ``t_s``: the collapse value inside a voltage-collapse window."""
    for fault in faults:
        if fault.kind == "voltage_collapse" and fault.start_s <= t_s < fault.end_s:
            return fault.voltage_v
    return voltage_v


class MeterModel:
    """Turns the true values of every scan into the meter's readings, applying the faults."""

    def __init__(self, spec: MeterSpec, faults: tuple[Fault, ...], scan_period_s: float) -> None:
        self.spec = spec
        self.faults = faults
        self.every = max(1, round(spec.update_period_s / scan_period_s)) if spec.update_period_s > 0 else 1
        self.readings: dict[str, Reading] = {}
        self._boundaries = sorted({f.start_s for f in faults} | {f.end_s for f in faults})
        self._valid_from = math.inf  # the active faults below hold for t in [_valid_from, _valid_to)
        self._valid_to = -math.inf
        self._active_by_channel: dict[str, list[Fault]] = {}
        self._quiet = True  # no fault is active on any channel
        self._collapse_v: float | None = None
        self.quiet_step = -1  # the step ``observe`` last updated every reading GOOD (no fault), or -1
        self._trio: tuple[Reading, Reading, Reading] | None = None  # the three readings, once made
        self._resolution_w = spec.resolution_w

    def _refresh(self, t_s: float) -> None:
        self._active_by_channel = {channel: self._active(channel, t_s) for channel in CHANNELS}
        self._quiet = not any(self._active_by_channel.values())
        self._collapse_v = None
        for fault in self.faults:
            if fault.kind == "voltage_collapse" and fault.start_s <= t_s < fault.end_s:
                self._collapse_v = fault.voltage_v
                break
        self._valid_from = max((b for b in self._boundaries if b <= t_s), default=-math.inf)
        self._valid_to = min((b for b in self._boundaries if b > t_s), default=math.inf)

    def physical_voltage(self, t_s: float, voltage_v: float) -> float:
        """The voltage at ``t_s`` as the chargers see it (``collapse_voltage`` of the faults)."""
        if not self._valid_from <= t_s < self._valid_to:
            self._refresh(t_s)
        return voltage_v if self._collapse_v is None else self._collapse_v

    def _active(self, channel: str, t_s: float) -> list[Fault]:
        target = _TARGET_OF_CHANNEL[channel]
        return [
            f
            for f in self.faults
            if f.start_s <= t_s < f.end_s and (f.target in (target, "all") or f.kind == "voltage_collapse")
        ]

    def _measured(self, channel: str, true_value: float, faults: list[Fault]) -> float:
        value = true_value
        for fault in faults:
            if fault.kind == "nan":
                value = math.nan
            elif fault.kind == "scale":
                value *= fault.factor
            elif (
                fault.kind == "voltage_collapse"
                and channel == "frequency_hz"
                and fault.frequency_hz is not None
            ):
                value = fault.frequency_hz
        return value

    def observe(
        self,
        step: int,
        t_s: float,
        frequency_hz: float,
        grid_v: float,
        grid_v_quantised: float,
        power_w: float,
    ) -> float:
        """One simulation step: the physical voltage (``physical_voltage``) is returned and the
        readings updated as ``update_quantised`` does with the voltage at the register resolution
        (``grid_v_quantised`` when it is the grid's) and the power quantised. Without an active
        fault and with a reading every step, in one short pass (and ``quiet_step`` set)."""
        if not self._valid_from <= t_s < self._valid_to:
            self._refresh(t_s)
        trio = self._trio
        if self._quiet and self.every == 1 and trio is not None:  # no fault: no collapse either
            resolution = self._resolution_w
            if resolution > 0.0 and power_w - power_w == 0.0:  # _quantise: finite values only
                power_w = round(power_w / resolution) * resolution
            good = Quality.GOOD
            freq, volts, power = trio
            freq.value, freq.quality, freq.acquired_s, freq.fresh = frequency_hz, good, t_s, True
            volts.value, volts.quality, volts.acquired_s, volts.fresh = grid_v_quantised, good, t_s, True
            power.value, power.quality, power.acquired_s, power.fresh = power_w, good, t_s, True
            self.quiet_step = step
            return grid_v
        self.quiet_step = -1
        voltage = grid_v if self._collapse_v is None else self._collapse_v
        meter_v = grid_v_quantised if voltage is grid_v else self.quantise_v(voltage)
        self.update_quantised(step, t_s, frequency_hz, meter_v, self.quantise_power(power_w))
        if all(channel in self.readings for channel in CHANNELS):  # the readings are made once
            self._trio = (self.readings["frequency_hz"], self.readings["voltage_v"], self.readings["power_w"])
        return voltage

    def update(self, step: int, t_s: float, frequency_hz: float, voltage_v: float, power_w: float) -> None:
        """Advance to scan ``step`` at scenario time ``t_s`` with the true (physical) values; readings are
        quantised to the meter's register resolution (a steady grid repeats the same value)."""
        spec = self.spec
        self.update_quantised(
            step,
            t_s,
            _quantise(frequency_hz, spec.resolution_hz),
            _quantise(voltage_v, spec.resolution_v),
            _quantise(power_w, spec.resolution_w),
        )

    def quantise_power(self, power_w: float) -> float:
        return _quantise(power_w, self.spec.resolution_w)

    def quantise_v(self, voltage_v: float) -> float:
        return _quantise(voltage_v, self.spec.resolution_v)

    def update_quantised(
        self, step: int, t_s: float, frequency_hz: float, voltage_v: float, power_w: float
    ) -> None:
        """``update`` with values already at the register resolution (the simulation quantises the
        grid's frequency and voltage a chunk of steps at a time)."""
        if not self._valid_from <= t_s < self._valid_to:
            self._refresh(t_s)
        due = self.every == 1 or step % self.every == 0
        readings = self.readings
        if self._quiet and readings:
            if due:
                good = Quality.GOOD
                freq, volts, power = readings["frequency_hz"], readings["voltage_v"], readings["power_w"]
                freq.value, freq.quality, freq.acquired_s, freq.fresh = frequency_hz, good, t_s, True
                volts.value, volts.quality, volts.acquired_s, volts.fresh = voltage_v, good, t_s, True
                power.value, power.quality, power.acquired_s, power.fresh = power_w, good, t_s, True
            return
        true_values = {"frequency_hz": frequency_hz, "voltage_v": voltage_v, "power_w": power_w}
        for channel in CHANNELS:
            faults = self._active_by_channel[channel]
            kinds = {f.kind for f in faults}
            current = readings.get(channel)
            if current is None:  # the very first reading is always taken
                value = self._measured(channel, true_values[channel], faults)
                readings[channel] = Reading(value, Quality.GOOD, t_s)
                continue
            if "comm_lost" in kinds:
                self._set_quality(current, Quality.COMM_LOST)
            elif "stale" in kinds:
                if t_s - current.acquired_s >= self.spec.freshness_s - 1e-9:
                    self._set_quality(current, Quality.STALE)
            elif due:
                current.value = self._measured(channel, true_values[channel], faults)
                current.quality = Quality.GOOD
                current.acquired_s = t_s
                current.fresh = True

    @staticmethod
    def _set_quality(reading: Reading, quality: Quality) -> None:
        if reading.quality != quality:
            reading.quality = quality
            reading.fresh = True
