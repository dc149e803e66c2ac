# mypy: ignore-errors
# (runs inside the SECC process, against the iso15118 package, which plcrun's environment lacks)
"""The SECC process: one ISO 15118 SECC per configured EVSE, all in one asyncio loop sharing one EXI
codec (one JVM), talking to plcrun over the socket given as ``--fd`` (protocol: ``../wire.py``).

Started by plcrun (``plcrun.io.iso15118.process``) as
``<secc venv>/bin/python <this file> --fd N --config FILE``; it imports only the standard library, its
siblings and the iso15118 package. It ends when plcrun says ``quit`` or closes the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import pnc
import tls_watch
from pki_check import check_pki


def _load_wire():
    """The line protocol is plcrun's module ``plcrun.io.iso15118.wire``: load it from its file."""
    spec = importlib.util.spec_from_file_location(
        "plcrun_wire", Path(__file__).resolve().parent.parent / "wire.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wire = _load_wire()

log = logging.getLogger("plcrun.secc")


class Link:
    """The socket to plcrun: lines out (never blocking the loop), checked lines in."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.dropped = 0

    def emit(self, message: dict) -> None:
        try:
            self.writer.write(wire.encode(message))
        except (ValueError, RuntimeError, OSError) as exc:  # too long, or plcrun went away
            self.dropped += 1
            log.warning("not sent to plcrun: %s", exc)


def _env_file(directory: str, evse: dict, config: dict) -> str:
    """The package reads its settings from an env file: one per EVSE."""
    lines = {
        "NETWORK_INTERFACE": evse["iface"],
        "PROTOCOLS": ",".join(evse["protocols"]),
        "AUTH_MODES": ",".join(evse["auth_modes"]),
        "SECC_ENFORCE_TLS": "True" if evse["tls"] else "False",
        "FREE_CHARGING_SERVICE": "False",
        "ALLOW_CERT_INSTALL_SERVICE": "False",
        "PKI_PATH": config["pki_path"].rstrip("/") + "/",
        "ENABLE_TLS_1_3": "True" if config["tls_1_3"] else "False",
        "MESSAGE_LOG_JSON": "False",
        "MESSAGE_LOG_EXI": "False",
        "LOG_LEVEL": config["log_level"],
    }
    path = os.path.join(directory, f"{evse['id']}.env")
    with open(path, "w") as f:
        f.writelines(f"{key}={value}\n" for key, value in lines.items())
    return path


def warm_up(codec, rounds: int = 30) -> float:
    """Encode and decode a -20 SessionSetupReq ``rounds`` times before the first car comes: the JVM's
    first calls take seconds on a loaded machine, longer than a car waits for an answer. Returns s."""
    from iso15118.shared.exi_codec import EXI
    from iso15118.shared.messages.enums import Namespace
    from iso15118.shared.messages.iso15118_20.common_messages import SessionSetupReq
    from iso15118.shared.messages.iso15118_20.common_types import MessageHeader

    EXI().set_exi_codec(codec)
    start = time.monotonic()
    for _ in range(rounds):
        request = SessionSetupReq(
            header=MessageHeader(session_id="00", timestamp=int(time.time())), evcc_id="WARMUP0000000001"
        )
        EXI().from_exi(EXI().to_exi(request, Namespace.ISO_V20_COMMON_MSG), Namespace.ISO_V20_COMMON_MSG)
    return time.monotonic() - start


async def _check_tls(link: Link, config: dict, tls_evses: list[dict], forever: bool) -> set[str]:
    """Alarms for the PKI; returns the EVSEs that may not start (TLS asked for, PKI unusable)."""
    raised: dict[str, set[str]] = {}
    while True:
        problems, warnings = check_pki(config["pki_path"], config["tls_1_3"])
        for evse in tls_evses:
            keys = raised.setdefault(evse["id"], set())
            now = {f"certificate:{i}": f"TLS refused on {evse['iface']}: {p}" for i, p in enumerate(problems)}
            now |= {f"certificate-expiry:{i}": w for i, w in enumerate(warnings)}
            for key, text in now.items():
                link.emit({"t": "alarm", "evse": evse["id"], "key": key, "raise": True, "text": text})
            for key in keys - set(now):
                link.emit({"t": "alarm", "evse": evse["id"], "key": key, "raise": False, "text": "resolved"})
            raised[evse["id"]] = set(now)
        if not forever:
            return {evse["id"] for evse in tls_evses} if problems else set()
        await asyncio.sleep(config["recheck_s"])


async def run(config: dict, fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=wire.MAX_LINE)
    link = Link(writer)
    evses = config["evses"]
    ids = frozenset(e["id"] for e in evses)
    link.emit({"t": "hello", "version": wire.VERSION, "evses": sorted(ids)})

    # the package is imported only now: its import starts nothing, but takes a while
    from evse_controller import PlcrunEVSEController
    from iso15118.secc import SECCHandler
    from iso15118.secc.controller.interface import ServiceStatus
    from iso15118.secc.secc_settings import Config
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec

    logging.getLogger().setLevel(config["log_level"])  # the package's import reset it to its own
    # it warns in every AC charge loop that no reactive power setpoint is given (plcrun sets none)
    logging.getLogger("iso15118.secc.controller.interface").setLevel(logging.ERROR)
    tls_evses = [e for e in evses if e["tls"]]
    tls_watch.install(_handshake_alarms(link, evses))
    pnc.capture_contracts()
    refused = await _check_tls(link, config, tls_evses, forever=False) if tls_evses else set()
    codec = ExificientEXICodec()
    directory = tempfile.mkdtemp(prefix="plcrun-secc-")
    controllers = {}
    warmed = False
    tasks = []
    for evse in evses:
        if evse["id"] in refused:
            link.emit(
                {
                    "t": "state",
                    "evse": evse["id"],
                    "up": False,
                    "detail": "not started: TLS material unusable",
                }
            )
            continue
        secc_config = Config()
        secc_config.load_envs(_env_file(directory, evse, config))
        if not warmed:  # after load_envs: the codec reads the package's shared settings
            warmed = True
            log.info("EXI codec warmed up in %.1f s", warm_up(codec))
        controller = PlcrunEVSEController(evse, link.emit, config["pki_path"])
        await controller.set_status(ServiceStatus.STARTING)
        controllers[evse["id"]] = controller
        handler = SECCHandler(exi_codec=codec, evse_controller=controller, config=secc_config)
        tasks.append(asyncio.create_task(_serve(link, evse, handler)))
    if tls_evses:
        tasks.append(asyncio.create_task(_check_tls(link, config, tls_evses, forever=True)))
    if os.environ.get(LAG_FILE_ENV):
        tasks.append(asyncio.create_task(_measure_lag(os.environ[LAG_FILE_ENV], controllers, codec)))
    try:
        await _commands(reader, link, ids, controllers)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(writer.drain(), 1.0)


def _handshake_alarms(link: Link, evses: list[dict]):
    """A failed TLS handshake raises ``iso15118:<evse>:tls-handshake`` with its reason (a new reason
    raises it again); the next handshake that succeeds on that interface clears it."""
    by_iface = {e["iface"]: e["id"] for e in evses}
    failing: dict[str, str] = {}

    def report(iface: str, ok: bool, text: str) -> None:
        evse = by_iface.get(iface)
        if evse is None:
            return
        if ok:
            if failing.pop(evse, None) is not None:
                text = f"TLS handshake on {iface} succeeded ({text})"
                link.emit({"t": "alarm", "evse": evse, "key": "tls-handshake", "raise": False, "text": text})
            return
        log.warning("TLS handshake on %s failed: %s", iface, text)
        if failing.get(evse) != text:
            failing[evse] = text
            text = f"TLS handshake with a car on {iface} failed: {text}"
            link.emit({"t": "alarm", "evse": evse, "key": "tls-handshake", "raise": True, "text": text})

    return report


LAG_FILE_ENV = "PLCRUN_SECC_LAG_FILE"  # benches: where the event loop's lateness goes (off by default)


async def _measure_lag(path: str, controllers: dict, codec, period_s: float = 0.02) -> None:
    """How late this process's event loop wakes a 20 ms sleeper: every 5 s one JSON line with the
    p50/p99/max lateness in ms, the sessions in their charge loops, and the EXI codec's calls (count,
    ms in all, the longest): they block the loop while the JVM works. A car waits at most 0.5 s for a
    charge-loop answer: a loop blocked that long drops cars."""
    exi = {"calls": 0, "ms": 0.0, "max_ms": 0.0}

    def timed(call):
        def run(*args):
            start = time.monotonic()
            try:
                return call(*args)
            finally:
                spent = (time.monotonic() - start) * 1000
                exi["calls"] += 1
                exi["ms"] += spent
                exi["max_ms"] = max(exi["max_ms"], spent)

        return run

    codec.encode, codec.decode = timed(codec.encode), timed(codec.decode)
    samples: list[float] = []
    flushed = time.monotonic()
    with open(path, "a", buffering=1) as out:
        while True:
            start = time.monotonic()
            await asyncio.sleep(period_s)
            now = time.monotonic()
            samples.append((now - start - period_s) * 1000)
            if now - flushed >= 5.0:
                samples.sort()
                line = {"t": time.time(), "n": len(samples), "p50_ms": samples[len(samples) // 2],
                        "p99_ms": samples[int(len(samples) * 0.99)], "max_ms": samples[-1],
                        "sessions": sum(c.connected for c in controllers.values()),
                        "loops": sum(c.loops for c in controllers.values())} | {
                        f"exi_{k}": v for k, v in exi.items()}  # fmt: skip
                out.write(json.dumps(line) + "\n")
                samples, flushed = [], now
                exi.update(calls=0, ms=0.0, max_ms=0.0)


async def _serve(link: Link, evse: dict, handler) -> None:
    link.emit({"t": "state", "evse": evse["id"], "up": True, "detail": f"SECC listening on {evse['iface']}"})
    try:
        await handler.start(evse["iface"])
        detail = "SECC stopped"
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("SECC on %s failed", evse["iface"])
        detail = f"SECC on {evse['iface']} failed: {type(exc).__name__}: {str(exc)[:200]}"
    link.emit({"t": "state", "evse": evse["id"], "up": False, "detail": detail})


async def _commands(reader: asyncio.StreamReader, link: Link, ids: frozenset, controllers: dict) -> None:
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return  # plcrun closed the socket
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)  # drop the over-long line's bytes
            log.warning("dropped a line longer than %d bytes from plcrun", wire.MAX_LINE)
            continue
        doc, why = wire.decode(line)
        message, why = wire.check_to_secc(doc, ids) if doc is not None else (None, why)
        if message is None:
            log.warning("dropped a message from plcrun: %s", why)
            continue
        if message["t"] == "quit":
            return
        controller = controllers.get(message["evse"])
        if controller is not None:
            controller.command(message["w"], message["command"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    logging.basicConfig(
        stream=sys.stderr,
        level=config.get("log_level", "WARNING"),
        format="%(asctime)s secc %(levelname)s %(name)s: %(message)s",
    )
    logging.Formatter.converter = time.gmtime
    # the car drops the session when a charge-loop answer takes over 0.5 s: run ahead of best effort
    wanted = config.get("nice", 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
    except OSError as exc:
        # as far as RLIMIT_NICE allows (systemd's LimitNICE): its soft limit r permits 20 - r
        import resource

        allowed = 20 - resource.getrlimit(resource.RLIMIT_NICE)[0]
        log.warning("cannot set the SECC process's nice value to %s (%s); using %s", wanted, exc, allowed)
        if allowed < os.getpriority(os.PRIO_PROCESS, 0):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, allowed)
    own_cpu_share(os.getpriority(os.PRIO_PROCESS, 0))
    asyncio.run(run(config, args.fd))


def own_cpu_share(nice: int) -> None:
    """With the kernel's autogroup scheduling (sched_autogroup_enabled, the default of desktop and
    many embedded kernels, when the process's cgroup has no CPU controller), a nice value only ranks
    a process against the others of its session: every other session gets the same share of the CPU
    as plcrun's whole session, whatever its processes' nice values. So the SECC leaves plcrun's
    session for one of its own and gives that the same nice value: ahead of best-effort work on
    the machine, not only within plcrun. plcrun stops it with ``quit`` (and it ends when the socket
    closes), so a terminal's Ctrl-C does not need to reach it. Without autogroup nothing changes."""
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as exc:  # no autogroup (or not permitted): the process's nice value is what counts
        log.info("no autogroup of its own (%s): nice %s within plcrun's session", exc, nice)


if __name__ == "__main__":
    main()
