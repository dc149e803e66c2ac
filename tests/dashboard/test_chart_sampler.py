"""The chart sampler's thread samples only while a client is there: with nobody asking it waits
without a timeout; a request wakes it and takes a current sample itself. Presence is judged on an
injected clock, so 'nobody asked for 30 s' takes no real time."""

from __future__ import annotations

from dashboard_site import site_executor, wait_for
from plcrun.dashboard.chart import CLIENT_GONE_S, ChartSampler
from plcrun.dashboard.views import DashboardViews, resolve_views


def test_the_sampler_waits_for_a_client_and_parks_again_when_it_is_gone() -> None:
    executor = site_executor()
    executor.run(max_scans=5)
    now = [1000.0]
    gate = executor.slack_gate()
    views = resolve_views(executor.program, DashboardViews())
    sampler = ChartSampler(executor, views, 10.0, 60.0, gate, monotonic=lambda: now[0])

    def request() -> None:  # what the server does for every request
        gate.enter()
        try:
            sampler.client_seen()
        finally:
            gate.leave()

    sampler.start()
    thread = sampler._thread
    assert thread is not None
    try:
        wait_for(lambda: sampler.parked, what="the sampler parked with nobody there")
        assert sampler.wakeups == 0 and sampler.since(0)["rows"] == []
        assert not sampler.scanning  # nothing seen yet

        request()  # a page opens: the request samples at once and wakes the thread
        assert [row[0] for row in sampler.since(0)["rows"]] == [1]
        assert sampler.scanning and sampler.latest_evs["connected"] == 3
        wait_for(lambda: sampler.wakeups >= 3, what="periodic samples while the client is there")
        assert not sampler.parked

        now[0] += CLIENT_GONE_S - 0.1  # still within the presence window
        assert sampler.watched()
        now[0] += 0.1  # nobody asked for CLIENT_GONE_S: it parks after its current period
        wait_for(lambda: sampler.parked, what="parked again")
        assert not sampler.scanning  # no new scans for more than a second (injected clock)

        executor.run(max_scans=5)
        request()  # the scans went on while parked: the next request sees them at once
        chart = sampler.since(1)
        assert [row[0] for row in chart["rows"]] == [2] and sampler.scanning

        now[0] += 2 * CLIENT_GONE_S
        wait_for(lambda: sampler.parked, what="parked again")
        request()  # a page opened after the executor stopped scanning: shown stopped at once
        assert sampler.since(2)["rows"] == [] and not sampler.scanning
    finally:
        sampler.stop()  # also wakes a parked thread
    assert not thread.is_alive()
    executor.shutdown()
