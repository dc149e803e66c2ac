"""The MQTT backhaul's part of the site file: ``[mqtt]``.

``check`` reads the table (collect-all) and checks every reported variable and every command target
against the program's catalog, so a report path the program does not have is a configuration problem
named by its key (``mqtt.report.variables[0].path``) before anything starts. ``build`` returns the
``Backhaul`` driver, which reads the scan statistics through the run's statistics provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config_reader import join_key
from ..registry import BuildContext, DriverType, SiteContext, Wiring, collect
from .backhaul import Backhaul
from .config import BackhaulConfig, CurveCommand, parse_mqtt_config


def check(tables: Mapping[str, Any], site: SiteContext) -> BackhaulConfig | None:
    config = collect(site, lambda problems: parse_mqtt_config(tables["mqtt"], site.file, problems))
    if config is None:
        return None
    bad = 0
    for index, variable in enumerate(config.report.variables):
        key = f"mqtt.report.variables[{index}].path"
        for path in variable.paths:
            if site.variable(key, path) is None:
                bad += 1
                break  # one message per entry (a range names many paths)
    for command in config.commands:
        key = join_key("mqtt.commands", command.name)
        fields = (
            ("frequency_path", "power_path", "count_path", "baseline_path")
            if isinstance(command, CurveCommand)
            else ("path",)
        )
        for path in command.input_paths():
            field = next((f for f in fields if path.startswith(str(getattr(command, f)))), fields[0])
            if site.variable(join_key(key, field), path, "in") is None:
                bad += 1
                break
    return None if bad else config


def build(config: BackhaulConfig, context: BuildContext) -> Wiring:
    backhaul = Backhaul(config, context.alarms, context.stats, context.gateway_id)
    return Wiring(drivers=[backhaul], descriptions=[f"MQTT backhaul to {config.host}:{config.port}"])


DRIVER = DriverType("mqtt", ("mqtt",), check, build, "MQTT/TLS backhaul: reports, alarms, commands")
