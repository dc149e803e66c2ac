"""Commands through the dashboard API: token checks, value checks, writes and forces through the
executor's journal (applied at the next scan), releases, statistics reset and task restart. Virtual
time: the test decides when the scans that apply the commands run."""

from __future__ import annotations

import http.client

import pytest
from dashboard_site import TOKEN, call, dashboard, get, site_executor


def _value(server: object, path: str) -> object:
    return get(server, f"/api/variable?path={path}")["value"]  # type: ignore[arg-type]


def test_without_a_token_configured_the_dashboard_is_read_only() -> None:
    executor = site_executor()
    executor.run(max_scans=2)
    with dashboard(executor, token=None) as server:
        assert get(server, "/api/info")["writes_enabled"] is False
        for endpoint, body in [
            ("/api/write", {"path": "main.mode", "value": 5}),
            ("/api/force", {"path": "main.grid_hz", "value": 49.0}),
            ("/api/release", {"all": True}),
            ("/api/stats/reset", {}),
            ("/api/tasks/DEFAULT/restart", {}),
        ]:
            reply = call(server, endpoint, body, token="anything")
            assert reply.status == 403, endpoint
            assert reply.body == {
                "error": "the dashboard is read-only: start it with a token to allow writes and forces"
            }
        executor.run(max_scans=2)
        assert _value(server, "main.mode") == 1
        assert executor.journal.entries() == []


def test_a_missing_or_wrong_token_is_refused() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        missing = call(server, "/api/write", {"path": "main.mode", "value": 5})
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert "a token is needed" in missing.body["error"]
        wrong = call(server, "/api/write", {"path": "main.mode", "value": 5}, token="guess")
        assert (wrong.status, wrong.body) == (401, {"error": "wrong token"})
        executor.run(max_scans=1)
        assert _value(server, "main.mode") == 1


def test_a_write_is_queued_and_applied_at_the_next_scan_with_the_dashboard_as_source() -> None:
    executor = site_executor()
    executor.run(max_scans=2)
    with dashboard(executor) as server:
        reply = call(server, "/api/write", {"path": "MAIN.Mode", "value": "12"}, token=TOKEN)
        assert reply.status == 202
        assert reply.body == {"queued": True, "action": "write", "path": "main.mode", "value": 12}
        assert _value(server, "main.mode") == 1  # nothing changes between scans
        executor.run(max_scans=1)
        assert _value(server, "main.mode") == 12
        for path, value, shown in [
            ("main.site_mode", "v2g", "V2G"),
            ("main.hold", "1.5s", "T#1s500ms"),
            ("main.label", "site B", "site B"),
            ("main.under_frequency", "TRUE", True),
            ("%QX0.0", 1, True),
        ]:
            assert call(server, "/api/write", {"path": path, "value": value}, token=TOKEN).status == 202
            executor.run(max_scans=1)
            if path.startswith("main.under") or path.startswith("%"):
                continue  # the program recomputes these every scan
            assert _value(server, path) == shown
        journal = get(server, "/api/journal")["entries"]
        assert journal[-1] == {
            "time": journal[-1]["time"],
            "action": "write",
            "path": "main.mode",
            "value": 12,
            "source": "dashboard",
            "result": "ok",
        }
        assert {e["source"] for e in journal} == {"dashboard"}


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("main.mode", 70000, "main.mode: 70000 is outside -32768..32767 (INT)"),
        ("main.mode", "twelve", "main.mode: 'twelve' is not an integer (INT)"),
        ("main.mode", 1.5, "main.mode: 1.5 is not an integer"),
        ("main.grid_hz", "fast", "main.grid_hz: 'fast' is not a number"),
        ("main.grid_hz", True, "main.grid_hz: True is not a number"),
        ("main.site_p_w", "1e40", "main.site_p_w: '1e40' is too large for a REAL"),
        ("main.under_frequency", "maybe", "main.under_frequency: 'maybe' is not a BOOL: use TRUE or FALSE"),
        ("main.hold", "soon", "malformed"),
        (
            "main.site_mode",
            "TURBO",
            "main.site_mode: 'TURBO' is not a value of SITE_MODE (IDLE, CHARGE, V2G)",
        ),
        ("main.label", "x" * 81, "the text has 81 characters; STRING holds at most 80"),
        ("main.evs[1]", 1, "'main.evs[1]' is a struct (EV_SESSION); write its elements one by one"),
        ("main.arm", 1, "'main.arm' is a fb (TON)"),
        ("main.gain_w_per_hz", 1.0, "'main.gain_w_per_hz' is a CONSTANT"),
        ("main", 1, "'main' is a program instance, not a variable"),
        ("main.mode", None, "a value is needed for INT"),
    ],
)
def test_bad_values_are_refused_with_400_and_nothing_is_queued(path: str, value: object, reason: str) -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        reply = call(server, "/api/write", {"path": path, "value": value}, token=TOKEN)
        assert reply.status == 400, reply.body
        assert reason in reply.body["error"]
        executor.run(max_scans=1)
        assert executor.journal.entries() == []


