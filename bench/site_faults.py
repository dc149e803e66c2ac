"""Fault -> safe outputs, and back: how long the shipped site (programs/freq_response.st with
examples/site.toml, FCR 10 kW) takes to put the chargers' setpoints to their safe value after each
kind of fault, and to deliver the response again once the fault is gone.

    python bench/site_faults.py --repeats 5

The meter and the two chargers are the Modbus test peers (other processes on 127.0.0.1). The meter
holds 49.9 Hz, so each charger's setpoint is -2500 W. For each fault the bench injects it, polls the
charger registers every 5 ms until both read 0 W (for a lost charger: until the other one takes over
its share), removes the fault and waits until both read -2500 W again. Prints the median and maximum
of each time in ms, beside the scan period (10 ms) as the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

from tests.support.modbus_devices import M213, METER_BASE, QUASAR, ModbusPeer, from_s16  # noqa: E402

HZ = METER_BASE + M213 + 26


def wait(condition: Callable[[], bool], timeout_s: float = 30.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            return float("nan")
        time.sleep(0.005)
    return (time.monotonic() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"command: python bench/site_faults.py --repeats {args.repeats}")
    with ModbusPeer("meter") as meter, ModbusPeer("charger") as c1, ModbusPeer("charger") as c2:
        meter.set_meter(hz=49.9, watts=0.0, volts=230.0)
        text = (ROOT / "examples" / "site.toml").read_text()
        for old, new in ((15020, meter.port), (15021, c1.port), (15022, c2.port)):
            text = text.replace(f"port = {old}", f"port = {new}")
        config = Path("/tmp") / f"plcrun-faults-{meter.port}.toml"
        config.write_text(text)
        site = SiteRuntime.build(compile_file(ROOT / "programs" / "freq_response.st"), config=str(config))
        site.start()
        thread = threading.Thread(target=site.executor.run, name="scan", daemon=True)
        thread.start()
        chargers = [c1, c2]

        def setpoints() -> list[int]:
            return [from_s16(c.registers(QUASAR["setpoint"])[0]) for c in chargers if c.alive]

        def responding() -> bool:
            return c1.alive and c2.alive and setpoints() == [-2500, -2500]

        def safe() -> bool:
            return setpoints() == [0, 0]

        faults: list[tuple[str, Callable[[], None], Callable[[], None], Callable[[], bool]]] = [
            ("meter lost (process killed)", meter.kill, meter.restart, safe),
            (
                "meter answers late (0.5 s > timeout)",
                lambda: meter.delay(0.5),
                lambda: meter.delay(0.0),
                safe,
            ),
            (
                "frequency NaN",
                lambda: meter.set_float(HZ, float("nan")),
                lambda: meter.set_meter(hz=49.9),
                safe,
            ),
            (
                "frequency implausible (70 Hz)",
                lambda: meter.set_meter(hz=70.0),
                lambda: meter.set_meter(hz=49.9),
                safe,
            ),
            (
                "voltage collapse (100 V)",
                lambda: meter.set_meter(volts=100.0),
                lambda: meter.set_meter(volts=230.0),
                safe,
            ),
            ("charger 2 lost (share to charger 1)", c2.kill, c2.restart, lambda: setpoints() == [-5000]),
        ]
        results = {}
        for name, inject, remove, reached in faults:
            to_safe, back = [], []
            for _ in range(args.repeats):
                wait(responding, 60.0)
                time.sleep(0.5)
                inject()
                to_safe.append(wait(reached))
                remove()
                if name == "meter lost (process killed)":  # the restarted peer starts at 50 Hz
                    meter.set_meter(hz=49.9, watts=0.0, volts=230.0)
                back.append(wait(responding, 60.0))
            results[name] = (to_safe, back)
        site.executor.stop()
        thread.join(10)
        site.stop()
    print("scan period (baseline): 10 ms")
    print(f"{'fault':40s} {'to safe: median / max':>24s} {'recovery: median / max':>26s}")
    for name, (to_safe, back) in results.items():
        print(
            f"{name:40s} {statistics.median(to_safe):10.0f} / {max(to_safe):6.0f} ms"
            f" {statistics.median(back):12.0f} / {max(back):6.0f} ms"
        )


if __name__ == "__main__":
    main()
