"""The OCPP station's own process: the websocket, the JSON-schema validation and the store run here, so
that none of it competes with the scan thread for the interpreter lock (measured: in a thread of the
scan's process, 20 requests/s of the CSMS raised the scan's wake-latency p99 from 3 to 90 µs).

The process is started by ``OcppDriver`` (multiprocessing forkserver: forked from a clean, single-threaded
server that has imported this module, so a start takes milliseconds) with one duplex pipe:

- driver → station: ``("snapshot", wall_s, sessions)`` (wall time on the executor's clock; between
  snapshots the station extrapolates it in real time, or holds it under a virtual clock) and
  ``("stop",)``;
- station → driver: ``("plan", Plan)``, ``("link", LinkState)`` and ``("status", counters)``.

The station dies with its parent (PR_SET_PDEATHSIG, and the pipe's end-of-file): a kill -9 of plcrun
leaves no second writer on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from .config import OcppConfig
from .station import LinkState, Plan, Station

log = logging.getLogger("plcrun.ocpp")
STATUS_EVERY_S = 0.2
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_main(config: OcppConfig, conn: Connection, real_time: bool, wall_s: float, log_level: int) -> None:
    _die_with_parent()
    logging.basicConfig(level=log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(config, conn, real_time, wall_s))
    except Exception:
        log.exception("OCPP station process failed")


async def _serve(config: OcppConfig, conn: Connection, real_time: bool, wall_s: float) -> None:
    loop = asyncio.get_running_loop()
    clock = {"wall": wall_s, "at": time.monotonic()}
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock, contextlib.suppress(OSError, EOFError, BrokenPipeError):
            conn.send(message)

    def wall() -> float:
        return float(clock["wall"]) + (time.monotonic() - clock["at"] if real_time else 0.0)

    def publish_plan(plan: Plan) -> None:
        send(("plan", plan))

    def on_link(link: LinkState) -> None:
        send(("link", LinkState(link.connected, link.version, link.accepted, link.detail, link.problem, {})))

    station = Station(config, wall, publish_plan, on_link)

    def take_snapshot(t: float, sessions: Any) -> None:
        clock["wall"], clock["at"] = t, time.monotonic()
        station.snapshot = (t, sessions)

    def reader() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone
            except Exception:  # guarded: one bad message must not end the snapshots
                log.exception("OCPP station: a message from the driver could not be read")
                continue
            if message[0] == "snapshot":
                loop.call_soon_threadsafe(take_snapshot, message[1], message[2])
            elif message[0] == "stop":
                break
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(station.stop)

    threading.Thread(target=reader, name="plcrun-ocpp-pipe", daemon=True).start()

    async def report() -> None:
        while True:
            counters = dict(station.counters)
            if station.store is not None:
                counters["queue_pending"] = station.store.queue.pending_count
            send(("status", counters))
            await asyncio.sleep(STATUS_EVERY_S)

    reporter = asyncio.create_task(report())
    try:
        await station.run()
    finally:
        reporter.cancel()
        counters = dict(station.counters)
        if station.store is not None:
            counters["queue_pending"] = station.store.queue.pending_count
        send(("status", counters))
