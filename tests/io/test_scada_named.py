"""SCADA sees the site: freq_response.st's variables served by name through the register map of
examples/site_backhaul.toml ([server.registers]), read and written by mbpoll, the outside SCADA master."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import MonotonicClock
from plcrun.executor.engine import Executor
from plcrun.io.config_errors import ConfigError
from plcrun.io.registry import SiteContext, registered
from plcrun.io.scada_config import parse_server_config
from plcrun.io.scada_server import ScadaServer
from plcrun.io.site_config_reader import Problems

from tests.io.test_scada_server import mbpoll, mbpoll_read, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = compile_file(ROOT / "programs" / "freq_response.st")


def server_table() -> dict[str, object]:
    table = dict(tomllib.loads((ROOT / "examples" / "site_backhaul.toml").read_text())["server"])
    table["port"] = 0
    return table


@pytest.fixture
def site() -> Iterator[tuple[Executor, ScadaServer]]:
    executor = Executor(PROGRAM, clock=MonotonicClock())
    for path, value in {
        "main.n_evs": 2,
        "main.p_contracted_w": 10000.0,
        "main.evs[1].p_setpoint_w": -1234.0,
    }.items():
        executor.journal.write(path, value)
    server = ScadaServer(executor, parse_server_config(server_table(), "site_backhaul.toml"))
    thread = threading.Thread(target=executor.run, name="scada-site", daemon=True)
    thread.start()
    server.start()
    try:
        yield executor, server
    finally:
        server.stop()
        executor.stop()
        thread.join(10)
        executor.shutdown()


def test_mbpoll_reads_status_measurements_alarms_setpoints_and_parameters(
    site: tuple[Executor, ScadaServer],
) -> None:
    executor, server = site
    port = server.port
    wait_for(lambda: executor.read("main.status") == "ST_SAFE_MEASUREMENT")  # no meter: the safe state
    assert mbpoll_read(port, 0)[0] == "3"  # status ST_SAFE_MEASUREMENT
    result = mbpoll(port, "-B", "-r", "202", "-t", "4:float", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert "[202]: \t10000" in result.stdout  # p_contracted_w (float32, most significant first)
    assert mbpoll_read(port, 201)[201] == "1"  # service SVC_FCR
    assert mbpoll_read(port, 200)[200] == "1"  # enable
    # every session's setpoint is 0 W in the safe state (the -1234 written above did not survive a scan)
    assert mbpoll_read(port, 100, 2) == {100: "0", 101: "0"}
    # no meter yet: a warm-up, not an alarm (the program's flag, served as it is); loss of grid 0 too
    assert mbpoll_read(port, 41, 2) == {41: "0", 42: "0"}


def test_mbpoll_writes_service_parameters_and_read_only_ones_are_refused(
    site: tuple[Executor, ScadaServer],
) -> None:
    executor, server = site
    port = server.port
    wrote = mbpoll(port, "-B", "-r", "202", "-t", "4:float", "127.0.0.1", "14000")
    assert wrote.returncode == 0, wrote.stderr
    wait_for(lambda: executor.read("main.p_contracted_w") == 14000.0)
    assert mbpoll(port, "-r", "206", "127.0.0.1", "20").returncode == 0  # deadband 20 mHz (scale 1000)
    wait_for(lambda: abs(executor.read("main.deadband_hz") - 0.02) < 1e-9)
    assert mbpoll(port, "-r", "201", "127.0.0.1", "3").returncode == 0  # service SVC_FFR by number
    wait_for(lambda: executor.read("main.service") == "SVC_FFR")
    refused = mbpoll(port, "-r", "0", "127.0.0.1", "1")  # status is the program's: read only
    assert refused.returncode != 0
    assert "main.status" in server.last_refusal


def test_unknown_variables_in_the_register_map_are_named_with_their_key() -> None:
    table = server_table()
    table["registers"] = {"main.statsu": {"address": 0}, "main.status": {"address": 0, "type": "uint16"}}
    problems = Problems("site.toml")
    checker = registered()["scada"]
    context = SiteContext("site.toml", PROGRAM.catalog(), problems, PROGRAM)
    checker.check({"server": table}, context)
    with pytest.raises(ConfigError) as caught:
        problems.raise_if_any()
    assert "server.registers" in str(caught.value) and "did you mean 'main.status'" in str(caught.value)
