"""The ISO 15118 rig: plcrun (executor + Iso15118Driver, its SECC process on the host ends of veth
pairs) and test cars (``ev_car.py``) inside a network namespace, all created by the tests.

Needs root (namespaces), Java, and the SECC environment (``$PLCRUN_ISO15118_PYTHON`` or
/opt/plcrun-iso15118, made by ``.ci/run``); skips with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from plcrun.compiler.api import compile_file
from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import MonotonicClock
from plcrun.executor.config import ExecutorConfig
from plcrun.executor.engine import Executor
from plcrun.executor.watchdog import WatchdogConfig
from plcrun.io.iso15118 import Iso15118Driver, parse_iso15118_config
from plcrun.io.iso15118.config import DEFAULT_PYTHON, PYTHON_ENV
from plcrun.io.iso15118.process import JAVA_OPTIONS

from tests.io.iso15118.netns import CarNet, why_not
from tests.io.iso15118.v2g_pki import make_pki

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "programs" / "v2g_dip.st"
EV_CAR = HERE / "ev_car.py"
SLOTS = 6
SCHEDULED_SLOTS = (3, 6)  # these charge points offer scheduled control mode first


def secc_python() -> str:
    return os.environ.get(PYTHON_ENV, DEFAULT_PYTHON)


def rig_skip_reason() -> str | None:
    reason = why_not()
    if reason:
        return reason
    if shutil.which("java") is None:
        return "needs Java for the EXI codec (apt-get install default-jre-headless)"
    python = secc_python()
    if not Path(python).is_file():
        return f"needs the SECC environment at {python} (.ci/run makes it; or set {PYTHON_ENV})"
    probe = subprocess.run([python, "-c", "import iso15118, aiofile"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"{python} cannot import iso15118: {probe.stderr.strip()[-200:]}"
    return None


@dataclass
class Car:
    proc: subprocess.Popen[bytes]
    log: Path
    stop_file: Path

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def loops(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if "loop" in e]

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Rig:
    net: CarNet
    executor: Executor
    driver: Iso15118Driver
    alarms: AlarmBus
    tmp: Path
    cars: list[Car] = field(default_factory=list)

    def read(self, path: str) -> Any:
        return self.executor.read(path)

    def write(self, path: str, value: object) -> None:
        self.executor.journal.write(path, value, "test")

    def plug(self, slot: int, *args: str) -> Car:
        """Start a test car on the namespace end of charge point ``slot`` (1-based)."""
        log = self.tmp / f"car{slot}-{len(self.cars)}.jsonl"
        stop_file = self.tmp / f"stop{slot}-{len(self.cars)}"
        # a car's controller is its own computer: it does not queue behind this machine's other work
        argv = self.net.car_command(
            "env",
            f"JAVA_TOOL_OPTIONS={JAVA_OPTIONS}",
            "nice",
            "-n",
            "-10",
            secc_python(),
            str(EV_CAR),
            "--iface",
            self.net.cars[slot - 1],
            "--log",
            str(log),
            "--stop-file",
            str(stop_file),
            # a car paces its charge loops (the package's EV sends the next request at once)
            "--loop-delay",
            "0.25",
            *args,
        )
        car = Car(subprocess.Popen(argv, stdin=subprocess.DEVNULL), log, stop_file)
        self.cars.append(car)
        return car

    def wait(self, what: str, condition: Callable[[], bool], timeout_s: float = 90.0) -> None:
        """Wait for real peers (a session takes 5-30 s on a loaded machine); fail with ``what``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        tails = [car.entries()[-2:] for car in self.cars]
        raise AssertionError(
            f"timed out after {timeout_s:g} s waiting for {what}; sessions ended: "
            f"{self.driver.session_log()}; alarms: {[a.message for a in self.alarms.active()]}; "
            f"cars' last log lines: {tails}"
        )


def site_table(
    net: CarNet, pki: Path, tls_slots: tuple[int, ...], tls_1_3: bool, pnc: bool = False
) -> dict[str, Any]:
    evse: dict[str, Any] = {}
    for slot, iface in enumerate(net.hosts, start=1):
        evse[f"cp{slot}"] = {
            "interface": iface,
            "slot": slot,
            "protocols": ["ISO_15118_20_DC", "ISO_15118_20_AC", "ISO_15118_2"],
            "control_mode": "scheduled" if slot in SCHEDULED_SLOTS else "dynamic",
            "auth_modes": ["PNC", "EIM"] if pnc and slot in tls_slots else ["EIM"],
            "max_charge_w": 22000.0,
            "max_discharge_w": 11000.0,
            "max_current_a": 60.0,
            "stop": f"main.stop[{slot}]",
            "renegotiate": f"main.renegotiate[{slot}]",
            "pause": f"main.pause[{slot}]",
            "tls": slot in tls_slots,
        }
    return {
        "python": secc_python(),
        "prefix": "main.evs",
        "pki_path": str(pki),
        "tls_1_3": tls_1_3,
        "evse": evse,
    }


@contextlib.contextmanager
def running_rig(
    tmp: Path,
    slots: int,
    leaf_expired: bool,
    tls_slots: tuple[int, ...],
    tls_1_3: bool = False,
    pnc: bool = False,
) -> Iterator[Rig]:
    """plcrun scanning in real time with the driver on ``slots`` veth pairs; TLS on ``tls_slots`` (with
    Plug & Charge offered first there when ``pnc``)."""
    reason = rig_skip_reason()
    if reason:
        pytest.skip(reason)
    os.chmod(tmp, 0o755)
    pki = make_pki(tmp / "pki", leaf_expired=leaf_expired)
    program = compile_file(PROGRAM)
    with CarNet(slots) as net:
        table = site_table(net, pki, tls_slots, tls_1_3, pnc)
        config = parse_iso15118_config(table, "site.toml", program.catalog())
        alarms = AlarmBus()
        driver = Iso15118Driver(config, alarms)
        # the scans run in real time on a shared, loaded machine: a scan descheduled for 100 ms must not
        # fault the task (the watchdog is tested elsewhere, in virtual time)
        watchdog = WatchdogConfig(time_factor=1000.0, overrun_limit=0)
        executor = Executor(
            program,
            clock=MonotonicClock(),
            drivers=[driver],
            alarms=alarms,
            config=ExecutorConfig(watchdog=watchdog),
        )
        runner = threading.Thread(target=executor.run, name="iso15118-test-scans", daemon=True)
        runner.start()
        rig = Rig(net, executor, driver, alarms, tmp)
        try:
            yield rig
        finally:
            for car in rig.cars:
                car.end()
            executor.stop()
            runner.join(10)
            executor.shutdown()


@pytest.fixture(scope="package")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """Six charge points (3 and 6 offer scheduled mode first); the fourth asks for TLS and its PKI's SECC
    certificate expired yesterday."""
    with running_rig(tmp_path_factory.mktemp("iso15118"), SLOTS, leaf_expired=True, tls_slots=(4,)) as rig:
        yield rig
