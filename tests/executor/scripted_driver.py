"""A real in-process driver for executor tests: inputs follow a script of (time, values), outputs
are recorded with the time they were handed over. It implements the Driver interface fully."""

from __future__ import annotations

from collections.abc import Mapping

from plcrun.executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample


class ScriptedDriver(Driver):
    def __init__(
        self,
        name: str,
        inputs: list[str],
        outputs: list[str],
        script: list[tuple[int, dict[str, object]]] | None = None,
        quality_script: list[tuple[int, dict[str, Quality]]] | None = None,
    ) -> None:
        self.name = name
        self.kind = "scripted"
        self._inputs = frozenset(inputs)
        self._outputs = frozenset(outputs)
        self._script = sorted(script or [], key=lambda item: item[0])
        self._qualities = sorted(quality_script or [], key=lambda item: item[0])
        self.t0: int | None = None
        self.written: list[tuple[int, dict[str, object]]] = []
        self.safe_states: list[tuple[int, dict[str, object]]] = []
        self._now = 0
        self._sent: dict[str, tuple[object, Quality]] = {}
        self._good_stamp: dict[str, int] = {}  # like real drivers: a bad sample keeps the last good time
        self.clock: Clock | None = None

    def start(self, clock: Clock) -> None:
        self.clock = clock

    def input_paths(self) -> frozenset[str]:
        return self._inputs

    def output_paths(self) -> frozenset[str]:
        return self._outputs

    def _current(self, table: list[tuple[int, dict]], elapsed: int) -> dict:  # type: ignore[type-arg]
        current: dict = {}  # type: ignore[type-arg]
        for at, values in table:
            if at <= elapsed:
                current.update(values)
        return current

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        if self.t0 is None:
            self.t0 = now_ns
        self._now = now_ns
        elapsed = now_ns - self.t0
        values = self._current(self._script, elapsed)
        qualities = self._current(self._qualities, elapsed)
        changed = {}
        for path in self._inputs:
            value = values.get(path)
            quality = qualities.get(path, Quality.GOOD)
            if value is None:
                continue
            if self._sent.get(path) != (value, quality):
                self._sent[path] = (value, quality)
                if quality is Quality.GOOD:
                    self._good_stamp[path] = now_ns
                changed[path] = Sample(value, quality, self._good_stamp.get(path, now_ns))
        return changed

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        self.written.append((now_ns, dict(values)))

    def apply_safe_state(self, values: Mapping[str, object]) -> None:
        now = self.clock.now_ns() if self.clock is not None else self._now
        self.safe_states.append((now, dict(values)))

    def status(self) -> DriverStatus:
        return DriverStatus(self.name, self.kind, True)
