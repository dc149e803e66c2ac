"""Real-time setup: what the OS allows is applied and undone; what it refuses is reported with a reason."""

from __future__ import annotations

import json
import os
import sys

import pytest
from plcrun.executor.rt_setup import DMA_LATENCY_PATH, RtConfig, RtSession, apply_rt_setup

NAMES = ["sched_fifo", "mlockall", "cpu_affinity", "cpu_dma_latency", "switch_interval", "timer_slack"]


def check_consistent(session: RtSession, config: RtConfig) -> None:
    assert [item.name for item in session.items] == NAMES
    requested = {
        "sched_fifo": config.fifo_priority is not None,
        "mlockall": config.lock_memory,
        "cpu_affinity": config.cpus is not None,
        "cpu_dma_latency": config.hold_cpu_dma_latency,
        "switch_interval": config.switch_interval_s is not None,
        "timer_slack": config.timer_slack_ns is not None,
    }
    for item in session.items:
        assert item.requested == requested[item.name], item
        assert item.detail, item
        if not item.requested:
            assert not item.applied
    json.dumps(session.to_json())
    assert len(session.summary().splitlines()) == len(NAMES)


def test_nothing_requested_changes_nothing() -> None:
    config = RtConfig(fifo_priority=None, lock_memory=False, switch_interval_s=None, timer_slack_ns=None)
    before = (sys.getswitchinterval(), os.sched_getscheduler(0))
    with apply_rt_setup(config) as session:
        check_consistent(session, config)
        assert not any(item.applied for item in session.items)
        assert (sys.getswitchinterval(), os.sched_getscheduler(0)) == before


def test_what_the_os_allows_is_in_effect_and_undone_on_close() -> None:
    cpu = min(os.sched_getaffinity(0))
    config = RtConfig(cpus=frozenset({cpu}), hold_cpu_dma_latency=True)
    before_interval = sys.getswitchinterval()
    before_policy = os.sched_getscheduler(0)
    before_cpus = os.sched_getaffinity(0)
    session = apply_rt_setup(config)
    try:
        check_consistent(session, config)
        # Each claim in the report is checked against the OS.
        assert (os.sched_getscheduler(0) == os.SCHED_FIFO) == session.applied("sched_fifo")
        if session.applied("sched_fifo"):
            assert os.sched_getparam(0).sched_priority == 40
        assert (os.sched_getaffinity(0) == {cpu}) == session.applied("cpu_affinity")
        assert (sys.getswitchinterval() == pytest.approx(0.0005)) == session.applied("switch_interval")
        assert session.applied("switch_interval")  # always possible
        locked = _status_kib("VmLck")
        assert (locked is not None and locked > 0) == session.applied("mlockall")
        holding = any(_is_dma(fd) for fd in os.listdir("/proc/self/fd"))
        assert holding == session.applied("cpu_dma_latency")
        if os.geteuid() != 0:
            for name in ("sched_fifo", "cpu_dma_latency"):
                item = session.item(name)
                assert item.applied or "not root" in item.detail or "not permitted" in item.detail
    finally:
        session.close()
    assert sys.getswitchinterval() == pytest.approx(before_interval)
    assert os.sched_getscheduler(0) == before_policy
    assert os.sched_getaffinity(0) == before_cpus
    assert _status_kib("VmLck") in (None, 0)
    assert not any(_is_dma(fd) for fd in os.listdir("/proc/self/fd"))


def test_an_unprivileged_process_gets_reasons_not_errors() -> None:
    """Fork, drop to uid 65534 (nobody), apply everything, send the report back through a pipe."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user; this process is unprivileged already")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            session = apply_rt_setup(RtConfig(hold_cpu_dma_latency=True))
            os.write(write_end, json.dumps(session.to_json()).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    items = {item["name"]: item for item in json.loads(b"".join(chunks))["items"]}
    fifo = items["sched_fifo"]
    assert not fifo["applied"]
    assert "not permitted" in fifo["detail"] and "uid 65534, not root" in fifo["detail"]
    assert "RLIMIT_RTPRIO" in fifo["detail"]
    dma = items["cpu_dma_latency"]
    assert not dma["applied"] and DMA_LATENCY_PATH in dma["detail"] and "not permitted" in dma["detail"]
    # mlockall depends on RLIMIT_MEMLOCK; if refused, the reason names the limit.
    if not items["mlockall"]["applied"]:
        assert "RLIMIT_MEMLOCK" in items["mlockall"]["detail"]
    # These need no privilege.
    assert items["switch_interval"]["applied"]
    assert items["timer_slack"]["applied"]


def test_bad_values_are_reported_not_raised() -> None:
    config = RtConfig(fifo_priority=1000, lock_memory=False, cpus=frozenset({4096}), switch_interval_s=-1.0)
    with apply_rt_setup(config) as session:
        check_consistent(session, config)
        assert "outside SCHED_FIFO range" in session.item("sched_fifo").detail
        assert not session.applied("cpu_affinity") and "4096" in session.item("cpu_affinity").detail
        assert not session.applied("switch_interval") and "rejected" in session.item("switch_interval").detail
    with pytest.raises(KeyError, match="no real-time measure named 'turbo'"):
        session.item("turbo")


def _is_dma(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == DMA_LATENCY_PATH
    except OSError:
        return False


def _status_kib(field: str) -> int | None:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None
