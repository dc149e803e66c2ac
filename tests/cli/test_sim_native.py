"""``plcrun sim --native``: the report of a native run is byte for byte the interpreted one (a real
Cython + gcc build of programs/freq_response.st, -O0 to keep the suite fast), and without a C compiler
the run says why and goes on interpreted with the same report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = str(ROOT / "programs" / "freq_response.st")


def _report(folder: Path) -> dict[str, object]:
    files: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name == "report.json":
            data = json.loads(path.read_text())
            files[path.name] = {k: v for k, v in data.items() if not (isinstance(v, str) and "/" in v)}
        elif path.suffix in (".csv", ".svg", ".png"):
            files[path.name] = path.read_bytes()
    return files


@pytest.fixture
def native_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLCRUN_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PLCRUN_NATIVE_OPTIMISE", "-O0")
    return tmp_path


@pytest.mark.slow
def test_native_report_is_the_interpreted_one(native_env: Path) -> None:
    pytest.importorskip("Cython")
    interpreted = run_cli("sim", PROGRAM, "--scenario", "loss_of_grid", "--out", str(native_env / "i"))
    native = run_cli("sim", PROGRAM, "--scenario", "loss_of_grid", "--native", "--out", str(native_env / "n"))
    assert "native build not used" not in native.stderr, native.stderr
    assert list((native_env / "cache").glob("plcrun_native_*.so")), "no native build was made"
    assert (native.returncode, native.stdout.replace("/n", "/i")) == (
        interpreted.returncode,
        interpreted.stdout,
    )
    assert _report(native_env / "n") == _report(native_env / "i")


def test_without_a_c_compiler_it_says_so_and_runs_interpreted(
    native_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "no-such-c-compiler")
    interpreted = run_cli("sim", PROGRAM, "--scenario", "sensor_faults", "--out", str(native_env / "i"))
    native = run_cli(
        "sim", PROGRAM, "--scenario", "sensor_faults", "--native", "--out", str(native_env / "n")
    )
    assert "native build not used (" in native.stderr and "running interpreted" in native.stderr
    assert native.returncode == interpreted.returncode
    assert _report(native_env / "n") == _report(native_env / "i")
