"""The SCADA server's part of the site file: ``[server]``.

Not a driver of the process image but a service beside the executor: it serves the located
variables to a SCADA master over Modbus TCP, so it is started once the executor exists (and
stopped before it shuts down) by the composition root.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .registry import BuildContext, DriverType, SiteContext, Wiring, collect
from .scada_config import ScadaConfig, parse_server_config
from .scada_server import ScadaExecutor, ScadaServer
from .site_config_types import unknown_variable


class ScadaService:
    """The SCADA server as a ``registry.Service``."""

    name = "scada"

    def __init__(self, config: ScadaConfig) -> None:
        self.config = config
        self.server: ScadaServer | None = None

    def start(self, executor: ScadaExecutor) -> str:
        self.server = ScadaServer(executor, self.config)
        self.server.start()
        return f"SCADA Modbus server on {self.config.bind}:{self.server.port} (unit {self.config.unit})"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def check(tables: Mapping[str, Any], site: SiteContext) -> ScadaConfig | None:
    config = collect(site, lambda problems: parse_server_config(tables["server"], site.file, problems))
    if config is None:
        return None
    for named in config.registers:  # served by name: the variable must exist and be elementary
        type_name = site.catalog.get(named.path)
        if type_name is None:
            site.problems.add(named.key, unknown_variable(named.path, site.catalog))
        elif named.writable and site.program is not None:
            desc = site.program.leaf(named.path)
            if desc is not None and desc.constant:
                site.problems.add(
                    named.key, f"'{named.path}' is a CONSTANT: it cannot be written (access = \"r\")"
                )
    return config


def build(config: ScadaConfig, context: BuildContext) -> Wiring:
    return Wiring(services=[ScadaService(config)])


DRIVER = DriverType("scada", ("server",), check, build, "Modbus TCP server for a SCADA master")
