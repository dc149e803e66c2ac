"""The HTTP server itself: the page's files, loopback binding and Host check, keep-alive and stop,
and a dashboard on an executor scanning in real time (no timing asserted: polls with timeouts)."""

from __future__ import annotations

import http.client
import socket

import pytest
from dashboard_site import TOKEN, call, dashboard, get, running, site_executor, wait_for
from plcrun.dashboard import DashboardServer


def test_the_page_and_its_files_are_served_locally() -> None:
    with dashboard(site_executor()) as server:
        page = call(server, "/")
        assert page.status == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "/static/app.js" in page.body and "/static/style.css" in page.body
        assert "http://" not in page.body and "https://" not in page.body  # nothing from elsewhere
        script = call(server, "/static/app.js")
        assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
        assert "default-src 'self'" in script.headers["Content-Security-Policy"]
        assert call(server, "/static/style.css").status == 200
        for path in ["/static/../server.py", "/static/nothing.js", "/server.py"]:
            reply = call(server, path)
            assert reply.status == 404, path
            assert reply.body["error"].startswith("no such page")


def test_binds_loopback_by_default_and_refuses_foreign_host_names() -> None:
    with dashboard(site_executor()) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert get(server, "/api/info")["program"].endswith("ev_site.st")
        localhost = call(server, "/api/info", headers={"Host": f"localhost:{server.port}"})
        assert localhost.status == 200
        rebinding = call(server, "/api/info", headers={"Host": "attacker.example:8080"})
        assert rebinding.status == 403
        assert "loopback names only" in rebinding.body["error"]


def test_constructor_checks_its_arguments() -> None:
    executor = site_executor()
    with pytest.raises(ValueError, match="token must not be empty"):
        DashboardServer(executor, token="  ")
    with pytest.raises(ValueError, match=r"port must be in 0\.\.65535"):
        DashboardServer(executor, port=70000)
    with pytest.raises(ValueError, match=r"poll_ms must be in 50\.\.10000"):
        DashboardServer(executor, poll_ms=1)


def test_a_taken_port_is_reported_and_stop_closes_kept_alive_connections() -> None:
    executor = site_executor()
    with dashboard(executor) as server:
        clash = DashboardServer(executor, port=server.port)
        with pytest.raises(OSError):
            clash.start()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/api/info")
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and first.getheader("Connection") != "close"
        connection.request("GET", "/api/tasks")  # the same connection, kept alive
        second = connection.getresponse()
        second.read()
        assert second.status == 200
        port = server.port
    # after stop the kept-alive connection is closed and nothing listens any more
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/api/info")
        connection.getresponse()
    connection.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_dashboard_follows_an_executor_scanning_in_real_time() -> None:
    executor = site_executor(virtual=False)
    with running(executor), dashboard(executor) as server:
        first = wait_for(lambda: get(server, "/api/tasks")["tasks"][0]["scans"], what="first scans")
        wait_for(lambda: get(server, "/api/tasks")["tasks"][0]["scans"] > first + 5, what="more scans")
        assert wait_for(lambda: get(server, "/api/tasks")["scanning"], what="scanning flag")
        chart = wait_for(lambda: get(server, "/api/chart")["rows"], what="chart samples")
        assert all(49.9 < row[2] < 50.1 for row in chart)  # grid_hz from the simulated meter
        reply = call(server, "/api/force", {"path": "main.grid_hz", "value": 49.5}, token=TOKEN)
        assert reply.status == 202
        wait_for(
            lambda: get(server, "/api/variable?path=main.under_frequency")["value"] is True,
            what="the forced frequency to reach the program",
        )
        since = get(server, "/api/chart")["last_seq"]
        rows = wait_for(lambda: get(server, f"/api/chart?since={since}")["rows"], what="newer samples")
        assert all(row[0] > since for row in rows)
        wait_for(lambda: get(server, f"/api/chart?since={rows[-1][0]}")["rows"], what="forced samples")
        forced = get(server, f"/api/chart?since={rows[-1][0]}")["rows"]
        assert forced[-1][2] == 49.5
