"""The gateway's own inputs: CPU temperature from the kernel's thermal zones (``[host]`` table)."""

from .config import HostConfig, parse_host_config
from .driver import HostDriver
from .thermal import ThermalZone, hottest_zone, read_thermal_zones

__all__ = [
    "HostConfig",
    "HostDriver",
    "ThermalZone",
    "hottest_zone",
    "parse_host_config",
    "read_thermal_zones",
]
