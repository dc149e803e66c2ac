"""Fixtures of the simulation tests: scenarios written from TOML text into a temporary folder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so that `tests.io.sim.simrig` imports under plain `pytest` too
    sys.path.insert(0, str(ROOT))

from plcrun.io.sim import Scenario, load_scenario  # noqa: E402


@pytest.fixture
def scenario_from_text(tmp_path: Path) -> Callable[[str], Scenario]:
    def build(text: str, name: str = "case") -> Scenario:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return load_scenario(str(path))

    return build
