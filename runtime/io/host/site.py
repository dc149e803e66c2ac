"""The host driver's part of the site file: ``[host]`` (the gateway's CPU temperature as program
inputs, with an over-temperature alarm; docs/deployment.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import BuildContext, DriverType, SiteContext, Wiring, collect
from .config import HostConfig, parse_host_config
from .driver import HostDriver


def check(tables: Mapping[str, Any], site: SiteContext) -> HostConfig | None:
    return collect(site, lambda _problems: parse_host_config(tables["host"], site.file, site.catalog))


def build(config: HostConfig, context: BuildContext) -> Wiring:
    return Wiring(drivers=[HostDriver(config, context.alarms)], descriptions=["host CPU temperature"])


DRIVER = DriverType("host", ("host",), check, build, "the gateway's CPU temperature")
