"""The executor's view of a Modbus device: a ``Driver`` whose I/O runs on the device's own thread.

One driver per configured device. ``read_inputs`` swaps out the samples that changed since the
previous scan; ``write_outputs`` hands over the values the program wrote (only changed ones wake the
device thread); ``apply_safe_state`` queues the safe values ahead of everything else and ``stop``
writes them before it closes the connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...executor.alarms import AlarmBus
from ...executor.clock import REAL_TIME, WorkerTime
from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from .model import DeviceSpec
from .sunspec import SunSpecMap
from .worker import DeviceWorker


class ModbusDeviceDriver(Driver):
    kind = "modbus-tcp"

    def __init__(
        self, spec: DeviceSpec, alarms: AlarmBus | None = None, worker_time: WorkerTime = REAL_TIME
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._worker = DeviceWorker(spec, alarms, worker_time)
        self._age_path = spec.setpoint_age_path
        self._setpoint_path = next(
            (p.path for p in spec.outputs() if p.name == "p_setpoint_w" and p.path is not None), None
        )
        inputs = {p.path for p in spec.inputs() if p.path is not None}
        if self._age_path is not None and self._setpoint_path is not None:
            inputs.add(self._age_path)
        else:
            self._age_path = None
        self._inputs = frozenset(inputs)
        self._started_ns: int | None = None
        self._outputs_by_path: dict[str, list[str]] = {}
        for point in spec.outputs():
            if point.path is not None:
                self._outputs_by_path.setdefault(point.path, []).append(point.name)

    def start(self, clock: Clock) -> None:
        self._started_ns = clock.now_ns()
        self._worker.start(clock.now_ns)

    def stop(self) -> None:
        # the device thread writes pending (safe) values before it closes the connection
        self._worker.stop(timeout_s=max(2.0, 3 * self.spec.timeout_ms / 1000))

    def input_paths(self) -> frozenset[str]:
        return self._inputs

    def output_paths(self) -> frozenset[str]:
        return frozenset(self._outputs_by_path)

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        samples = self._worker.take_samples(now_ns)
        if self._age_path is not None and self._setpoint_path is not None:
            # setpoint_age: how long ago the charger last accepted a setpoint (since start if never)
            written = self.last_written(self._setpoint_path)
            since = written[1] if written is not None else self._started_ns
            if since is not None:
                samples = dict(samples)
                samples[self._age_path] = Sample(max(0, now_ns - since), Quality.GOOD, now_ns)
        return samples

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        self._worker.set_outputs(self._by_point(values))

    def apply_safe_state(self, values: Mapping[str, object]) -> None:
        self._worker.set_outputs(self._by_point(values), force=True)

    def _by_point(self, values: Mapping[str, object]) -> dict[str, object]:
        by_point: dict[str, object] = {}
        for path, value in values.items():
            for name in self._outputs_by_path.get(path, ()):
                by_point[name] = value
        return by_point

    def status(self) -> DriverStatus:
        return self._worker.status()

    # ---- extras for the dashboard and tests -------------------------------------------------------------
    def point_problems(self) -> dict[str, str]:
        """Why points are BAD, by point name (exception explanations, sentinels, range violations)."""
        return self._worker.problems()

    def last_written(self, path: str) -> tuple[object, int] | None:
        """(value, timestamp_ns) of the last write the device accepted for output ``path``: the age of a
        setpoint at the charger (``setpoint_age`` of the EV session record)."""
        names = self._outputs_by_path.get(path)
        return self._worker.last_written(names[0]) if names else None

    @property
    def sunspec_map(self) -> SunSpecMap | None:
        """The models found by SunSpec discovery on the current connection."""
        return self._worker.sunspec_map


def build_modbus_drivers(
    devices: Iterable[DeviceSpec], alarms: AlarmBus | None = None, worker_time: WorkerTime = REAL_TIME
) -> list[ModbusDeviceDriver]:
    """One driver per device, e.g. ``build_modbus_drivers(site.devices.values(), alarm_bus)``."""
    return [ModbusDeviceDriver(spec, alarms, worker_time) for spec in devices]
