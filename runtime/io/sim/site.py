"""The simulation's part of the site file: ``[sim]`` (also what ``plcrun run`` uses without a site
file, with the table built from ``--scenario``/``--evs``).

``[sim]`` keys: ``scenario`` (a built-in name or a TOML file, default ``quiet_grid``) and ``evs``
(resize the fleet). ``check`` loads the scenario and, when the program is known, checks that the
program has the meter or EV-session variables the simulation binds by convention (programs/README.md)
and room for the fleet. ``build`` returns the ``SimDriver`` and the scenario's parameter writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config_errors import ConfigError
from ..registry import BuildContext, DriverType, SiteContext, Wiring
from ..site_io import check_sim_fits, sim_io
from .scenario import Scenario
from .scenario_load import load_with_fleet_size

DEFAULT_SCENARIO = "quiet_grid"


def check(tables: Mapping[str, Any], site: SiteContext) -> Scenario | None:
    reader = site.reader(tables, "sim")
    if reader is None:
        return None
    name = reader.string("scenario", DEFAULT_SCENARIO)
    evs = reader.integer("evs", None, minimum=0, maximum=100_000)
    reader.finish()
    try:
        scenario = load_with_fleet_size(name, evs)
        if site.program is not None:
            check_sim_fits(site.program, scenario)
    except ConfigError as error:  # names the scenario file and its key
        reader.problem("scenario", str(error))
        return None
    return scenario


def build(scenario: Scenario, context: BuildContext) -> Wiring:
    io = sim_io(context.program, scenario, realtime=context.realtime)
    return Wiring(
        drivers=io.drivers,
        initial_writes=io.initial_writes,
        descriptions=[io.description],
        warnings=io.warnings,
    )


DRIVER = DriverType("sim", ("sim",), check, build, "built-in grid and EV-fleet simulation")
