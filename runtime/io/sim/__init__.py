"""The built-in simulation: grid frequency/voltage, site meter with sensor faults, and an EV fleet.

``plcrun programs/x.st`` runs against it when there is no site configuration, and ``plcrun sim``
runs scenarios in virtual time and judges them. Entry points::

    scenario = load_scenario("fcr_static")            # or a path to a TOML file
    driver = SimDriver(scenario, {"frequency_hz": "main.grid_hz"}, "main.evs")
    ...                                               # the executor calls read_inputs/write_outputs
    report = evaluate(driver.history(), scenario)     # report.to_json(), report.passed
    write_svg(driver.history(), "run.svg", scenario.name)
"""

from .driver import EV_INPUT_FIELDS, SETPOINT_FIELD, SimDriver
from .evaluate import CheckResult, SimReport, evaluate
from .events import EVENTS, builtin_events
from .fleet import FleetModel
from .grid import GridModel
from .history import SimHistory
from .meter import MeterModel
from .scenario import Scenario
from .scenario_load import builtin_scenarios, load_scenario, parse_scenario
from .svg_plot import render_svg, write_svg
from .traces import load_trace

__all__ = [
    "EVENTS",
    "EV_INPUT_FIELDS",
    "SETPOINT_FIELD",
    "CheckResult",
    "FleetModel",
    "GridModel",
    "MeterModel",
    "Scenario",
    "SimDriver",
    "SimHistory",
    "SimReport",
    "builtin_events",
    "builtin_scenarios",
    "evaluate",
    "load_scenario",
    "load_trace",
    "parse_scenario",
    "render_svg",
    "write_svg",
]
