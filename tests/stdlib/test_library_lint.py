"""The grid library and the site programs compile without a single diagnostic.

``plcrun check stdlib/grid_x.st`` cannot check a library file (the file is the library itself), so
the library files are compiled here as one user source, where every POU is checked and every
warning is reported, used or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.compiler.api import check_file, compile_source
from st_rig import PROGRAMS, STDLIB

GRID_FILES = sorted(STDLIB.glob("grid_*.st"))


def test_grid_library_files_exist() -> None:
    names = {p.name for p in GRID_FILES}
    assert {
        "grid_signal.st",
        "grid_frequency.st",
        "grid_ffr.st",
        "grid_ocpp.st",
        "grid_allocation.st",
    } <= names


def test_grid_library_compiles_as_user_code_without_diagnostics() -> None:
    parts = [STDLIB / "ev_session.st", STDLIB / "iec_standard.st", *GRID_FILES]
    text = "\n".join(p.read_text("utf-8") for p in parts)
    text += "\nPROGRAM lint\nVAR x : INT; END_VAR\nx := MAX_EVS + OCPP_MAX_CURVE_POINTS;\nEND_PROGRAM\n"
    program = compile_source(text, "grid_library_as_user_code.st", use_library=False)
    assert [f"{d.code} {d.message} at line {d.pos.line}" for d in program.diagnostics] == []


@pytest.mark.parametrize("path", sorted(PROGRAMS.glob("*.st")), ids=lambda p: Path(p).name)
def test_site_program_checks_clean(path: Path) -> None:
    diagnostics, _ = check_file(path)
    assert [f"{d.code} {d.message} at {d.pos.line}:{d.pos.col}" for d in diagnostics] == []
