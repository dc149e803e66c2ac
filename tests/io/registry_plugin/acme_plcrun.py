"""A third-party driver package as the registry sees it (installed through an entry point by
tests/io/test_registry.py): ``[acme]`` feeds one constant input and records one output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plcrun.executor.driver_api import Driver, DriverStatus, Sample
from plcrun.io.registry import BuildContext, DriverType, SiteContext, Wiring


class AcmeDriver(Driver):
    kind = "acme"

    def __init__(self, source: str, value: float, sink: str | None) -> None:
        self.name = "acme"
        self.source, self.value, self.sink = source, value, sink
        self.written: list[object] = []

    def input_paths(self) -> frozenset[str]:
        return frozenset({self.source})

    def output_paths(self) -> frozenset[str]:
        return frozenset({self.sink} if self.sink else set())

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        return {self.source: Sample(self.value, timestamp_ns=now_ns)}

    def write_outputs(self, now_ns: int, values: Mapping[str, object]) -> None:
        if self.sink in values:
            self.written.append(values[self.sink])

    def status(self) -> DriverStatus:
        return DriverStatus(self.name, self.kind, True)


def check(tables: Mapping[str, Any], site: SiteContext) -> dict[str, Any] | None:
    reader = site.reader(tables, "acme")
    if reader is None:
        return None
    source = site.variable("acme.source", reader.string("source"), "in")
    value = reader.number("value", 0.0)
    sink_text = reader.string("sink", None)
    sink = site.variable("acme.sink", sink_text, "out") if sink_text is not None else None
    reader.finish()
    return {"source": source, "value": value, "sink": sink}


def build(config: dict[str, Any], context: BuildContext) -> Wiring:
    return Wiring(drivers=[AcmeDriver(config["source"], config["value"], config["sink"])])


DRIVER = DriverType("acme", ("acme",), check, build, "a test driver from another package")
