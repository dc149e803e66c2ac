"""The EVerest driver's part of the site file: ``[everest]`` (EV sessions over EVerest's MQTT API).

``check`` reads the table collect-all; the bindings of each EVSE (``<prefix>[<slot>].<field>``)
are checked against the program's catalog while it is read. ``build`` returns the session driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import BuildContext, DriverType, SiteContext, Wiring, collect
from .config import EverestConfig, parse_everest_config
from .driver import EverestSessionDriver


def check(tables: Mapping[str, Any], site: SiteContext) -> EverestConfig | None:
    return collect(
        site, lambda problems: parse_everest_config(tables["everest"], site.file, site.catalog, problems)
    )


def build(config: EverestConfig, context: BuildContext) -> Wiring:
    driver = EverestSessionDriver(config, context.alarms)
    return Wiring(
        drivers=[driver], descriptions=[f"EVerest: {len(config.evses)} EVSEs via {config.host}:{config.port}"]
    )


DRIVER = DriverType("everest", ("everest",), check, build, "EV sessions from EVerest over MQTT")
