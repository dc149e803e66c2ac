"""Does the dashboard move the scan statistics? 100 simulated EVs at 10 ms in real time, with the
dashboard running, idle vs. polled by N page-like clients, in one run.

The executor runs the way ``plcrun run`` runs it (``RealtimeSession``: real-time setup where the OS
allows it, GC kept out of scans) with a stand-in site program over ``--evs`` EV sessions fed by the
built-in simulation, and a ``DashboardServer`` on 127.0.0.1. Variants alternate in blocks of
``--block`` seconds so that they see the same machine noise:

* ``off``: the dashboard's HTTP server is up but its chart sampler is stopped and nobody asks;
* ``idle``: the dashboard as it runs when nobody looks (chart sampler at 10 Hz);
* ``load``: ``--clients`` simulated pages, each polling what the page polls every 250 ms
  (tasks, chart, EV table page, a 4-variable watch; I/O, alarms and journal every 4th tick) over a
  kept-alive connection, from a separate process (browsers do not run on the gateway).

Printed per variant: wake latency and execution time (p50/p99/p99.9/max), overruns; the ratios
load/idle and idle/off of the p99 figures; and, for the clients, the page refresh rate achieved and
how long one refresh (all its requests) took. Statistics are reset at each block start.

    python bench/dashboard_load.py                          # 20 s per variant, 4 clients
    python bench/dashboard_load.py --clients 8 --duration 10
    python bench/dashboard_load.py --no-gate               # dashboard threads not kept to the slack
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from plcrun.compiler.api import compile_source
from plcrun.dashboard import DashboardServer
from plcrun.executor.clock import MonotonicClock
from plcrun.executor.engine import Executor
from plcrun.executor.runner import RealtimeSession
from plcrun.executor.stats import format_ns
from plcrun.io.sim import SimDriver, parse_scenario

MS = 1_000_000
VARIANTS = ("off", "idle", "load")
WATCH = ("site.grid_hz", "site.total_setpoint_w", "site.evs[7].soc_pct", "site.armed")

PROGRAM = """
PROGRAM site
VAR
  grid_hz : LREAL := 50.0;
  site_p_w : REAL;
  n_evs : DINT := {n};
  evs : ARRAY[1..{n}] OF EV_SESSION;
  deadband_hz : LREAL := 0.015;
  full_hz : LREAL := 0.2;
  droop_full_w : REAL := 200000.0;
  ramp_w : REAL := 500.0;
  arm : TON;
  armed : BOOL;
  frac : LREAL;
  target_w : REAL;
  lo_w : REAL;
  hi_w : REAL;
  total_lo_w : REAL;
  total_hi_w : REAL;
  total_setpoint_w : REAL;
  share : REAL;
  want : REAL;
  i : DINT;
