"""The report folder of ``plcrun sim``: JSON with the paths, the time series and the cars as CSV,
the picture with matplotlib (reference lines, labelled axes) or the SVG fallback, and an HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plcrun.io.sim import evaluate, load_scenario
from plcrun.io.sim import report_files as report_files_module
from plcrun.io.sim.report_files import write_report

from tests.io.sim.simrig import fcr_controller, run_closed_loop

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(name: str) -> tuple[object, ...]:
    scenario = load_scenario(name)
    history = run_closed_loop(scenario, fcr_controller()).history()
    return scenario, history, evaluate(history, scenario)


def test_report_folder_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    scenario, history, report = run("fcr_static")
    data = write_report(tmp_path, "fcr test", scenario, history, report)  # type: ignore[arg-type]
    picture = Path(str(data["picture"]))
    assert picture.name == "report.png" and picture.read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((tmp_path / "report.json").read_text())["series_csv"] == str(tmp_path / "series.csv")
    html = (tmp_path / "report.html").read_text()
    assert "fcr test: <span" in html and 'src="report.png"' in html
    assert html.count("<tr") >= len(report.checks) + len(report.metrics)  # type: ignore[attr-defined]
    cars = data["cars"]
    assert isinstance(cars, list) and len(cars) == len(history.min_soc_pct)  # type: ignore[attr-defined]


def test_the_matplotlib_picture_has_its_reference_lines(tmp_path: Path) -> None:
    """The figure itself, inspected when it is saved: labelled axes, the nominal, deadband, trigger
    and full-activation lines, the point checks, and the trigger and activation-time marks."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    from plcrun.io.sim import mpl_plot

    scenario, history, report = run("fcr_static")
    labels: list[str] = []
    ylabels: list[str] = []
    texts: list[str] = []

    def savefig(self: Figure, *args: object, **kwargs: object) -> None:
        for ax in self.axes:
            ylabels.append(ax.get_ylabel())
            labels.extend(text.get_text() for text in ax.get_legend().get_texts())
            texts.extend(text.get_text() for text in ax.texts)
        texts.append(self.axes[-1].get_xlabel())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", savefig)
        mpl_plot.write_png(history, tmp_path / "p.png", "t", scenario, report.metrics)  # type: ignore[arg-type, attr-defined]
    assert ylabels == ["frequency (Hz)", "power (kW, + = import / charging)", "SoC (%)"]
    for expected in (
        "nominal 50 Hz",
        "deadband ±0.01 Hz",
        "trigger 49.99 Hz",
        "full at ±0.2 Hz",
        "point checks (± tol)",
    ):
        assert expected in labels, labels
    assert "scenario time (s)" in texts
    assert any(t.startswith("trigger 10 s, response after 0 scans") for t in texts), texts
    assert any(t.startswith("full activation within 30 s: reached after") for t in texts), texts


def test_svg_fallback_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_files_module, "matplotlib_available", lambda: False)
    scenario, history, report = run("transformer_limit")
    data = write_report(tmp_path, "no mpl", scenario, history, report, status=["ST_NORMAL"] * 5)  # type: ignore[arg-type]
    assert Path(str(data["picture"])).read_text().startswith("<svg")
    header, first = (tmp_path / "series.csv").read_text().splitlines()[:2]
    assert header.endswith(",status") and first.endswith(",ST_NORMAL")
    assert 'src="report.svg"' in (tmp_path / "report.html").read_text()
