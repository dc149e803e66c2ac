"""The OCPP driver's part of the site file: ``[ocpp]`` (the charging station's link to a CSMS;
docs/ocpp.md). ``parse_ocpp_config`` checks the table collect-all, bindings included."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import BuildContext, DriverType, SiteContext, Wiring, collect
from .config import OcppConfig, parse_ocpp_config
from .driver import OcppDriver


def check(tables: Mapping[str, Any], site: SiteContext) -> OcppConfig | None:
    return collect(site, lambda _problems: parse_ocpp_config(tables["ocpp"], site.file, site.catalog))


def build(config: OcppConfig, context: BuildContext) -> Wiring:
    return Wiring(drivers=[OcppDriver(config, context.alarms)], descriptions=["OCPP station"])


DRIVER = DriverType("ocpp", ("ocpp",), check, build, "OCPP 2.0.1/2.1 station link to a CSMS")
