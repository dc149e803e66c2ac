"""The ISO 15118 driver's part of the site file: ``[iso15118]`` (plcrun as the SECC of its charge points).

``check`` reads the table collect-all, the bindings of each EVSE (``<prefix>[<slot>].<field>``, ``stop``,
``renegotiate``) checked against the program's catalog; ``build`` returns the driver, which starts the
SECC process when the executor starts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import BuildContext, DriverType, SiteContext, Wiring, collect
from .config import Iso15118Config, parse_iso15118_config
from .driver import Iso15118Driver


def check(tables: Mapping[str, Any], site: SiteContext) -> Iso15118Config | None:
    return collect(
        site, lambda problems: parse_iso15118_config(tables["iso15118"], site.file, site.catalog, problems)
    )


def build(config: Iso15118Config, context: BuildContext) -> Wiring:
    driver = Iso15118Driver(config, context.alarms)
    where = ", ".join(f"{evse.id}@{evse.interface}" for evse in config.evses)
    return Wiring(drivers=[driver], descriptions=[f"ISO 15118 SECC: {where}"])


DRIVER = DriverType(
    "iso15118", ("iso15118",), check, build, "ISO 15118 sessions with the cars (plcrun as SECC)"
)
