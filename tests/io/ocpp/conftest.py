"""Fixtures of the OCPP tests: a CSMS on 127.0.0.1 built on the ``ocpp`` package, and station drivers
that are stopped at teardown."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # so that `tests.support` imports under plain `pytest` too
    sys.path.insert(0, str(ROOT))
HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from rig import Site, make_config  # noqa: E402

from tests.support.csms import Csms  # noqa: E402

SiteFactory = Callable[..., Site]


@pytest.fixture(params=["2.0.1", "2.1"])
def csms(request: pytest.FixtureRequest) -> Iterator[Csms]:
    with Csms(versions=(request.param,)) as running:
        yield running


@pytest.fixture
def csms21() -> Iterator[Csms]:
    with Csms(versions=("2.1",)) as running:
        yield running


@pytest.fixture
def start_site(tmp_path: Path) -> Iterator[SiteFactory]:
    started: list[Site] = []

    def factory(url: str, **overrides: Any) -> Site:
        site = Site(make_config(tmp_path, url, **overrides))
        started.append(site)
        return site

    yield factory
    for site in started:
        site.close()
