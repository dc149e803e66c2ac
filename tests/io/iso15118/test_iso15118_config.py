"""The [iso15118] table through the site loader: bindings checked against the program, every problem
named with file and key, before anything starts."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from plcrun.io.iso15118 import Iso15118Config
from plcrun.io.site_config import parse_site_config

from tests.io.iso15118.conftest import PROGRAM

CATALOG = compile_file(PROGRAM).catalog()


def table(**evse: Any) -> dict[str, Any]:
    cp1 = {"interface": "veth-cp1", "slot": 1, "stop": "main.stop[1]"} | evse
    return {"iso15118": {"python": sys.executable, "prefix": "main.evs", "evse": {"cp1": cp1}}}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(Exception) as caught:  # SiteConfigError lists every problem
        parse_site_config(data, "site.toml", CATALOG)
    return str(caught.value)


def test_a_good_table_binds_every_field_of_the_slot() -> None:
    site = parse_site_config(table(max_discharge_w=11000.0, control_mode="scheduled"), "site.toml", CATALOG)
    config = site.checked["iso15118"]
    assert isinstance(config, Iso15118Config)
    [evse] = config.evses
    assert evse.inputs["e_v2x_min_wh"] == "main.evs[1].e_v2x_min_wh"
    assert evse.inputs["protocol"] == "main.evs[1].protocol"
    assert evse.output == "main.evs[1].p_setpoint_w" and evse.stop == "main.stop[1]"
    assert (evse.control_mode, evse.max_discharge_w, evse.tls) == (1, 11000.0, False)
    assert config.worker_config()["evses"][0]["iface"] == "veth-cp1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("evse", "expected"),
    [
        ({"slot": 9}, "iso15118.evse.cp1.slot: unknown variable 'main.evs[9].connected'"),
        ({"interface": "eth0; rm -rf /"}, "iso15118.evse.cp1.interface: 'eth0; rm -rf /' is not a network"),
        ({"protocols": ["ISO_15118_21"]}, "iso15118.evse.cp1.protocols: 'ISO_15118_21' is not one of"),
        ({"auth_modes": ["PNC"]}, "iso15118.evse.cp1.auth_modes: Plug & Charge (PNC) needs tls = true"),
        ({"control_mode": "fast"}, "iso15118.evse.cp1.control_mode: 'fast' is not 'dynamic' or 'scheduled'"),
        ({"stop": "main.grid_hz"}, "iso15118.evse.cp1.stop: main.grid_hz is LREAL, but stop needs BOOL"),
        ({"fields": ["soc"]}, "iso15118.evse.cp1.fields: 'soc' is not a field the driver fills"),
        ({"tls": True}, "iso15118.pki_path: is required when an EVSE has tls = true"),
        ({"max_chrage_w": 1.0}, "iso15118.evse.cp1.max_chrage_w"),
    ],
)
def test_mistakes_are_named_by_file_and_key(evse: dict[str, Any], expected: str) -> None:
    assert expected in problems(table(**evse))


def test_two_charge_points_on_one_interface_are_refused() -> None:
    data = table()
    data["iso15118"]["evse"]["cp2"] = {"interface": "veth-cp1", "slot": 2}
    assert "iso15118.evse.cp2.interface: veth-cp1 already carries cp1" in problems(data)


def test_a_missing_secc_environment_says_how_to_make_it() -> None:
    data = table()
    data["iso15118"]["python"] = "/nonexistent/bin/python"
    text = problems(data)
    assert "iso15118.python: /nonexistent/bin/python does not exist" in text and ".ci/run" in text
