"""The driver registry: built-in drivers and third-party ones (through the ``plcrun.drivers``
entry-point group) check their own tables and bindings, all together, before anything starts; a
site is built and run without the command line (``plcrun.site.SiteRuntime``)."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.io.registry import BUILTIN, ENTRY_POINT_GROUP, DriverType, RegistryError, registered
from plcrun.io.site_config import SiteConfigError
from plcrun.site import SiteRuntime

HERE = Path(__file__).resolve().parent
PLANT = HERE.parent / "executor" / "programs" / "plant.st"

MQTT = """
[mqtt]
host = "127.0.0.1"
port = 1883
[mqtt.buffer]
directory = "{buffer}"
key_env = "ACME_TEST_BUFFER_KEY"
[[mqtt.report.variables]]
name = "hz"
path = "{path}"
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Installs tests/io/registry_plugin as a distribution with an entry point, as pip would."""
    dist = tmp_path / "site-packages"
    info = dist / "acme_plcrun-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plcrun\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacme = acme_plcrun:DRIVER\n")
    monkeypatch.syspath_prepend(str(dist))
    monkeypatch.syspath_prepend(str(HERE / "registry_plugin"))
    monkeypatch.setenv("ACME_TEST_BUFFER_KEY", "00" * 32)
    yield dist
    sys.modules.pop("acme_plcrun", None)


def site_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.toml"
    path.write_text(text.replace("{buffer}", str(tmp_path / "buffer")))
    return str(path)


def test_the_builtin_drivers_are_registered_with_their_tables() -> None:
    drivers = registered()
    assert set(BUILTIN) <= set(drivers)
    owners = {table: d.name for d in drivers.values() for table in d.tables}
    assert owners["devices"] == "modbus" and owners["bindings"] == "modbus"
    assert owners["mqtt"] == "mqtt" and owners["everest"] == "everest"
    assert owners["server"] == "scada" and owners["sim"] == "sim"


def test_a_bad_mqtt_report_path_is_a_configuration_problem_before_start(tmp_path: Path, plugin: Path) -> None:
    program = compile_file(PLANT)
    path = site_file(tmp_path, MQTT.replace("{path}", "plant.hzz"))
    with pytest.raises(SiteConfigError) as caught:
        SiteRuntime.build(program, config=path, clock=VirtualClock())
    (problem,) = caught.value.problems
    assert problem.key == "mqtt.report.variables[0].path"
    assert "unknown variable 'plant.hzz'" in problem.problem and "did you mean 'plant.hz'" in problem.problem
    assert not (tmp_path / "buffer").exists()  # nothing was built


def test_problems_of_every_driver_are_reported_together(tmp_path: Path, plugin: Path) -> None:
    program = compile_file(PLANT)
    text = (
        MQTT.replace("{path}", "plant.nope")
        + '[acme]\nsource = "plant.hz"\nsink = "plant.nothing"\n[acmee]\n'
    )
    with pytest.raises(SiteConfigError) as caught:
        SiteRuntime.build(program, config=site_file(tmp_path, text), clock=VirtualClock())
    keys = [p.key for p in caught.value.problems]
    assert sorted(keys) == ["acme.sink", "acmee", "mqtt.report.variables[0].path"]
    assert "did you mean 'acme'" in str(caught.value)


def test_a_third_party_driver_registers_through_the_entry_point_group(tmp_path: Path, plugin: Path) -> None:
    assert "acme" in registered()
    program = compile_file(PLANT)
    text = '[acme]\nsource = "plant.hz"\nvalue = 49.5\nsink = "plant.p_set"\n'
    with SiteRuntime.build(program, config=site_file(tmp_path, text), clock=VirtualClock()) as site:
        site.run_cycles(3)
        (driver,) = site.executor.drivers
        assert site.executor.read("plant.hz") == 49.5
        assert site.executor.read("plant.scans") == 3
    assert driver.written[-1] == pytest.approx(50_000.0)  # (50 - 49.5) * 100000
    assert site.executor.read("plant.p_set") == pytest.approx(-1.5)  # stopped: outputs to safe values


def test_two_drivers_may_not_claim_one_table(plugin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import acme_plcrun

    clash = DriverType("clash", ("mqtt",), acme_plcrun.check, acme_plcrun.build)
    monkeypatch.setattr(acme_plcrun, "CLASH", clash, raising=False)
    with pytest.raises(RegistryError, match=r"table \[mqtt\] is claimed"):
        registered({"clash": "acme_plcrun:CLASH"})


def test_a_driver_that_cannot_be_loaded_is_named() -> None:
    with pytest.raises(RegistryError, match="driver 'ghost'"):
        registered({"ghost": "no_such_module_here:DRIVER"})


def test_pyproject_declares_the_builtin_drivers_in_the_entry_point_group() -> None:
    data = tomllib.loads((HERE.parents[1] / "pyproject.toml").read_text())
    assert data["project"]["entry-points"][ENTRY_POINT_GROUP] == BUILTIN
