"""The README's "Commission a site" section, run as written, inside a network namespace of its own.

``python -m tests.support.readme_site LIMIT_S --in-namespace`` is started by ``tests/test_readme_site.py``
under ``unshare -n`` (as root) or ``unshare -rn`` (a private loopback, so the site file's fixed ports 15020-15022 and the dashboard's
8080 cannot meet another run's; without ``--in-namespace`` it uses the host's). It brings the namespace's
loopback up and starts the section's commands from the repository root as a reader of the README
would (``plcrun`` is the installed console script next to this Python): the devices first, the site
once the devices say they serve (their "Ctrl-C stops" line), not at the same instant, which left the
order of the two start-ups to the scheduler. It watches the emulated chargers over Modbus and the
program over the dashboard until both cars discharge (``LIMIT_S`` at most from the site's first answer
on its dashboard), stops both processes with SIGINT and prints one JSON line with what it saw. Both
processes' output is read while they run (a full pipe would block them).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
QUASAR_SETPOINT, QUASAR_ACTUAL_POWER = 260, 526


def section_commands(readme: str) -> list[str]:
    """The ``sh`` commands of the README's "Commission a site" section, in order."""
    match = re.search(r"^## Commission a site\n(.*?)(?=^## )", readme, re.M | re.S)
    if match is None:
        raise ValueError("README.md has no '## Commission a site' section")
    return [c.strip() for c in re.findall(r"```sh\n(.*?)```", match.group(1), re.S)]


def argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "plcrun":
        script = Path(sys.executable).parent / "plcrun"
        words[:1] = [str(script)] if script.exists() else [sys.executable, "-m", "plcrun.cli"]
    return words


def _s16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def charger_registers(port: int) -> tuple[int, int] | None:
    """(setpoint, actual power) of the emulated Quasar on ``port``, or None while it does not answer."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
    try:
        if not client.connect():
            return None
        setpoint = client.read_holding_registers(QUASAR_SETPOINT, count=1, device_id=1)
        power = client.read_holding_registers(QUASAR_ACTUAL_POWER, count=1, device_id=1)
        if setpoint.isError() or power.isError():
            return None
        return _s16(setpoint.registers[0]), _s16(power.registers[0])
    except Exception:  # a device still starting: try again
        return None
    finally:
        client.close()


def dashboard_values(paths: list[str]) -> dict[str, Any]:
    query = "&".join(f"path={p}" for p in paths)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:8080/api/values?{query}", timeout=1.0) as answer:
            values = json.loads(answer.read())["values"]
    except (OSError, ValueError):
        return {}
    return {path: node.get("value") for path, node in values.items() if isinstance(node, dict)}


READY = "Ctrl-C stops"  # what both commands print once they serve / run
START_GUARD_S = 60.0  # a start that hangs: the devices' ready line, the site's first answer


class Started:
    """One of the section's commands, its stdout and stderr read into lines while it runs."""

    def __init__(self, command: str) -> None:
        self.process = subprocess.Popen(
            argv(command),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.ready = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            if READY in line:
                self.ready.set()
        self.ready.set()  # ended without it: nothing more to wait for

    def stop(self) -> dict[str, Any]:
        """SIGINT (Ctrl-C), then the exit status and everything it printed."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for reader in self._readers:  # the pipes end with the process
            reader.join(timeout=15)
        return {"returncode": process.returncode, "stdout": "".join(self.out), "stderr": "".join(self.err)}


def main(limit_s: float, own_namespace: bool) -> dict[str, Any]:
    if own_namespace:  # a new network namespace starts with its loopback down
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    commands = section_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    started = time.monotonic()
    running = [Started(commands[0])]
    processes = [running[0].process]
    paths = ["main.status", "main.grid_hz", "main.evs[1].p_setpoint_w", "main.evs[2].p_setpoint_w"]
    seen: dict[str, Any] = {"commands": commands, "status": [], "discharged_at_s": None, "site_up_s": None}
    try:
        # the site is started in the second terminal once the devices serve (a guard, not a pause:
        # it only ends a start that hangs)
        running[0].ready.wait(START_GUARD_S)
        for command in commands[1:]:
            if processes[-1].poll() is not None:
                break
            running.append(Started(command))
            processes.append(running[-1].process)
        site_started = time.monotonic()
        site_up: float | None = None
        # limit_s counts from the site's first answer, not from the devices' start: the dip comes at a
        # fixed time of the devices' scenario, and how long the site takes to start is the machine's
        while all(p.poll() is None for p in processes):
            now = time.monotonic()
            if now - (site_up or site_started) > (limit_s if site_up else START_GUARD_S):
                break
            time.sleep(0.2)
            values = dashboard_values(paths)
            status = values.get("main.status")
            if status and site_up is None:
                site_up = time.monotonic()
                seen["site_up_s"] = round(site_up - started, 2)
            if status and (not seen["status"] or seen["status"][-1] != status):
                seen["status"].append(status)
            chargers = [charger_registers(port) for port in (15021, 15022)]
            if all(c is not None and c[0] < 0 and c[1] < -500 for c in chargers):
                seen.update(discharged_at_s=round(time.monotonic() - started, 2), chargers=chargers)
                seen["values"] = values
                break
    finally:
        outputs = []
        for one in reversed(running):  # the site first: it writes its safe values to the devices
            outputs.insert(0, one.stop())
            if one is running[-1] and len(running) > 1:
                seen["chargers_after_stop"] = [charger_registers(port) for port in (15021, 15022)]
        seen["processes"] = outputs
    return seen


if __name__ == "__main__":
    print(json.dumps(main(float(sys.argv[1]), "--in-namespace" in sys.argv[2:])))