def test_bad_requests_get_clear_errors() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        no_path = call(server, "/api/write", {"value": 1}, token=TOKEN)
        assert (no_path.status, no_path.body["error"]) == (
            400,
            "'path' must be a variable path such as main.grid_hz",
        )
        no_value = call(server, "/api/write", {"path": "main.mode"}, token=TOKEN)
        assert (no_value.status, no_value.body["error"]) == (400, "'value' is missing")
        unknown = call(server, "/api/force", {"path": "main.nope", "value": 1}, token=TOKEN)
        assert (unknown.status, unknown.body["error"]) == (404, "'main.nope': no variable 'nope'")
        empty = call(server, "/api/write", None, token=TOKEN, method="POST")
        assert (empty.status, empty.body["error"]) == (
            400,
            "'path' must be a variable path such as main.grid_hz",
        )
        get_on_post = call(server, "/api/write")
        assert get_on_post.status == 405
        assert get_on_post.headers["Allow"] == "POST"
        assert call(server, "/api/stats", {}, token=TOKEN).status == 405


def test_malformed_bodies() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        for body, content_type, status, reason in [
            (b"{not json", "application/json", 400, "the request body is not valid JSON"),
            (b'{"path": ' * 5000 + b"1" + b"}" * 5000, "application/json", 400, "nested more than 32 levels"),
            (
                b'{"path": "main.mode", "value": ' + b"9" * 400 + b"}",
                "application/json",
                400,
                "has 400 digits",
            ),
            (b"[1, 2]", "application/json", 400, "the request body must be a JSON object"),
            (b'{"path": "main.mode", "value": 3}', "text/plain", 415, "send the body as application/json"),
        ]:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            headers = {"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"}
            connection.request("POST", "/api/write", body=body, headers=headers)
            reply = connection.getresponse()
            text = reply.read().decode()
            connection.close()
            assert reply.status == status, text
            assert reason in text


