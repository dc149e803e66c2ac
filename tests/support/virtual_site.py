"""A site built from its site file as ``plcrun run`` builds it, run in virtual time by the test.

The executor runs on a ``VirtualClock``, the device threads on a ``ManualTime`` that follows it scan
by scan. Before each scan the device threads settle (a request takes no virtual time, however long
the peer takes to answer in real time), so what the site sees depends on what the peers answer,
never on how the machine schedules the test's threads and processes; the watchdog measures the
scans' virtual durations, so a loaded machine cannot fault the task either."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from plcrun.compiler.api import compile_file
from plcrun.executor.clock import ManualTime, VirtualClock
from plcrun.site import SiteRuntime

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
SCAN_NS = 10 * MS  # freq_response.st's task
WORKERS = (
    5  # examples/site.toml: the meter's and the two chargers' device threads, the chargers' setpoint threads
)


class VirtualSite:
    """``programs/freq_response.st`` with ``config``; ``before_scan(now_ns)``, if given, runs at each
    scan's virtual time before the device threads settle (e.g. a step of emulated devices' physics);
    ``workers``: the device threads the site file makes; ``build``: more of ``SiteRuntime.build``'s
    options (``scenario``, ``set_options``)."""

    def __init__(
        self,
        config: Path,
        before_scan: Callable[[int], None] | None = None,
        workers: int = WORKERS,
        **build: Any,
    ) -> None:
        self.time = ManualTime()
        self.site = SiteRuntime.build(
            compile_file(ROOT / "programs" / "freq_response.st"),
            config=str(config),
            clock=VirtualClock(),
            worker_time=self.time,
            **build,
        )
        self.executor = self.site.executor
        self.before_scan = before_scan
        self.workers = workers
        self.scans = 0

    def __enter__(self) -> VirtualSite:
        self.site.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.site.stop()

    def scan(self) -> None:
        self.time.advance(self.scans * SCAN_NS - self.time.now_ns())
        if self.before_scan is not None:
            self.before_scan(self.time.now_ns())
        self.time.settle(self.workers)
        self.executor.run(max_scans=1)
        self.scans += 1

    def run_until(self, condition: Callable[[], object], within_s: float) -> None:
        """Scan until ``condition()`` holds; fail when ``within_s`` of virtual time pass first."""
        for _ in range(round(within_s * 1e9 / SCAN_NS)):
            if condition():
                return
            self.scan()
        assert condition(), f"not within {within_s} s (virtual time)"

    def read(self, path: str) -> Any:
        return self.executor.read(path)

    def active_alarms(self) -> dict[str, str]:
        return {a.key: a.message for a in self.executor.alarms.active()}
