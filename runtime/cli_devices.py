"""``plcrun devices SITE.toml``: serve emulated devices for every Modbus device of a site file, and the
``--duration`` values every command accepts (``20``, ``20s``, ``5m``, ``1h``)."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading

from .errors import UsageError
from .io.emulate import Rehearsal, plan_devices
from .io.sim.scenario_load import load_scenario

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds from ``20``, ``20s``, ``1.5s``, ``500ms``, ``5m`` or ``1h`` (argparse type)."""
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"'{text}': a duration must be positive")
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration: write e.g. 20, 20s, 5m or 1h")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': a duration must be positive")
    return seconds


def answer_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(",")
    try:
        pair = (float(low), float(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': write LOW,HIGH in ms, e.g. 5,50") from None
    if not 0 <= pair[0] <= pair[1] <= 10_000:
        raise argparse.ArgumentTypeError(f"'{text}': need 0 <= LOW <= HIGH <= 10000 ms")
    return pair


def cmd_devices(args: argparse.Namespace) -> int:
    served, notes = plan_devices(args.config, args.answer_ms)
    for note in notes:
        print(f"plcrun devices: {note}", file=sys.stderr)
    if not served:
        raise UsageError(f"{args.config}: no Modbus device to emulate")
    scenario = load_scenario(args.scenario)
    rehearsal = Rehearsal(served, scenario)
    try:
        rehearsal.start()
    except OSError as error:
        raise UsageError(str(error)) from None
    for device in served:
        car = f", car {device.ev_index} of the fleet" if device.ev_index is not None else ""
        print(
            f"plcrun devices: {device.name}: emulated {device.device.kind} on "
            f"{device.host}:{device.port} unit {device.unit}{car}",
            file=sys.stderr,
        )
    low, high = args.answer_ms
    print(
        f"plcrun devices: scenario '{scenario.name}' ({scenario.duration_s:g} s, repeats), answers in "
        f"{low:g}-{high:g} ms; Ctrl-C stops",
        file=sys.stderr,
    )
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: done.set())
    try:
        done.wait(args.duration)
    finally:
        rehearsal.stop()
    print(f"plcrun devices: stopped ({rehearsal.laps} full scenario runs)", file=sys.stderr)
    return 0


def add_devices_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devices = sub.add_parser(
        "devices",
        help="serve emulated devices for a site file (rehearse a site on one machine)",
        epilog="examples:\n  plcrun devices examples/site.toml\n"
        "  plcrun devices examples/site.toml --scenario ce_2019_01_10 --duration 5m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    devices.add_argument("config", metavar="SITE.toml")
    devices.add_argument(
        "--scenario", default="quiet_grid", metavar="NAME|FILE", help="grid and fleet (default quiet_grid)"
    )
    devices.add_argument("--duration", type=duration, metavar="TIME", help="stop after 20, 20s, 5m, 1h")
    devices.add_argument(
        "--answer-ms", type=answer_range, default=(5.0, 50.0), metavar="LOW,HIGH", help="answer times (5,50)"
    )
    devices.set_defaults(func=cmd_devices)
