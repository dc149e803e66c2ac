"""Read endpoints of the dashboard API over HTTP (urllib) against a real executor with the simulated
site, in virtual time: the test runs exact numbers of scans between requests."""

from __future__ import annotations

import pytest
from dashboard_site import call, dashboard, get, site_executor, wait_for
from plcrun.compiler.api import compile_source
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor

BIG_FLEET = """
PROGRAM fleet
VAR
  grid_hz : LREAL := 50.0;
  evs : ARRAY[1..1000] OF EV_SESSION;
END_VAR
evs[1].p_setpoint_w := 1.0;
END_PROGRAM
"""


def test_statistics_count_the_scans_that_ran_with_histograms_and_watchdog_state() -> None:
    executor = site_executor()
    executor.run(max_scans=25)
    with dashboard(executor) as server:
        stats = get(server, "/api/stats")
        task = stats["tasks"]["DEFAULT"]
        assert task["scans"] == 25
        assert task["interval_ns"] == 10_000_000
        assert task["period_ns"]["count"] == 24
        assert task["period_ns"]["p99"] == 10_000_000  # virtual time: exact periods
        histogram = task["histogram"]
        assert len(histogram["wake_latency"]) == len(histogram["edges_ns"]) + 1
        assert sum(histogram["execution"]) == task["execution_ns"]["window"] == 25
        tasks = get(server, "/api/tasks")
        [entry] = tasks["tasks"]
        assert entry["name"] == "DEFAULT"
        assert entry["scans"] == 25
        assert entry["programs"] == ["main"]
        assert entry["supervisor"]["state"] == "running"
        assert entry["supervisor"]["consecutive_overruns"] == 0
        executor.run(max_scans=5)
        assert get(server, "/api/tasks")["tasks"][0]["scans"] == 30


def test_statistics_are_computed_once_per_ttl_for_all_clients() -> None:
    executor = site_executor()
    executor.run(max_scans=10)
    with dashboard(executor, stats_ttl_s=3600.0) as server:
        assert get(server, "/api/stats")["tasks"]["DEFAULT"]["scans"] == 10
        executor.run(max_scans=10)
        # within the TTL every client gets the same computed statistics
        assert get(server, "/api/stats")["tasks"]["DEFAULT"]["scans"] == 10
        assert get(server, "/api/tasks")["tasks"][0]["scans"] == 10


def test_variable_tree_lists_roots_then_children_on_demand() -> None:
    executor = site_executor()
    executor.run(max_scans=5)
    with dashboard(executor) as server:
        roots = get(server, "/api/variables")["variables"]
        assert [(r["path"], r["kind"]) for r in roots] == [("main", "program"), ("globals", "globals")]
        main = get(server, "/api/variables?prefix=main")
        by_path = {v["path"]: v for v in main["variables"]}
        assert by_path["main.scans"]["value"] == 5
        assert by_path["main.scans"]["writable"] is True
        assert by_path["main.gain_w_per_hz"]["constant"] is True
        assert by_path["main.gain_w_per_hz"]["writable"] is False
        assert by_path["main.site_mode"]["value"] == "CHARGE"
        assert by_path["main.hold"]["value"] == "T#2s"
        assert by_path["main.relay"]["location"] == "%QX0.0"
        evs = by_path["main.evs"]
        assert (evs["kind"], evs["children"], evs["type"]) == ("array", 4, "ARRAY[1..4] OF EV_SESSION")
        assert "value" not in evs  # structured nodes carry no values until expanded
        slots = get(server, "/api/variables?prefix=main.evs")["variables"]
        assert [s["path"] for s in slots] == [f"main.evs[{i}]" for i in range(1, 5)]
        assert all(s["kind"] == "struct" and s["children"] == 25 for s in slots)
        fields = get(server, "/api/variables?prefix=main.evs[2]")["variables"]
        soc = next(f for f in fields if f["name"] == "soc_pct")
        assert soc["value"] == 60.0
        assert soc["quality"] == "GOOD"  # a bound input: quality from the process image
        timer = get(server, "/api/variables?prefix=main.arm")["variables"]
        assert {"in", "pt", "q", "et"} <= {f["name"] for f in timer}
        assert next(f for f in timer if f["name"] == "pt")["value"] == "T#1s"


def test_a_thousand_ev_array_is_paged_and_never_sent_whole() -> None:
    executor = Executor(compile_source(BIG_FLEET, "fleet.st"), clock=VirtualClock())
    executor.run(max_scans=1)
    with dashboard(executor) as server:
        page = get(server, "/api/variables?prefix=fleet.evs&offset=990&limit=50")
        assert page["total"] == 1000
        assert [v["path"] for v in page["variables"]] == [f"fleet.evs[{i}]" for i in range(991, 1001)]
        whole = get(server, "/api/variable?path=fleet.evs")
        assert whole["value"] is None
        assert "25000 values" in whole["value_omitted"]
        one = get(server, "/api/variable?path=fleet.evs[1]")
        assert one["value"]["p_setpoint_w"] == 1.0
        assert len(call(server, "/api/variables?prefix=fleet.evs&limit=100000").body["error"]) > 0


