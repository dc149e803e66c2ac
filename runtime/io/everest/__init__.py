"""EV charging sessions from an EVerest charger stack over MQTT (EVerest API ``everest_api/1/...``):
session and EV data into EV_SESSION records, setpoints out as ``set_external_limits``. See docs/everest.md.

The site-configuration loader calls ``parse_everest_config``; the executor sees ``EverestSessionDriver``
as a Driver.
"""

from __future__ import annotations

from .config import CONNECTED_STATES, EverestConfig, EvseConfig, parse_everest_config
from .driver import EverestSessionDriver
from .messages import limits_document

__all__ = [
    "CONNECTED_STATES",
    "EverestConfig",
    "EverestSessionDriver",
    "EvseConfig",
    "limits_document",
    "parse_everest_config",
]
