"""The composition root: a site is built and run without the command line, its parts start and stop
in order, and a part that fails to start leaves nothing running."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from plcrun.cli_sim import run_simulation
from plcrun.compiler.api import compile_file
from plcrun.errors import PlcrunError
from plcrun.executor.clock import DEFAULT_SPIN_NS, PRODUCT_WAKE_TOLERANCE_NS, MonotonicClock, VirtualClock
from plcrun.io.registry import BuildContext, DriverType, SiteContext, Wiring, registered
from plcrun.io.sim.scenario_load import load_with_fleet_size
from plcrun.site import SiteRuntime

ROOT = Path(__file__).resolve().parent.parent
PLANT = ROOT / "tests" / "executor" / "programs" / "plant.st"


class Recorder:
    """A service that notes what it saw of the executor when started and stopped."""

    name = "recorder"

    def __init__(self, log: list[str], fail: bool) -> None:
        self.log, self.fail = log, fail

    def start(self, executor: Any) -> str:
        self.log.append(f"start: drivers started={executor._started}")
        if self.fail:
            raise PlcrunError("recorder: cannot listen")
        return "recorder ready"

    def stop(self) -> None:
        self.log.append("stop")


def recorder_driver(log: list[str]) -> DriverType[dict[str, Any]]:
    def check(tables: Mapping[str, Any], site: SiteContext) -> dict[str, Any] | None:
        reader = site.reader(tables, "recorder")
        if reader is None:
            return None
        fail = reader.boolean("fail", False)
        reader.finish()
        return {"fail": fail}

    def build(config: dict[str, Any], context: BuildContext) -> Wiring:
        return Wiring(services=[Recorder(log, config["fail"])])

    return DriverType("recorder", ("recorder",), check, build)


def test_the_simulated_site_runs_without_the_command_line() -> None:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    site = SiteRuntime.build(program, scenario="quiet_grid", evs=12, clock=VirtualClock())
    assert "simulation 'quiet_grid' (12 EVs)" in site.description
    with site:
        site.executor.run(max_scans=200)
        assert 49.9 < site.executor.read("main.grid_hz") < 50.1
        assert site.executor.read("main.n_evs") == 12  # the scenario's fleet size, a start-up parameter
        stats = site.executor.scheduler.stats.task(program.tasks[0].name)
        assert stats.scans == 200
    assert site.faulted == {}


def test_plcrun_sim_runs_its_scenario_on_the_composition_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """``plcrun sim`` (cli_sim.simulate, also each run of a sweep) builds its site with
    ``SiteRuntime``; the simulation driver's history, which the report reads, stays reachable."""
    program = compile_file(ROOT / "programs" / "freq_response.st")
    scenario = load_with_fleet_size("ocpp_curve", None)
    built: list[SiteRuntime] = []
    build = SiteRuntime.build

    def noted(*args: Any, **kwargs: Any) -> SiteRuntime:
        built.append(build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(SiteRuntime, "build", noted)
    site = run_simulation(program, scenario, show_progress=False)
    try:
        assert built == [site] and isinstance(site.executor.clock, VirtualClock)
        assert site.io.sim is not None and site.executor.clock.now_ns() >= scenario.duration_ns
        rows = len(site.io.sim.history().t_s)
        assert rows == scenario.n_steps or rows == scenario.n_steps + 1
    finally:
        site.stop()
    # by name through the registry, the simulation driver is reachable the same way
    named = SiteRuntime.build(program, scenario="ocpp_curve", clock=VirtualClock())
    assert named.io.sim is not None and named.io.sim in named.executor.drivers


def logged_shutdown(site: SiteRuntime, log: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    shutdown = site.executor.shutdown

    def noted() -> None:
        log.append("executor shutdown")
        shutdown()

    monkeypatch.setattr(site.executor, "shutdown", noted)


def test_services_start_after_the_executor_and_stop_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    drivers = {**registered(), "recorder": recorder_driver(log)}
    config = tmp_path / "site.toml"
    config.write_text("[recorder]\n")
    site = SiteRuntime.build(compile_file(PLANT), config=str(config), clock=VirtualClock(), drivers=drivers)
    logged_shutdown(site, log, monkeypatch)
    with site:
        assert site.started == ["recorder ready"]
        site.run_cycles(3)
        log.append("ran")
    assert log == ["start: drivers started=True", "ran", "stop", "executor shutdown"]


def test_a_part_that_fails_to_start_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    drivers = {**registered(), "recorder": recorder_driver(log)}
    config = tmp_path / "site.toml"
    config.write_text("[recorder]\nfail = true\n")
    site = SiteRuntime.build(compile_file(PLANT), config=str(config), clock=VirtualClock(), drivers=drivers)
    logged_shutdown(site, log, monkeypatch)
    with pytest.raises(PlcrunError, match="cannot listen"):
        site.start()
    # the failed service is not stopped (it never ran); the executor is shut down (outputs safe)
    assert log == ["start: drivers started=True", "executor shutdown"]


def test_the_waiting_mode_comes_from_the_arguments_then_the_site_file_then_plcrun_defaults(
    tmp_path: Path,
) -> None:
    program = compile_file(PLANT)
    site = SiteRuntime.build(program, io=False, clock=MonotonicClock())
    site.set_wait()
    clock = site.executor.clock
    assert isinstance(clock, MonotonicClock) and clock.tracker is not None
    assert (clock.tracker.tolerance_ns, clock.tracker.max_ns) == (PRODUCT_WAKE_TOLERANCE_NS, DEFAULT_SPIN_NS)

    site_file = tmp_path / "site.toml"
    site_file.write_text("[runtime]\nwake_tolerance_us = 0\nspin_budget_us = 300\n")
    site = SiteRuntime.build(program, config=str(site_file), clock=MonotonicClock())
    site.set_wait()
    clock = site.executor.clock
    assert isinstance(clock, MonotonicClock) and clock.tracker is not None
    assert (clock.tracker.tolerance_ns, clock.tracker.max_ns) == (0, 300_000)  # the file's
    site.set_wait(wake_tolerance_us=150)
    assert (clock.tracker.tolerance_ns, clock.tracker.max_ns) == (150_000, 300_000)  # the argument wins

    fixed = SiteRuntime.build(program, io=False, clock=MonotonicClock(spin_ns=200_000))
    fixed.set_wait()  # a bench's fixed spin stays unless a value is given
    assert fixed.executor.clock.spin_ns == 200_000  # type: ignore[attr-defined]
    virtual = SiteRuntime.build(program, io=False, clock=VirtualClock())
    virtual.set_wait(wake_tolerance_us=10)  # nothing to set: virtual time never waits
