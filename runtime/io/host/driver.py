"""``HostDriver``: the CPU temperature as an input of the program, with an over-temperature alarm.

Outdoor enclosures get hot; a hot CPU is throttled and the scan's latency spikes. A worker thread
reads the thermal zones every ``poll_s`` (a sysfs read can take milliseconds, so never on the scan
thread) and keeps the latest sample; ``read_inputs`` hands it over. The alarm ``host:cpu_temp`` is
raised at ``alarm_c`` and cleared at ``clear_c`` (hysteresis); when no zone can be read the
temperature input is BAD and the alarm ``host:cpu_temp_unreadable`` says why.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from ...executor.alarms import AlarmBus, Severity
from ...executor.driver_api import Clock, Driver, DriverStatus, Quality, Sample
from .config import HostConfig
from .thermal import hottest_zone, read_thermal_zones

ALARM = "host:cpu_temp"
UNREADABLE = "host:cpu_temp_unreadable"


class HostDriver(Driver):
    kind = "host"

    def __init__(self, config: HostConfig, alarms: AlarmBus, root: Path = Path("/")) -> None:
        self.name = "host"
        self.config = config
        self.alarms = alarms
        self.root = root
        self.hot = False
        self.temp_c: float | None = None
        self.zone = ""
        self._clock: Clock | None = None
        self._samples: dict[str, Sample] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def input_paths(self) -> frozenset[str]:
        return frozenset(p for p in (self.config.cpu_temp_path, self.config.cpu_hot_path) if p)

    def poll(self, now_ns: int) -> None:
        """Read the zones once, update the alarm and the samples (the worker calls this)."""
        zone = hottest_zone(read_thermal_zones(self.root, self.config.zones))
        samples: dict[str, Sample] = {}
        if zone is None or zone.temp_c is None:
            self.temp_c = None
            if self.config.cpu_temp_path:
                samples[self.config.cpu_temp_path] = Sample(0.0, Quality.BAD, now_ns)
            what = f"types {', '.join(self.config.zones)}" if self.config.zones else "any type"
            self.alarms.raise_alarm(
                UNREADABLE,
                "host",
                f"no readable thermal zone ({what}) under {self.root / 'sys/class/thermal'}",
                Severity.WARNING,
            )
        else:
            self.temp_c, self.zone = zone.temp_c, f"{zone.name} ({zone.type})"
            self.alarms.clear(UNREADABLE)
            if self.config.cpu_temp_path:
                samples[self.config.cpu_temp_path] = Sample(zone.temp_c, Quality.GOOD, now_ns)
            if not self.hot and zone.temp_c >= self.config.alarm_c:
                self.hot = True
                self.alarms.raise_alarm(
                    ALARM,
                    "host",
                    f"CPU at {zone.temp_c:.1f} °C ({self.zone}), alarm at {self.config.alarm_c:g} °C: "
                    "the CPU may throttle and scans run late",
                    Severity.WARNING,
                )
            elif self.hot and zone.temp_c <= self.config.clear_c:
                self.hot = False
                self.alarms.clear(ALARM)
        if self.config.cpu_hot_path:
            samples[self.config.cpu_hot_path] = Sample(self.hot, Quality.GOOD, now_ns)
        with self._lock:
            self._samples.update(samples)

    def start(self, clock: Clock) -> None:
        self._clock = clock
        self.poll(clock.now_ns())  # the first scan sees a value
        self._thread = threading.Thread(target=self._run, name="plcrun-host", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            assert self._clock is not None
            try:
                self.poll(self._clock.now_ns())
            except Exception as error:  # a sysfs surprise must not end the worker
                self.alarms.raise_alarm(UNREADABLE, "host", f"reading the thermal zones failed: {error}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        with self._lock:
            samples, self._samples = self._samples, {}
        return samples

    def status(self) -> DriverStatus:
        detail = "no readable thermal zone" if self.temp_c is None else f"{self.temp_c:.1f} °C, {self.zone}"
        return DriverStatus(self.name, self.kind, self.temp_c is not None, detail)
