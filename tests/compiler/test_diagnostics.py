"""Golden diagnostics: each ``diagnostics/*.st`` must produce exactly the rendered messages in the
``.expected`` file beside it (positions, codes, source line, caret and hint)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from plcrun.compiler.api import check_source
from plcrun.compiler.diagnostics import SHOWN_CHARS

from tests.support.cli import run_cli

HERE = Path(__file__).parent / "diagnostics"
CASES = sorted(HERE.glob("*.st"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_diagnostics(case: Path) -> None:
    diagnostics, sources = check_source(case.read_text(), case.name)
    rendered = "\n".join(d.render(sources.get(d.pos.file)) for d in diagnostics) + "\n"
    assert rendered == case.with_suffix(".expected").read_text()
    assert any(d.is_error for d in diagnostics), "every golden case must contain at least one error"


def _plcrun(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args)  # in this process: check and run --cycles are not real-time commands


def test_check_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.st"
    good.write_text("PROGRAM good VAR x : INT; END_VAR x := x + 1; END_PROGRAM\n")
    bad = HERE / "types.st"
    ok = _plcrun("check", str(good))
    assert ok.returncode == 0, ok.stderr
    failed = _plcrun("check", str(bad))
    assert failed.returncode == 1
    assert "types.st:13:6: error[E0201]: cannot assign REAL to INT implicitly" in failed.stderr
    assert "Traceback" not in failed.stderr
    missing = _plcrun("check", str(tmp_path / "nope.st"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
    bad_option = _plcrun("check", "--frobnicate", str(good))
    assert bad_option.returncode == 2


def test_run_reports_runtime_fault_with_st_line(tmp_path: Path) -> None:
    source = tmp_path / "fault.st"
    source.write_text(
        "PROGRAM fault\nVAR a : ARRAY[1..3] OF INT; i : INT := 2; d : INT; END_VAR\n"
        "i := i + 1;\n"
        "a[i] := 1;\n"
        "d := 10 / (i - 4);\n"
        "END_PROGRAM\n"
    )
    result = _plcrun("run", str(source), "--cycles", "5", "--json")
    assert result.returncode == 1
    assert f"{source}:4: runtime fault: array index 4 is outside 1..3" in result.stderr
    assert "Traceback" not in result.stderr


def test_for_loop_past_the_array_bounds_faults_at_the_access(tmp_path: Path) -> None:
    source = tmp_path / "loop_fault.st"
    source.write_text(
        "TYPE Cell : STRUCT v : INT; END_STRUCT; END_TYPE\n"
        "PROGRAM loop_fault\nVAR cells : ARRAY[1..4] OF Cell; n : INT := 4; i : INT; total : INT; END_VAR\n"
        "n := n + 1;\n"
        "FOR i := 1 TO n DO\n"
        "  total := total + cells[i].v;\n"
        "END_FOR;\n"
        "END_PROGRAM\n"
    )
    result = _plcrun("run", str(source), "--cycles", "2", "--json")
    assert result.returncode == 1
    assert f"{source}:6: runtime fault: array index 5 is outside 1..4" in result.stderr


def test_a_long_line_is_shown_around_the_column() -> None:
    """Of a line longer than SHOWN_CHARS, the part around the caret, cut with '...' (a joined or generated
    line can be 100 KB; the caret stays under the token, tabs count as one column)."""
    middle = "x := 1;\t" * 1500 + "x := y; " + "x := 2; " * 1500
    for line, col in ((middle, 12_001 + 5), ("x := y; " + "x := 1; " * 3000, 6)):
        text = f"PROGRAM p VAR x : INT; END_VAR\n{line}\nEND_PROGRAM\n"
        diagnostics, sources = check_source(text, "long.st")
        (unknown,) = [d for d in diagnostics if d.code == "E0101"]
        assert (unknown.pos.line, unknown.pos.col) == (2, col)
        headline, shown, caret = unknown.render(sources["long.st"]).splitlines()
        assert headline == f"long.st:2:{col}: error[E0101]: unknown identifier 'y'"
        assert len(shown) <= 8 + SHOWN_CHARS + 6 and shown.startswith("    2 | ")
        assert shown.endswith("...") and shown[8:].startswith("...") == (col > SHOWN_CHARS)
        assert shown[caret.index("^")] == "y" and caret.count("^") == 1
