"""Does a hostile network move the scan? The scan's wake latency, overruns and the process RSS while
(a) 300 slowloris clients hold dashboard connections, (b) 1,000 SCADA clients poll, (c) SCADA clients
write 12,000 times a second, each against an idle phase in the same run.

The gateway runs as ``plcrun run`` runs it (small thread stacks, ``RealtimeSession``) with the
100-EV site program of dashboard_load.py (plus a few located variables for SCADA) on the built-in
simulation, a ``DashboardServer`` and a ``ScadaServer`` with their default limits, all on 127.0.0.1.
The attackers run in a separate process (they are not on the gateway), one selector loop each,
bounded in connections and rates, for ``--block`` seconds per phase; phases alternate
idle / slowloris / scada_poll / scada_writes ``--rounds`` times so they see the same machine noise.
Statistics are reset at each phase start; RSS is sampled every 0.25 s.

    python bench/hostile_load.py                 # 4 phases x 10 s x 2 rounds
    python bench/hostile_load.py --block 5 --rounds 1
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_load import PROGRAM, percentiles, scenario_data
from plcrun.compiler.api import compile_source
from plcrun.dashboard import DashboardServer
from plcrun.executor.clock import MonotonicClock
from plcrun.executor.engine import Executor
from plcrun.executor.runner import RealtimeSession
from plcrun.executor.stats import format_ns
from plcrun.executor.threads import use_small_stacks
from plcrun.io.scada_config import ScadaConfig
from plcrun.io.scada_server import ScadaServer
from plcrun.io.sim import SimDriver, parse_scenario

PHASES = ("idle", "slowloris", "scada_poll", "scada_writes")
MEMORY = 1000
LOCATED = """
  setpoint AT %MW10 : INT := 7;
  heartbeat AT %QW1 : UINT;
  manual AT %MX0.0 : BOOL;
