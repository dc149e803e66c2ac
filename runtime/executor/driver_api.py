"""The one small interface through which the executor sees I/O drivers.

A driver (Modbus client, MQTT session feed, the built-in simulation, ...) lives in ``plcrun.io``
and talks to devices on its own threads. The executor never waits on it: at the start of every scan
it asks each driver for the latest input samples (a non-blocking snapshot swap) and, after the scan,
hands each driver the output values (a non-blocking hand-over). Keys are process-image paths of the
compiled program, for example ``"main.grid_hz"``, ``"main.evs[3].soc_pct"``, ``"site.meter_w"`` or a
located address such as ``"%IW0"``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class Quality(enum.IntEnum):
    """Data quality of one input, readable from ST through ``QUALITY_OF(var)``."""

    GOOD = 0
    STALE = 1  # the device answered, but the value has not been refreshed within its freshness limit
    BAD = 2  # the device answered with an unusable value (exception, sentinel, NaN, implausible)
    COMM_LOST = 3  # no answer from the device
    UNBOUND = 4  # no driver feeds this variable


class Sample(NamedTuple):
    """One input value with its quality and the monotonic time (ns, driver clock) it was acquired.
    A named tuple: drivers make thousands per second, and a tuple is the cheapest immutable record."""

    value: object
    quality: Quality = Quality.GOOD
    timestamp_ns: int = 0


class InputGroup(NamedTuple):
    """Samples of one read that share their quality and acquisition time: ``values[i]`` is the value
    of ``paths[i]``. A driver that delivers the same set of paths again should pass the same tuple
    object: the process image keeps what it worked out about a tuple (by its identity)."""

    paths: tuple[str, ...]
    values: Sequence[object]
    quality: Quality
    timestamp_ns: int


@dataclass(slots=True)
class DriverStatus:
    """What the dashboard and the reports show about one driver."""

    name: str
    kind: str
    connected: bool
    detail: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    points: dict[str, Quality] = field(default_factory=dict)


class Clock(Protocol):
    """The executor's clock: monotonic nanoseconds, real or virtual."""

    def now_ns(self) -> int: ...


class Driver(ABC):
    """Base class of every I/O driver.

    Life cycle: ``start(clock)`` once before the first scan, then per scan ``read_inputs`` (scan
    thread, start of scan) and ``write_outputs`` (scan thread, end of scan), then ``stop()``.
    ``read_inputs`` and ``write_outputs`` must return within microseconds: real I/O happens on the
    driver's own threads. A driver that does all its work synchronously (the simulation in virtual
    time) may compute inside these calls, as long as it is cheap and deterministic.
    """

    name: str = "driver"
    kind: str = "driver"
    outputs_by_value = False
    """True: the driver treats output values equal (==) to the last ones as no change, so the process
    image may hand over the last mapping again (it never changes a mapping it has handed over)."""
    delivers_groups = False
    """True: the process image reads the inputs with ``read_input_groups`` instead of ``read_inputs``."""

    def start(self, clock: Clock) -> None:  # noqa: B027 - optional hook
        """Begin background I/O. ``clock`` is the executor's clock."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop background I/O; after this no thread of the driver runs."""

    @abstractmethod
    def input_paths(self) -> frozenset[str]:
        """Process-image paths this driver fills (validated against the program before start)."""

    def output_paths(self) -> frozenset[str]:
        """Process-image paths this driver wants to receive after every scan."""
        return frozenset()

    @abstractmethod
    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        """Latest samples, only those that changed since the previous call (may be empty)."""

    def read_input_groups(self, now_ns: int) -> Sequence[InputGroup]:
        """``read_inputs`` as groups of samples that share quality and stamp, in the order of the
        samples (a driver that sets ``delivers_groups`` builds them directly: the image stores a
        group of values of one type in a few C-level passes). This default: one group per sample."""
        return [
            InputGroup((path,), (sample.value,), sample.quality, sample.timestamp_ns)
            for path, sample in self.read_inputs(now_ns).items()
        ]

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:  # noqa: B027
        """Hand over output values (all of ``output_paths()``, every scan). Must not block."""

    def apply_safe_state(self, values: Mapping[str, object]) -> None:  # noqa: B027
        """Called when the task faults or stops: write these safe values as soon as possible."""

    @abstractmethod
    def status(self) -> DriverStatus:
        """Current connection state and per-point quality."""
