"""OCPP 2.0.1 and 2.1 to a charging-station management system (CSMS): the site's chargers as the EVSEs
of one charging station, transactions from the EV sessions, charging profiles as limits and V2X
operation modes for the site program. docs/ocpp.md describes it."""

from .config import OcppConfig, OcppConfigError, parse_ocpp_config
from .driver import OcppDriver

__all__ = ["OcppConfig", "OcppConfigError", "OcppDriver", "parse_ocpp_config"]