END_VAR"""


# ------------------------------------------------------------------ attackers (separate process)
class Attack:
    """One phase of attack on a selector loop: at most ``target`` sockets, reconnecting when closed."""

    def __init__(self, port: int, target: int, connects_per_s: float) -> None:
        self.port, self.target, self.connects_per_s = port, target, connects_per_s
        self.selector = selectors.DefaultSelector()
        self.open: dict[socket.socket, dict[str, Any]] = {}
        self.counts = {"connects": 0, "closed_by_server": 0, "sent": 0, "answers": 0, "busy": 0, "errors": 0}
        self._connect_budget = 0.0

    def connect_some(self, dt: float) -> None:
        self._connect_budget = min(self._connect_budget + dt * self.connects_per_s, self.target)
        while len(self.open) < self.target and self._connect_budget >= 1.0:
            self._connect_budget -= 1.0
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            except OSError:
                self.counts["errors"] += 1
                sock.close()
                continue
            self.counts["connects"] += 1
            self.open[sock] = {"t": 0.0, "n": 0, "buffer": b""}
            self.selector.register(sock, selectors.EVENT_READ)

    def drop(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.open[sock]
        sock.close()

    def send(self, sock: socket.socket, data: bytes) -> bool:
        try:
            sock.send(data)
        except BlockingIOError:
            return False
        except OSError:
            self.counts["closed_by_server"] += 1
            self.drop(sock)
            return False
        self.counts["sent"] += 1
        return True

    def read_ready(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self.counts["closed_by_server"] += 1
                self.drop(sock)
                continue
            self.on_data(sock, data)

    def on_data(self, sock: socket.socket, data: bytes) -> None:
        self.counts["answers"] += 1

    def tick(self, now: float) -> None:
        raise NotImplementedError

    def run(self, stop: threading.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            self.connect_some(now - last)
            last = now
            self.tick(now)
            self.read_ready(0.002)
        for sock in list(self.open):
            self.drop(sock)


class Slowloris(Attack):
    """Starts a request head and sends one more header line every 5 s, never ending it."""

    def tick(self, now: float) -> None:
        for sock, state in list(self.open.items()):
            if state["n"] == 0:
                if self.send(sock, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
                    state["n"], state["t"] = 1, now
            elif now - state["t"] >= 5.0:
                if self.send(sock, b"X-Slow: 1\r\n"):
                    state["t"] = now


class ScadaPoll(Attack):
    """Each client reads 10 holding registers once a second (FC 3)."""

    def tick(self, now: float) -> None:
        for sock, state in list(self.open.items()):
            if now - state["t"] >= 1.0:
                state["n"] = (state["n"] + 1) & 0xFFFF
                if self.send(sock, struct.pack(">HHHBBHH", state["n"], 0, 6, 1, 3, 0, 10)):
                    state["t"] = now


class ScadaWrites(Attack):
    """``rate`` writes a second in all (FC 6 to %MW10), spread over the open connections."""

    def __init__(self, port: int, target: int, connects_per_s: float, rate: float) -> None:
        super().__init__(port, target, connects_per_s)
        self.rate = rate
        self._due = 0.0
        self._last = time.monotonic()
        self._value = 0

    def tick(self, now: float) -> None:
        self._due = min(self._due + (now - self._last) * self.rate, self.rate)
        self._last = now
        sockets = list(self.open)
        k = 0
        while self._due >= 1.0 and sockets:
            sock = sockets[k % len(sockets)]
            k += 1
            if sock not in self.open:
                sockets.remove(sock)
                continue
            self._value = (self._value + 1) % 30000
            self._due -= 1.0
            self.send(sock, struct.pack(">HHHBBHH", k & 0xFFFF, 0, 6, 1, 6, MEMORY + 10, self._value))

    def on_data(self, sock: socket.socket, data: bytes) -> None:
        # answers are 12 bytes (a write echo) or 9 (an exception: 0x86 then the code)
        for offset in range(0, len(data) - 8, 9):
            if data[offset + 7] == 0x86 and data[offset + 8] == 6:
                self.counts["busy"] += 1
        self.counts["answers"] += 1


def attacker_main(dashboard_port: int, scada_port: int) -> None:
    """Per line on stdin (a phase name or "quit"): stop the running phase, print its counts as one
    JSON line ({} when none ran), then start the named one."""
    current: tuple[Attack, threading.Thread, threading.Event] | None = None
    for line in sys.stdin:
        command = line.strip()
        counts: dict[str, int] = {}
        if current is not None:
            attack, thread, stop = current
            stop.set()
            thread.join()
            counts = {"open_at_end": len(attack.open), **attack.counts}
            current = None
        print(json.dumps(counts), flush=True)
        if command == "quit":
            break
        made: Attack | None = None
        if command == "slowloris":
            made = Slowloris(dashboard_port, 300, 600.0)
        elif command == "scada_poll":
            made = ScadaPoll(scada_port, 1000, 1000.0)
        elif command == "scada_writes":
            made = ScadaWrites(scada_port, 16, 100.0, 12_000.0)
        if made is not None:
            stop = threading.Event()
            thread = threading.Thread(target=made.run, args=(stop,), daemon=True)
            thread.start()
            current = (made, thread, stop)


# ------------------------------------------------------------------ the gateway side
def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(args: argparse.Namespace) -> None:
    use_small_stacks()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # pipelined floods: one line per frame
    source = PROGRAM.format(n=args.evs).replace("END_VAR", LOCATED, 1)
    source = source.replace("END_PROGRAM", "heartbeat := heartbeat + 1;\nEND_PROGRAM")
    program = compile_source(source, "hostile_load_site.st")
    scenario = parse_scenario(scenario_data(args.evs), "<bench scenario>", Path("."))
    meter = {"frequency_hz": "site.grid_hz", "power_w": "site.site_p_w"}
    driver = SimDriver(scenario, meter, "site.evs", args.evs, max_history_rows=10_000)
    executor = Executor(program, clock=MonotonicClock(), drivers=[driver])
    executor.slack_gate().enabled = not args.no_gate  # the gate the dashboard and SCADA server share
    dashboard = DashboardServer(executor, port=0, token="bench-token-0123456789")
    dashboard.start()
    scada = ScadaServer(executor, ScadaConfig(port=0, memory_base=MEMORY))
    scada.start()
    attacker = subprocess.Popen(
        [sys.executable, __file__, "--attack", str(dashboard.port), str(scada.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert attacker.stdin is not None and attacker.stdout is not None
    results: dict[str, dict[str, list[Any]]] = {
        p: {"wake": [], "exec": [], "overruns": [], "scans": [], "rss": [], "threads": [], "attack": []}
        for p in PHASES
    }
    stats = executor.scheduler.stats

    def conduct() -> None:
        time.sleep(args.warmup)
        previous: str | None = None
        for _ in range(args.rounds):
            for phase in PHASES:
                attacker.stdin.write(phase + "\n")  # type: ignore[union-attr]
                attacker.stdin.flush()  # type: ignore[union-attr]
                counts = json.loads(attacker.stdout.readline())  # type: ignore[union-attr]
                if previous is not None:
                    results[previous]["attack"].append(counts)
                previous = phase
                time.sleep(1.0)  # connections build up before the statistics count
                executor.request_stats_reset()
                rss: list[float] = []
                threads: list[int] = []
                end = time.monotonic() + args.block
                while time.monotonic() < end:
                    rss.append(rss_mib())
                    threads.append(threading.active_count())
                    time.sleep(0.25)
                task = stats.task("DEFAULT")
                results[phase]["wake"].append(task.wake_latency.window())
                results[phase]["exec"].append(task.execution.window())
                results[phase]["overruns"].append(task.overruns)
                results[phase]["scans"].append(task.scans)
                results[phase]["rss"].append(max(rss))
                results[phase]["threads"].append(max(threads))
        attacker.stdin.write("quit\n")  # type: ignore[union-attr]
        attacker.stdin.flush()  # type: ignore[union-attr]
        results[PHASES[-1]]["attack"].append(json.loads(attacker.stdout.readline()))  # type: ignore[union-attr]
        executor.stop()

    conductor = threading.Thread(target=conduct, daemon=True)
    conductor.start()
    session = RealtimeSession(executor, status_every_s=3600.0, status_out=io.StringIO())
    session.run()
    conductor.join()
    attacker.wait(timeout=30)
    front = dashboard.front
    front_counts = dict(front.counters) if front is not None else {}
    dashboard.stop()
    scada_counts = dict(scada.counters)
    scada.stop()
    report(args, results, front_counts, scada_counts)


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, list[Any]]],
    front_counts: dict[str, int],
    scada_counts: dict[str, int],
) -> None:
    print(
        f"hostile_load: {args.evs} EVs at 10 ms, {args.rounds} round(s) of {args.block:g} s per phase; "
        f"dashboard and SCADA server with default limits; slack gate {'off' if args.no_gate else 'on'}"
    )
    print(
        f"{'phase':13s} {'scans':>6s} {'overruns':>8s}  {'wake p50 / p99 / max':32s} {'exec p99':>9s}"
        f" {'RSS MiB':>8s} {'threads':>7s}"
    )
    idle_p99 = idle_rss = 0.0
    for phase in PHASES:
        r = results[phase]
        wake = percentiles(np.concatenate(r["wake"]))
        execution = percentiles(np.concatenate(r["exec"]))
        rss = max(r["rss"])
        if phase == "idle":
            idle_p99, idle_rss = wake["p99"], rss
        print(
            f"{phase:13s} {sum(r['scans']):6d} {sum(r['overruns']):8d}  "
            + " / ".join(format_ns(wake[k]) for k in ("p50", "p99", "max")).ljust(32)
            + f" {format_ns(execution['p99']):>9s} {rss:8.1f} {max(r['threads']):7d}"
        )
        if phase != "idle":
            print(
                f"{'':13s} vs idle: wake p99 x{wake['p99'] / idle_p99:.2f}, RSS {rss - idle_rss:+.1f} MiB; "
                f"attack: {r['attack'][-1] if r['attack'] else {}}"
            )
    print(f"dashboard front: {front_counts}")
    print(f"SCADA server: {scada_counts}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--block", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--evs", type=int, default=100)
    parser.add_argument(
        "--phases", default="idle,slowloris,scada_poll,scada_writes", help="phases in order (idle first)"
    )
    parser.add_argument("--no-gate", action="store_true", help="network loops not kept to the scan's slack")
    parser.add_argument(
        "--attack", nargs=2, type=int, metavar=("DASHBOARD_PORT", "SCADA_PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    global PHASES
    PHASES = tuple(args.phases.split(","))
    if args.attack:
        attacker_main(*args.attack)
        return
    run(args)


if __name__ == "__main__":
    main()
