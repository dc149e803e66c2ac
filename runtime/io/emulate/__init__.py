"""Emulated field devices for rehearsing a site on one machine (``plcrun devices SITE.toml``)."""

from .devices import EmulatedDevice, QuasarCharger, SunSpecDer, SunSpecMeter, Timing
from .rehearsal import Rehearsal, Served, plan_devices

__all__ = [
    "EmulatedDevice",
    "QuasarCharger",
    "Rehearsal",
    "Served",
    "SunSpecDer",
    "SunSpecMeter",
    "Timing",
    "plan_devices",
]