def test_search_finds_names_inside_structures_fbs_and_array_elements() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        found = get(server, "/api/variables?q=soc")["variables"]
        assert [v["path"] for v in found] == ["main.evs"]
        assert found[0]["element_matches"] == [
            "[i].soc_pct",
            "[i].soc_age",
            "[i].min_soc_pct",
            "[i].target_soc_pct",
        ]
        arm = [v["path"] for v in get(server, "/api/variables?q=ARM")["variables"]]
        assert arm[0] == "main.arm" and "main.arm.q" in arm and "main.armed" in arm
        completions = [v["path"] for v in get(server, "/api/variables?q=main.evs[3].p_d")["variables"]]
        assert completions == ["main.evs[3].p_discharge_max_w", "main.evs[3].p_discharge_min_w"]
        exact = get(server, "/api/variables?q=%25QX0.0")["variables"]
        assert exact[0]["path"] == "main.relay"
        limited = get(server, "/api/variables?q=e&limit=3")
        assert len(limited["variables"]) == 3 and limited["truncated"] is True


def test_values_of_a_watch_list_in_one_request_with_errors_per_path() -> None:
    executor = site_executor()
    executor.run(max_scans=3)
    with dashboard(executor) as server:
        values = get(
            server, "/api/values?path=main.scans&path=MAIN.EVS[1].SOC_PCT&path=main.nope&path=main.evs"
        )
        got = values["values"]
        assert got["main.scans"]["value"] == 3
        assert got["MAIN.EVS[1].SOC_PCT"]["path"] == "main.evs[1].soc_pct"
        assert got["main.nope"] == {"error": "'main.nope': no variable 'nope'"}
        assert "not elementary" in got["main.evs"]["error"]


def test_unknown_paths_answer_404_with_the_reason() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        for path, reason in [
            ("main.nope", "no variable 'nope'"),
            ("main.evs[9]", "index 9 is outside 1..4"),
            ("nothing.x", "no program instance or configuration named 'nothing'"),
            ("main..x", "malformed variable path"),
            ("%IX7.7", "no variable is located at %IX7.7"),
        ]:
            reply = call(server, f"/api/variable?path={path}")
            assert reply.status == 404, path
            assert reason in reply.body["error"], reply.body
        reply = call(server, "/api/variables?prefix=main.scans.x")
        assert reply.status == 404
        assert call(server, "/api/variable").status == 400
        bad_offset = call(server, "/api/evs?offset=minus")
        assert bad_offset.status == 400
        assert bad_offset.body == {"error": "query parameter 'offset' must be an integer, got 'minus'"}


@pytest.mark.parametrize("endpoint", ["/api/nothing", "/api/tasks/DEFAULT"])
def test_unknown_endpoints_answer_json_404(endpoint: str) -> None:
    with dashboard(site_executor()) as server:
        reply = call(server, endpoint)
        assert reply.status == 404
        assert "no such endpoint" in reply.body["error"]


def test_io_status_and_data_quality_of_the_drivers() -> None:
    executor = site_executor()
    executor.run(max_scans=5)
    with dashboard(executor) as server:
        io = get(server, "/api/io")
        [sim] = io["drivers"]
        assert (sim["name"], sim["kind"], sim["connected"]) == ("sim", "sim", True)
        assert sim["points_by_quality"] == {"GOOD": 2}
        assert sim["counters"]["evs_connected"] == 3
        # meter frequency and power, 20 fields per slot of the scenario's three cars (slot 4 is unbound)
        assert io["inputs"]["total"] == 2 + 3 * 20
        assert io["inputs"]["by_quality"] == {"GOOD": 62}
        page = get(server, "/api/io/inputs?offset=0&limit=5")
        assert page["total"] == 62 and len(page["inputs"]) == 5
        assert all(i["driver"] == "sim" and i["quality"] == "GOOD" for i in page["inputs"])
        assert get(server, "/api/io/inputs?quality=bad")["total"] == 0
        assert call(server, "/api/io/inputs?quality=AWFUL").status == 400


def test_ev_table_shows_the_slots_in_use_with_quality() -> None:
    executor = site_executor()
    executor.run(max_scans=30)
    with dashboard(executor) as server:
        evs = get(server, "/api/evs")
        assert evs["available"] is True
        assert (evs["path"], evs["count_path"], evs["slots"], evs["in_use"]) == (
            "main.evs",
            "main.n_evs",
            4,
            3,
        )
        assert [r["index"] for r in evs["rows"]] == [1, 2, 3]
        row = evs["rows"][0]
        assert row["connected"] is True and row["soc_pct"] == 60.0 and row["quality"] == "GOOD"
        assert row["p_charge_max_w"] > 0 and row["soc_age_s"] >= 0
        summary = wait_for(lambda: get(server, "/api/evs")["summary"], what="the sampler's EV totals")
        assert summary["connected"] == 3
        page = get(server, "/api/evs?offset=1&limit=1")
        assert [r["index"] for r in page["rows"]] == [2]


def test_info_shows_the_site_parameters_the_program_was_started_with() -> None:
    executor = site_executor()
    executor.config.parameters = {"main.n_evs": 2}  # the program says 3
    executor.run(max_scans=2)
    with dashboard(executor) as server:
        assert get(server, "/api/info")["parameters"] == {"main.n_evs": 2}
        assert get(server, "/api/values?path=main.n_evs")["values"]["main.n_evs"]["value"] == 2
