"""A real in-process driver for program tests under the executor: a site meter whose readings,
qualities and acquisition times the test sets, and a recorder of the setpoints handed over.

``meter.feed(grid_hz=49.9)`` makes the next ``read_inputs`` deliver fresh samples stamped with the
executor clock; ``meter.freeze()`` stops delivering (the value ages, as a meter that stopped
updating); ``meter.mark(Quality.STALE)`` delivers the last value with another quality."""

from __future__ import annotations

from collections.abc import Mapping

from plcrun.executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample


class MeterDriver(Driver):
    def __init__(self, instance: str, outputs: list[str]) -> None:
        self.name = "meter"
        self.kind = "test-meter"
        self.instance = instance
        self._outputs = frozenset(outputs)
        self._values: dict[str, object] = {}
        self._quality = Quality.GOOD
        self._fresh = True
        self._pending: dict[str, Sample] = {}
        self.clock: Clock | None = None
        self.written: list[dict[str, object]] = []

    def _path(self, name: str) -> str:
        return f"{self.instance}.{name}"

    def start(self, clock: Clock) -> None:
        self.clock = clock

    def input_paths(self) -> frozenset[str]:
        return frozenset(self._path(n) for n in ("grid_hz", "grid_v", "site_w"))

    def output_paths(self) -> frozenset[str]:
        return self._outputs

    def feed(self, **values: float) -> None:
        """New readings (by variable name) from the next scan on; they stay fresh."""
        self._values.update(values)
        self._quality = Quality.GOOD
        self._fresh = True

    def freeze(self) -> None:
        """The meter stops updating: no new samples, the last ones age."""
        self._fresh = False

    def mark(self, quality: Quality) -> None:
        """The last values with another quality, stamped now (as a driver reports STALE/COMM_LOST)."""
        self._quality = quality
        self._fresh = True

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        if not self._fresh:
            return {}
        return {
            self._path(name): Sample(value, self._quality, now_ns) for name, value in self._values.items()
        }

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        self.written.append(dict(values))

    def status(self) -> DriverStatus:
        return DriverStatus(self.name, self.kind, connected=self._quality != Quality.COMM_LOST)
