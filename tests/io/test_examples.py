"""The example site configurations stay valid for the shipped site program."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.site import SiteRuntime

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("site*.toml"))
compiled = functools.cache(compile_file)  # the examples share their programs; a site is built, never run


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_site_configuration_is_valid(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLCRUN_BUFFER_KEY", "00" * 32)
    monkeypatch.setenv("PLCRUN_OCPP_PASSWORD", "example-password-0123")
    monkeypatch.chdir(example.parent)
    first = example.read_text().splitlines()[0]
    named = first.removeprefix("# program:").strip() if first.startswith("# program:") else ""
    program = compiled(ROOT / (named or "programs/freq_response.st"))
    site = SiteRuntime.build(program, config=str(example), clock=VirtualClock(), gateway_id="example")
    assert site.executor.drivers, "an example should declare devices"
    for driver in site.executor.drivers:
        assert driver.input_paths() | driver.output_paths()


def test_the_examples_cover_every_part_of_a_site() -> None:
    text = "\n".join(e.read_text() for e in EXAMPLES)
    for table in ("[devices.", "[mqtt]", "[server]", "[ocpp]", "required_inputs"):
        assert table in text
