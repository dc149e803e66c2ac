"""What the chart and the EV table show: found in the program by type and name, or named
explicitly (checked at start), or reported missing with the reason the page shows."""

from __future__ import annotations

import pytest
from dashboard_site import dashboard, get, site_executor, wait_for
from plcrun.compiler.api import compile_source
from plcrun.dashboard import DashboardServer, DashboardViews, ViewError
from plcrun.dashboard.views import resolve_views
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor

PLAIN = """
PROGRAM plain
VAR counter : DINT; END_VAR
counter := counter + 1;
END_PROGRAM
"""

METER_AND_GLOBALS = """
TYPE CAR : STRUCT connected : BOOL; soc_pct : REAL; p_present_w : REAL; p_setpoint_w : REAL; END_STRUCT; END_TYPE
PROGRAM ctl
VAR
  meter : METER_READING;
  ev_count : INT := 2;
  freq_hz : REAL := 50.0;
END_VAR
VAR_EXTERNAL cars : ARRAY[0..3] OF CAR; sessions : ARRAY[1..2] OF EV_SESSION; END_VAR
meter.frequency_hz := 50.01;
meter.power_w := 1234.0;
cars[0].connected := TRUE;
cars[0].p_present_w := 500.0;
END_PROGRAM
CONFIGURATION site
  VAR_GLOBAL cars : ARRAY[0..3] OF CAR; sessions : ARRAY[1..2] OF EV_SESSION; END_VAR
  RESOURCE r ON PLC
    TASK t (INTERVAL := T#10ms, PRIORITY := 1);
    PROGRAM ctl WITH t : ctl;
  END_RESOURCE
END_CONFIGURATION
"""


def _executor(source: str) -> Executor:
    return Executor(compile_source(source, "prog.st"), clock=VirtualClock())


def test_views_are_found_by_type_and_name() -> None:
    views = resolve_views(site_executor().program, DashboardViews())
    assert (views.frequency_path, views.site_power_path) == ("main.grid_hz", "main.site_p_w")
    assert (views.ev_array_path, views.ev_count_path, views.ev_first_index, views.ev_slots) == (
        "main.evs",
        "main.n_evs",
        1,
        4,
    )
    assert views.missing == {}


def test_meter_reading_fields_win_over_weaker_names_and_globals_are_searched() -> None:
    views = resolve_views(_executor(METER_AND_GLOBALS).program, DashboardViews())
    assert views.frequency_path == "ctl.meter.frequency_hz"  # METER_READING beats 'freq_hz'
    assert views.site_power_path == "ctl.meter.power_w"
    assert views.ev_array_path == "site.sessions"  # only arrays of EV_SESSION are found
    assert views.ev_count_path is None  # ev_count is in another root than the array
    assert "every slot is shown" in views.missing["ev_count_path"]


def test_explicit_views_override_and_bad_ones_are_refused_at_start() -> None:
    executor = _executor(METER_AND_GLOBALS)
    views = resolve_views(
        executor.program,
        DashboardViews(frequency_path="CTL.freq_hz", ev_array_path="site.cars", ev_count_path="ctl.ev_count"),
    )
    assert (views.frequency_path, views.ev_array_path, views.ev_first_index, views.ev_slots) == (
        "ctl.freq_hz",
        "site.cars",
        0,
        4,
    )
    for views_arg, message in [
        (
            DashboardViews(frequency_path="ctl.nope"),
            "DashboardViews.frequency_path: 'ctl.nope': no variable 'nope'",
        ),
        (
            DashboardViews(site_power_path="ctl.meter"),
            "DashboardViews.site_power_path: 'ctl.meter' is METER_READING, not a number",
        ),
        (
            DashboardViews(ev_array_path="ctl.freq_hz"),
            "DashboardViews.ev_array_path: 'ctl.freq_hz' is not a one-dimensional array of structures",
        ),
        (
            DashboardViews(ev_count_path="ctl.freq_hz"),
            "DashboardViews.ev_count_path: 'ctl.freq_hz' is REAL, not an integer",
        ),
    ]:
        with pytest.raises(ViewError) as raised:
            DashboardServer(executor, views=views_arg)
        assert str(raised.value) == message
    with pytest.raises(ViewError, match="sample_hz"):
        DashboardViews(sample_hz=0)


def test_custom_ev_structure_feeds_table_and_chart_totals() -> None:
    executor = _executor(METER_AND_GLOBALS)
    executor.run(max_scans=3)
    views = DashboardViews(ev_array_path="site.cars", ev_count_path="ctl.ev_count")
    with dashboard(executor, views=views) as server:
        evs = get(server, "/api/evs")
        assert (evs["slots"], evs["in_use"]) == (4, 2)
        assert [r["index"] for r in evs["rows"]] == [0, 1]
        assert evs["rows"][0]["connected"] is True and "p_charge_max_w" not in evs["rows"][0]
        assert evs["rows"][0]["quality"] == "UNBOUND"  # no driver feeds these slots
        chart = wait_for(lambda: get(server, "/api/chart")["rows"], what="a chart sample")
        _, _, hz, site_w, ev_w, ev_set, connected = chart[-1]
        assert (hz, site_w, ev_w, ev_set, connected) == (pytest.approx(50.01), 1234.0, 500.0, 0.0, 1)


def test_missing_views_are_explained() -> None:
    executor = _executor(PLAIN)
    executor.run(max_scans=2)
    with dashboard(executor) as server:
        missing = get(server, "/api/info")["views"]["missing"]
        assert set(missing) == {"frequency_path", "site_power_path", "ev_array_path"}
        assert "set DashboardViews.frequency_path" in missing["frequency_path"]
        evs = get(server, "/api/evs")
        assert evs == {"available": False, "missing": missing["ev_array_path"]}
        chart = wait_for(lambda: get(server, "/api/chart")["rows"], what="a chart sample")
        assert chart[-1][2:] == [None, None, None, None, None]
        assert set(get(server, "/api/chart")["missing"]) == set(missing)


def test_chart_only_samples_while_the_executor_scans() -> None:
    executor = site_executor()
    executor.run(max_scans=5)
    with dashboard(executor) as server:
        first = wait_for(lambda: get(server, "/api/chart")["rows"], what="a first sample")
        assert len(first) == 1
        server.sampler.sample_now()
        server.sampler.sample_now()
        assert get(server, "/api/chart")["last_seq"] == 1  # no scans, no new samples
        executor.run(max_scans=5)
        server.sampler.sample_now()
        chart = get(server, "/api/chart?since=1")
        assert [row[0] for row in chart["rows"]] == [2]
        assert chart["rows"][0][6] == 3  # three cars connected