def test_force_changes_the_programs_behaviour_until_released() -> None:
    executor = site_executor()
    executor.run(max_scans=10)
    with dashboard(executor) as server:
        assert _value(server, "main.under_frequency") is False
        reply = call(server, "/api/force", {"path": "main.grid_hz", "value": 49.5}, token=TOKEN)
        assert reply.status == 202
        executor.run(max_scans=3)
        values = get(server, "/api/values?path=main.grid_hz&path=main.droop_w&path=main.under_frequency")
        got = values["values"]
        assert got["main.grid_hz"]["forced"] is True and got["main.grid_hz"]["value"] == 49.5
        assert got["main.droop_w"]["value"] == pytest.approx(-50_000.0)
        assert got["main.under_frequency"]["value"] is True
        assert _value(server, "%QX0.0") is True
        setpoints = [r["p_setpoint_w"] for r in get(server, "/api/evs")["rows"]]
        assert setpoints == [pytest.approx(-11_000.0)] * 3  # -50 kW over 3 cars, each at its limit
        assert get(server, "/api/journal")["forces"] == {"main.grid_hz": 49.5}
        released = call(server, "/api/release", {"path": "MAIN.grid_hz"}, token=TOKEN)
        assert released.status == 202 and released.body["path"] == "main.grid_hz"
        executor.run(max_scans=3)
        after = get(server, "/api/values?path=main.grid_hz&path=main.under_frequency")["values"]
        assert after["main.grid_hz"]["forced"] is False
        assert after["main.grid_hz"]["value"] == pytest.approx(50.0, abs=0.05)  # the meter's value again
        assert after["main.under_frequency"]["value"] is False
        again = call(server, "/api/release", {"path": "main.grid_hz"}, token=TOKEN)
        assert (again.status, again.body) == (409, {"error": "'main.grid_hz' is not forced"})


def test_release_all_releases_every_force() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        for path, value in [("main.mode", 4), ("main.site_p_w", 123.0)]:
            assert call(server, "/api/force", {"path": path, "value": value}, token=TOKEN).status == 202
        executor.run(max_scans=1)
        assert set(get(server, "/api/journal")["forces"]) == {"main.mode", "main.site_p_w"}
        reply = call(server, "/api/release", {"all": True}, token=TOKEN)
        assert reply.body["paths"] == ["main.mode", "main.site_p_w"]
        executor.run(max_scans=1)
        assert get(server, "/api/journal")["forces"] == {}


def test_statistics_reset_happens_at_a_scan_boundary() -> None:
    executor = site_executor()
    executor.run(max_scans=20)
    with dashboard(executor) as server:
        reply = call(server, "/api/stats/reset", {}, token=TOKEN)
        assert reply.status == 202
        assert get(server, "/api/stats")["tasks"]["DEFAULT"]["scans"] == 20  # not yet
        executor.run(max_scans=4)
        stats = get(server, "/api/stats")
        assert stats["resets"] == 1
        assert stats["tasks"]["DEFAULT"]["scans"] == 3  # reset after the first of the four scans


def test_a_faulted_task_raises_an_alarm_and_restarts_from_the_dashboard() -> None:
    executor = site_executor()
    executor.run(max_scans=5)
    with dashboard(executor) as server:
        running = call(server, "/api/tasks/DEFAULT/restart", {}, token=TOKEN)
        assert (running.status, running.body["error"]) == (
            409,
            "task 'DEFAULT' is running; only a faulted task is restarted",
        )
        unknown = call(server, "/api/tasks/nope/restart", {}, token=TOKEN)
        assert (unknown.status, unknown.body["error"]) == (404, "no task named 'nope' (tasks: DEFAULT)")
        assert call(server, "/api/write", {"path": "main.divisor", "value": 0}, token=TOKEN).status == 202
        executor.run(max_scans=2)
        task = get(server, "/api/tasks")["tasks"][0]
        assert task["supervisor"]["state"] == "faulted"
        assert "division by zero" in task["supervisor"]["message"]
        alarms = get(server, "/api/alarms")
        [alarm] = alarms["active"]
        assert (alarm["key"], alarm["severity"], alarm["active"]) == ("task:DEFAULT", "critical", True)
        reply = call(server, "/api/tasks/DEFAULT/restart", {}, token=TOKEN)
        assert reply.status == 202 and reply.body["queued"] is True
        executor.run(max_scans=3)  # the restart runs on the scan thread after a scan
        task = get(server, "/api/tasks")["tasks"][0]
        assert task["supervisor"]["state"] == "running"
        assert task["supervisor"]["faults"] == 1
        assert _value(server, "main.divisor") == 1  # cold restart: initial values
        alarms = get(server, "/api/alarms")
        assert alarms["active"] == []
        assert [a["active"] for a in alarms["history"][:2]] == [False, True]  # newest first
