"""Secure MQTT backhaul: windowed reports and immediate alarms to the cloud over mutual TLS, with an
encrypted store-and-forward buffer, and validated cloud-to-gateway commands. See docs/mqtt.md.

The site-configuration loader calls ``parse_mqtt_config``; the executor sees ``Backhaul`` as a Driver.
"""

from __future__ import annotations

from .backhaul import Backhaul
from .commands import CommandRejected, validate_command
from .config import (
    BackhaulConfig,
    BufferConfig,
    CurveCommand,
    ReportConfig,
    ReportVariable,
    TlsConfig,
    TopicConfig,
    ValueCommand,
    parse_mqtt_config,
)
from .messages import SCHEMA_VERSION
from .store import ForwardBuffer

__all__ = [
    "SCHEMA_VERSION",
    "Backhaul",
    "BackhaulConfig",
    "BufferConfig",
    "CommandRejected",
    "CurveCommand",
    "ForwardBuffer",
    "ReportConfig",
    "ReportVariable",
    "TlsConfig",
    "TopicConfig",
    "ValueCommand",
    "parse_mqtt_config",
    "validate_command",
]