END_VAR
arm(IN := TRUE, PT := T#2s);
armed := arm.Q;
IF grid_hz - 50.0 > deadband_hz THEN
  frac := (grid_hz - 50.0 - deadband_hz) / (full_hz - deadband_hz);
ELSIF grid_hz - 50.0 < -deadband_hz THEN
  frac := (grid_hz - 50.0 + deadband_hz) / (full_hz - deadband_hz);
ELSE
  frac := 0.0;
END_IF;
frac := LIMIT(-1.0, frac, 1.0);
target_w := LREAL_TO_REAL(frac) * droop_full_w;
total_lo_w := 0.0;
total_hi_w := 0.0;
FOR i := 1 TO n_evs DO
  IF evs[i].connected THEN
    hi_w := evs[i].p_charge_max_w;
    lo_w := -evs[i].p_discharge_max_w;
    IF evs[i].soc_pct <= evs[i].min_soc_pct THEN lo_w := 0.0; END_IF;
    IF evs[i].soc_pct >= 95.0 THEN hi_w := 0.0; END_IF;
    total_lo_w := total_lo_w + lo_w;
    total_hi_w := total_hi_w + hi_w;
  END_IF;
END_FOR;
total_setpoint_w := 0.0;
FOR i := 1 TO n_evs DO
  IF evs[i].connected AND armed THEN
    IF target_w >= 0.0 AND total_hi_w > 0.0 THEN
      share := target_w / total_hi_w;
      want := share * evs[i].p_charge_max_w;
    ELSIF total_lo_w < 0.0 THEN
      share := target_w / total_lo_w;
      want := -share * evs[i].p_discharge_max_w;
    ELSE
      want := 0.0;
    END_IF;
    want := LIMIT(evs[i].p_setpoint_w - ramp_w, want, evs[i].p_setpoint_w + ramp_w);
    evs[i].p_setpoint_w := LIMIT(-evs[i].p_discharge_max_w, want, evs[i].p_charge_max_w);
  ELSE
    evs[i].p_setpoint_w := 0.0;
  END_IF;
  total_setpoint_w := total_setpoint_w + evs[i].p_setpoint_w;
END_FOR;
END_PROGRAM
"""


def scenario_data(n_evs: int) -> dict[str, Any]:
    return {
        "scenario": {"name": "dashboard_load", "duration_s": 7200.0, "scan_period_s": 0.01, "seed": 3},
        "grid": {"nominal_hz": 50.0, "segments": [{"kind": "noise", "hz": 50.0, "sigma_hz": 0.03}]},
        "fleet": {
            "lag_s": 1.0,
            "evs": [
                {
                    "model": "midsize_bidi",
                    "count": n_evs,
                    "soc_pct": 55.0,
                    "min_soc_pct": 30.0,
                    "target_soc_pct": 80.0,
                }
            ],
        },
        "site": {"base_load_w": 20000.0},
    }


# ------------------------------------------------------------------ the clients (separate process)
class PageClient(threading.Thread):
    """One open page: every 250 ms the requests app.js sends, over one kept-alive connection."""

    def __init__(self, port: int, active: threading.Event, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.active, self.stop = port, active, stop
        self.tick_s: list[float] = []
        self.ticks_at: list[float] = []
        self.errors = 0
        self.requests = 0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        since, tick = 0, 0
        watch = "&".join(f"path={p}" for p in WATCH)
        next_at = time.monotonic()
        while not self.stop.is_set():
            if not self.active.wait(0.05):
                next_at = time.monotonic()
                continue
            paths = [
                "/api/tasks",
                f"/api/chart?since={since}",
                "/api/evs?offset=0&limit=20",
                f"/api/values?{watch}",
            ]
            if tick % 4 == 0:
                paths += ["/api/io", "/api/alarms", "/api/journal"]
            began = time.monotonic()
            for path in paths:
                try:
                    connection.request("GET", path)
                    reply = connection.getresponse()
                    body = reply.read()
                    self.requests += 1
                    if reply.status != 200:
                        self.errors += 1
                    elif path.startswith("/api/chart"):
                        since = json.loads(body)["last_seq"]
                except (OSError, http.client.HTTPException):
                    self.errors += 1
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            done = time.monotonic()
            self.tick_s.append(done - began)
            self.ticks_at.append(done)
            tick += 1
            next_at += 0.25
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        connection.close()


def client_main(port: int, clients: int) -> None:
    """Reads 'load' / 'idle' / 'quit' lines on stdin; prints one JSON summary per load block."""
    active, stop = threading.Event(), threading.Event()
    pages = [PageClient(port, active, stop) for _ in range(clients)]
    for page in pages:
        page.start()
    for line in sys.stdin:
        command = line.strip()
        if command == "load":
            for page in pages:
                page.tick_s.clear()
                page.ticks_at.clear()
            active.set()
        elif command == "idle":
            active.clear()
            time.sleep(0.3)  # let the ticks in flight finish
            ticks = [t for page in pages for t in page.tick_s]
            rates = [
                (len(p.ticks_at) - 1) / (p.ticks_at[-1] - p.ticks_at[0]) for p in pages if len(p.ticks_at) > 2
            ]
            print(
                json.dumps(
                    {
                        "ticks": ticks,
                        "rate_per_client": rates,
                        "requests": sum(p.requests for p in pages),
                        "errors": sum(p.errors for p in pages),
                    }
                ),
                flush=True,
            )
        elif command == "quit":
            break
    stop.set()
    active.set()


# ------------------------------------------------------------------ the gateway side
def percentiles(values: np.ndarray[Any, Any]) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "p99_9": float("nan"), "max": float("nan")}
    p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
    return {"p50": float(p50), "p99": float(p99), "p99_9": float(p999), "max": float(values.max())}


def run(args: argparse.Namespace) -> None:
    program = compile_source(PROGRAM.format(n=args.evs), "dashboard_load_site.st")
    scenario = parse_scenario(scenario_data(args.evs), "<bench scenario>", Path("."))
    meter = {"frequency_hz": "site.grid_hz", "power_w": "site.site_p_w"}
    driver = SimDriver(scenario, meter, "site.evs", args.evs, max_history_rows=10_000)
    executor = Executor(program, clock=MonotonicClock(), drivers=[driver])
    server = DashboardServer(executor, port=0, token="bench-token-0123456789")
    server.gate.enabled = not args.no_gate
    server.start()
    server.sampler.stop()
    client = subprocess.Popen(
        [sys.executable, __file__, "--client-port", str(server.port), "--clients", str(args.clients)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdin is not None and client.stdout is not None
    samples: dict[str, dict[str, list[np.ndarray[Any, Any]]]] = {
        v: {"wake": [], "exec": [], "overruns": [], "scans": []} for v in VARIANTS
    }
    client_results: list[dict[str, Any]] = []
    blocks = max(1, round(args.duration / args.block))
    stats = executor.scheduler.stats

    def conduct() -> None:
        time.sleep(args.warmup)
        for _ in range(blocks):
            for variant in VARIANTS:
                if variant == "off":
                    server.sampler.stop()
                else:
                    server.sampler.start()
                if variant == "load":
                    client.stdin.write("load\n")  # type: ignore[union-attr]
                    client.stdin.flush()  # type: ignore[union-attr]
                executor.request_stats_reset()
                time.sleep(args.block)
                task = stats.task("DEFAULT")
                samples[variant]["wake"].append(task.wake_latency.window())
                samples[variant]["exec"].append(task.execution.window())
                samples[variant]["overruns"].append(np.array([task.overruns]))
                samples[variant]["scans"].append(np.array([task.scans]))
                if variant == "load":
                    client.stdin.write("idle\n")  # type: ignore[union-attr]
                    client.stdin.flush()  # type: ignore[union-attr]
                    client_results.append(json.loads(client.stdout.readline()))  # type: ignore[union-attr]
        executor.stop()

    conductor = threading.Thread(target=conduct, daemon=True)
    conductor.start()
    session = RealtimeSession(executor, status_every_s=3600.0, status_out=io.StringIO())
    session.run()
    conductor.join()
    client.stdin.write("quit\n")
    client.stdin.flush()
    client.wait(timeout=10)
    server.stop()
    report(args, samples, client_results)


def report(
    args: argparse.Namespace,
    samples: dict[str, dict[str, list[np.ndarray[Any, Any]]]],
    clients: list[dict[str, Any]],
) -> None:
    gate = "off (--no-gate)" if args.no_gate else "on"
    print(
        f"\n{args.evs} EVs, 10 ms task, {args.duration:g} s per variant in blocks of {args.block:g} s, slack gate {gate}"
    )
    print(
        f"{'variant':8s} {'scans':>6s} {'overruns':>8s}  wake p50 / p99 / p99.9 / max           exec p50 / p99 / p99.9 / max"
    )
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for variant in VARIANTS:
        wake = np.concatenate(samples[variant]["wake"])
        execution = np.concatenate(samples[variant]["exec"])
        overruns = int(sum(int(a[0]) for a in samples[variant]["overruns"]))
        scans = int(sum(int(a[0]) for a in samples[variant]["scans"]))
        figures[variant] = {"wake": percentiles(wake), "exec": percentiles(execution)}
        w, e = figures[variant]["wake"], figures[variant]["exec"]
        print(
            f"{variant:8s} {scans:6d} {overruns:8d}  "
            + " / ".join(format_ns(w[k]) for k in ("p50", "p99", "p99_9", "max")).ljust(38)
            + " / ".join(format_ns(e[k]) for k in ("p50", "p99", "p99_9", "max"))
        )
    for a, b in (("load", "idle"), ("idle", "off"), ("load", "off")):
        wake = figures[a]["wake"]["p99"] / figures[b]["wake"]["p99"]
        execution = figures[a]["exec"]["p99"] / figures[b]["exec"]["p99"]
        print(f"ratio {a}/{b}: wake-latency p99 x{wake:.2f}, execution p99 x{execution:.2f}")
    ticks = np.array([t for c in clients for t in c["ticks"]])
    rates = [r for c in clients for r in c["rate_per_client"]]
    requests = sum(c["requests"] for c in clients)
    errors = sum(c["errors"] for c in clients)
    load_s = args.block * len(clients)
    if ticks.size:
        tick = percentiles(ticks * 1e9)
        print(
            f"clients: {args.clients} pages, refresh {np.mean(rates):.2f}/s per page (min {min(rates):.2f}), "
            f"{requests / load_s:.0f} requests/s, {errors} errors; one refresh took "
            f"p50 {format_ns(tick['p50'])}, p99 {format_ns(tick['p99'])}, max {format_ns(tick['max'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evs", type=int, default=100, help="EV sessions in the program (default 100)")
    parser.add_argument("--clients", type=int, default=4, help="simulated pages polling at 4 Hz (default 4)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per variant (default 20)")
    parser.add_argument("--block", type=float, default=5.0, help="seconds per block (default 5)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (default 3)")
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="let dashboard threads run any time (to see what the gate buys)",
    )
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_port is not None:
        client_main(args.client_port, args.clients)
        return
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"GIL switch interval before the real-time setup: {sys.getswitchinterval() * 1e3:g} ms")
    run(args)


if __name__ == "__main__":
    main()
