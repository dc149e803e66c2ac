"""Only the scan thread gets the real-time setup: driver threads (started by the executor) and the
session's own threads are created before it, so they inherit neither SCHED_FIFO nor the scan CPU."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.driver_api import Clock, Sample
from plcrun.executor.engine import Executor
from plcrun.executor.rt_setup import RtConfig
from plcrun.executor.runner import RealtimeSession
from scripted_driver import ScriptedDriver

PROGRAMS = Path(__file__).parent / "programs"


class ThreadedDriver(ScriptedDriver):
    """Starts a worker thread (as the Modbus and MQTT drivers do) and notes, on it and on the scan
    thread, the scheduling policy and CPU affinity in effect."""

    def __init__(self) -> None:
        super().__init__("meter", ["plant.hz"], ["plant.p_set"], [(0, {"plant.hz": 50.0})])
        self.worker: dict[str, object] = {}
        self.scan: dict[str, object] = {}
        self._stop = threading.Event()
        self._sample = threading.Event()
        self._sampled = threading.Event()

    def start(self, clock: Clock) -> None:
        super().start(clock)
        threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while not self._stop.is_set():
            if self._sample.wait(0.05):
                self.worker = {"policy": os.sched_getscheduler(0), "cpus": os.sched_getaffinity(0)}
                self._sample.clear()
                self._sampled.set()

    def read_inputs(self, now_ns: int) -> Mapping[str, Sample]:
        if not self.scan:
            self.scan = {"policy": os.sched_getscheduler(0), "cpus": os.sched_getaffinity(0)}
            self._sample.set()
            assert self._sampled.wait(30)
        return super().read_inputs(now_ns)

    def stop(self) -> None:
        self._stop.set()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin one")
def test_only_the_scan_thread_is_pinned_and_real_time() -> None:
    all_cpus = os.sched_getaffinity(0)
    scan_cpu = max(all_cpus)
    driver = ThreadedDriver()
    executor = Executor(compile_file(PROGRAMS / "plant.st"), clock=VirtualClock(), drivers=[driver])
    config = RtConfig(cpus=frozenset({scan_cpu}), lock_memory=False, switch_interval_s=None)
    session = RealtimeSession(executor, status_every_s=3600, rt_config=config, service_env={})
    runner = threading.Thread(target=session.run, kwargs={"duration_s": 0.05})
    runner.start()
    runner.join(60)
    assert driver.scan["cpus"] == {scan_cpu}
    assert driver.worker["cpus"] == all_cpus and driver.worker["policy"] == os.SCHED_OTHER
    fifo_allowed = driver.scan["policy"] == os.SCHED_FIFO
    assert fifo_allowed or driver.scan["policy"] == os.SCHED_OTHER
