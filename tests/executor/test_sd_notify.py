"""systemd notifications on a test-owned ``NOTIFY_SOCKET``, in virtual time: READY only after the
first scan, WATCHDOG pings at a quarter of ``WATCHDOG_USEC`` while scans keep their deadlines, none
while they overrun, none once the scan thread hangs, STOPPING on a clean stop."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Sample
from plcrun.executor.engine import Executor, ExecutorConfig
from plcrun.executor.rt_setup import RtConfig
from plcrun.executor.runner import RealtimeSession
from plcrun.executor.sd_notify import NotifySocket, ServiceNotifier, watchdog_interval_ns
from plcrun.executor.watchdog import WatchdogConfig
from scripted_driver import ScriptedDriver

PROGRAMS = Path(__file__).parent / "programs"
MS = 1_000_000
S = 1_000_000_000
NO_RT = RtConfig(fifo_priority=None, lock_memory=False, switch_interval_s=None, timer_slack_ns=None)


class Manager:
    """The service manager's end: a unix datagram socket the test owns (abstract or a path)."""

    def __init__(self, tmp_path: Path, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"plcrun-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp_path / "notify.sock")
            self.sock.bind(self.address)
        self.sock.setblocking(False)

    def drain(self) -> list[str]:
        """Everything received so far (the kernel queues only ~10 datagrams: drain often)."""
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages

    def close(self) -> None:
        self.sock.close()


class Drain(ScriptedDriver):
    """A meter that also empties the manager's socket at the start of every scan (on the scan thread,
    so nothing is lost to the socket's short queue however fast virtual time runs) and notes what had
    arrived by which scan."""

    def __init__(self, manager: Manager) -> None:
        super().__init__("meter", ["plant.hz"], ["plant.p_set"], [(0, {"plant.hz": 50.0})])
        self.manager = manager
        self.arrived: list[tuple[int, str]] = []  # (scans started before it was seen, message)
        self.scans = 0

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        self.collect()
        self.scans += 1
        return super().read_inputs(now_ns)

    def collect(self) -> list[str]:
        messages = self.manager.drain()
        self.arrived.extend((self.scans, m) for m in messages)
        return [m for _, m in self.arrived]


@pytest.fixture(params=[True, False], ids=["abstract", "path"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Manager]:
    peer = Manager(tmp_path, abstract=request.param)
    yield peer
    peer.close()


def plant(driver: Drain, cost_ns: Callable[[str, int], int] | None = None) -> Executor:
    return Executor(
        compile_file(PROGRAMS / "plant.st"),
        clock=VirtualClock(),
        drivers=[driver],
        # the executor's own watchdog off: the service watchdog is what is tested here
        config=ExecutorConfig(watchdog=WatchdogConfig(time_factor=1000.0, overrun_limit=0)),
        cost_model=cost_ns,
    )


def test_ready_after_the_first_scan_pings_while_scanning_and_stopping(manager: Manager) -> None:
    drain = Drain(manager)
    executor = plant(drain)
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    session = RealtimeSession(executor, status_every_s=3600, rt_config=NO_RT, service_env=env)
    session.run(duration_s=10.0)
    drain.collect()
    (seen_by, ready), *rest = drain.arrived
    assert seen_by == 1  # READY arrived after the first scan, before the second started
    assert ready.startswith("READY=1\nSTATUS=scanning ") and "plant.st (DEFAULT every 10 ms)" in ready
    messages = [m for _, m in rest]
    assert messages[-1].startswith("STOPPING=1")
    # 1,000 scans in 10 s; a ping every 0.5 s (a quarter of WATCHDOG_USEC) counted from READY
    assert messages[:-1] == ["WATCHDOG=1"] * 19
    assert [at for at, _ in rest[:3]] == [51, 101, 151]  # seen at the scan after the 50th, 100th...
    assert session.notifier is not None and session.notifier.withheld == 0


def notifier_for(executor: Executor, manager: Manager, watchdog_usec: int) -> ServiceNotifier:
    sock = NotifySocket(manager.address)
    notifier = ServiceNotifier(
        sock, executor.scheduler.stats, executor.supervisors, watchdog_ns=watchdog_usec * 1000
    )
    executor.scheduler.add_scan_observer(notifier)
    return notifier


def test_no_pings_while_scans_overrun(manager: Manager) -> None:
    late_from = 300  # scans 0..299 take 1 ms, later ones 15 ms (every one overruns its 10 ms period)
    drain = Drain(manager)
    executor = plant(drain, lambda task, index: MS if index < late_from else 15 * MS)
    notifier = notifier_for(executor, manager, watchdog_usec=1_000_000)
    executor.run(duration_ns=3 * S)
    on_time = drain.collect()
    assert on_time[0] == "READY=1" and on_time[1:] == ["WATCHDOG=1"] * notifier.pings
    assert notifier.pings == 11  # every 0.25 s after READY, within 3 s
    executor.run(duration_ns=5 * S)  # 5 s of overrunning scans: systemd would restart after 1 s
    assert drain.collect() == on_time
    assert notifier.pings == 11 and notifier.withheld >= 15
    assert executor.scheduler.stats.task("DEFAULT").overruns > 300


def test_a_single_late_scan_withholds_one_ping_only(manager: Manager) -> None:
    drain = Drain(manager)
    executor = plant(drain, lambda task, index: 25 * MS if index == 150 else MS)
    notifier = notifier_for(executor, manager, watchdog_usec=1_000_000)
    executor.run(duration_ns=4 * S)
    messages = drain.collect()
    assert messages[0] == "READY=1" and messages[1:] == ["WATCHDOG=1"] * notifier.pings
    assert notifier.withheld == 1 and notifier.pings >= 13


class Hang(Drain):
    """Blocks the scan thread inside read_inputs from scan ``at`` on, until released."""

    def __init__(self, manager: Manager, at: int) -> None:
        super().__init__(manager)
        self.at = at
        self.blocked = threading.Event()
        self.release = threading.Event()

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        if self.scans + 1 == self.at:
            self.collect()
            self.blocked.set()
            self.release.wait(60)
        return super().read_inputs(now_ns)


def test_no_ping_once_the_scan_thread_hangs(manager: Manager) -> None:
    hang = Hang(manager, at=301)  # 300 scans (3 s) run, then the thread hangs at the start of scan 301
    executor = plant(hang)
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "1000000"}
    session = RealtimeSession(executor, status_every_s=0.01, rt_config=NO_RT, service_env=env)
    runner = threading.Thread(target=session.run, kwargs={"duration_s": 6.0}, daemon=True)
    runner.start()
    try:
        assert hang.blocked.wait(60), "the scan thread never reached the hang"
        before = hang.collect()
        assert session.notifier is not None
        pings = session.notifier.pings
        assert before[0].startswith("READY=1") and before[1:] == ["WATCHDOG=1"] * pings and pings == 11
        # the status thread keeps printing while the scan thread hangs; only scans may ping
        for _ in range(50):
            assert manager.drain() == []
            threading.Event().wait(0.002)  # let the other threads of the process run
        assert session.notifier.pings == pings
    finally:
        hang.release.set()
        runner.join(60)
    after = [m for m in hang.collect()[len(before) :]]
    assert after[-1].startswith("STOPPING=1") and after[:-1] == ["WATCHDOG=1"] * 12  # 3 s more


def test_watchdog_environment() -> None:
    assert watchdog_interval_ns({"WATCHDOG_USEC": "5000000"}) == 5 * S
    assert watchdog_interval_ns({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval_ns({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "2"}, pid=2) == 5 * S
    assert watchdog_interval_ns({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_ns({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_ns({}) is None
    assert NotifySocket.from_environment({}) is None
    assert NotifySocket.from_environment({"NOTIFY_SOCKET": "vsock:2:99"}) is None


def test_a_manager_that_went_away_costs_nothing_but_a_warning(tmp_path: Path) -> None:
    sock = NotifySocket(str(tmp_path / "nobody-listens.sock"))
    assert sock.send("READY=1") is False and sock.send("WATCHDOG=1") is False
    assert sock.failed == 2 and sock.sent == 0
    sock.close()
