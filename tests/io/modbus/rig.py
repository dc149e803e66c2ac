"""Helpers of the Modbus driver tests: a clock for the driver threads, device specs checked by the real
site-configuration code, and collectors that read samples the way the scan loop does: ``Inputs`` in
real time, ``VirtualInputs`` stepping the driver's virtual time (``ManualTime``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from plcrun.executor.clock import ManualTime
from plcrun.executor.driver_api import Quality, Sample
from plcrun.io.modbus.driver import ModbusDeviceDriver
from plcrun.io.modbus.model import DeviceSpec
from plcrun.io.site_config import parse_site_config

from tests.support.modbus_devices import wait_for

DriverFactory = Callable[[DeviceSpec], ModbusDeviceDriver]


class MonotonicClock:
    """The driver threads run in real time; their timestamps come from this clock."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


def device_spec(name: str, table: dict[str, object], catalog: dict[str, str]) -> DeviceSpec:
    """A device checked by the real site-configuration code, as a TOML table would give it."""
    site = parse_site_config({"devices": {name: table}}, "test-site.toml", catalog)
    return site.devices[name]


class Inputs:
    """Collects a driver's changed samples the way the scan loop does, and waits for conditions."""

    def __init__(self, driver: ModbusDeviceDriver) -> None:
        self.driver = driver
        self.latest: dict[str, Sample] = {}
        self.batches: list[dict[str, Sample]] = []

    def poll(self) -> dict[str, Sample]:
        new = dict(self.driver.read_inputs(time.monotonic_ns()))
        if new:
            self.batches.append(new)
        self.latest.update(new)
        return new

    def wait(self, path: str, predicate: Callable[[Sample], bool], timeout_s: float = 10.0) -> Sample:
        def check() -> bool:
            self.poll()
            return path in self.latest and predicate(self.latest[path])

        try:
            wait_for(check, timeout_s)
        except AssertionError:
            raise AssertionError(
                f"{path}: condition not met within {timeout_s} s; last sample {self.latest.get(path)}, "
                f"status {self.driver.status()}"
            ) from None
        return self.latest[path]


class VirtualInputs:
    """A driver on ``ManualTime`` (its worker and the executor's clock), read the way the scan does.
    ``until`` steps the virtual time until a sample meets a condition and returns when (ms)."""

    def __init__(self, driver: ModbusDeviceDriver, time: ManualTime) -> None:
        self.driver = driver
        self.time = time
        self.latest: dict[str, Sample] = {}

    @property
    def now_ms(self) -> int:
        return self.time.now_ns() // 1_000_000

    def poll(self) -> dict[str, Sample]:
        new = dict(self.driver.read_inputs(self.time.now_ns()))
        self.latest.update(new)
        return new

    def until(
        self,
        path: str,
        predicate: Callable[[Sample], bool],
        within_ms: int = 2000,
        step_ms: int = 10,
        answers_held: bool = False,
    ) -> int:
        """Step ``step_ms`` at a time (the worker settled after each step) until ``path``'s latest
        sample meets ``predicate``; the virtual time (ms) it did, or AssertionError after
        ``within_ms`` of virtual time. ``answers_held``: the peer holds its answers (a request
        waiting for one counts as settled, so it can time out)."""
        end = self.now_ms + within_ms
        while True:
            self.time.settle(answers_held=answers_held)
            self.poll()
            if path in self.latest and predicate(self.latest[path]):
                return self.now_ms
            if self.now_ms >= end:
                raise AssertionError(
                    f"{path}: condition not met within {within_ms} ms of virtual time; last sample "
                    f"{self.latest.get(path)}, status {self.driver.status()}"
                )
            self.time.advance(step_ms * 1_000_000)


def good(value: object) -> Callable[[Sample], bool]:
    return lambda s: s.quality is Quality.GOOD and s.value == value


def quality(q: Quality) -> Callable[[Sample], bool]:
    return lambda s: s.quality is q
