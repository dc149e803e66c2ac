"""``plcrun sim`` records the program's status once per scan for the report's availability: raw
values during the run, named once at the end. The list must be what reading the status by path after
every scan gives, scan for scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plcrun.cli_sim import run_simulation
from plcrun.compiler.api import compile_file
from plcrun.executor.scheduler import ScanRecord
from plcrun.io.sim.scenario_load import load_with_fleet_size
from plcrun.site import SiteRuntime

ROOT = Path(__file__).resolve().parents[2]


def test_the_recorded_status_is_the_status_read_after_every_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    program = compile_file(ROOT / "programs" / "freq_response.st")
    scenario = load_with_fleet_size("loss_of_grid", 4)
    read_by_path: list[str] = []
    build = SiteRuntime.build

    def observed(*args: Any, **kwargs: Any) -> SiteRuntime:
        site = build(*args, **kwargs)
        executor = site.executor

        def read(_scan: ScanRecord) -> None:
            read_by_path.append(str(executor.read("main.status")))

        executor.scheduler.add_scan_observer(read)
        return site

    monkeypatch.setattr(SiteRuntime, "build", observed)
    status: list[str] = []
    site = run_simulation(program, scenario, show_progress=False, status=status)
    site.stop()
    assert status == read_by_path
    assert len(status) >= scenario.duration_ns // 10_000_000
    assert len(set(status)) >= 2  # the status changes in this scenario (so an order mix-up shows)
