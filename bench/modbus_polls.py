"""How many polls per second the Modbus driver sustains per device, and what the scan thread pays.

Run from the repository root:  python bench/modbus_polls.py [--devices 3] [--seconds 3]

Peers: simulated SunSpec meters (pymodbus servers, one process each) on 127.0.0.1. Every poll reads
the meter's float32 frequency and power (213.Hz, 213.W: one request). Variants, all in this run:

- baseline: a bare pymodbus sync client reading one meter back to back (what the ratios compare to),
  and the same with the asyncio client: request latency decides what a 10 ms poll costs;
- bare clients on all devices back to back: a thread per device (sync) against one event loop (async),
  the two designs the driver could have used, without any driver logic;
- driver @10 ms: the plcrun driver, one thread per device, poll group at the 10 ms scan period;
- driver back-to-back: the same driver with the poll period forced to 0 (capacity, not a config).

It also times ``read_inputs()`` on the scan thread while the devices poll every 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plcrun.io.modbus.driver import ModbusDeviceDriver  # noqa: E402
from plcrun.io.modbus.model import DeviceSpec, PollGroupSpec  # noqa: E402
from plcrun.io.site_config import parse_site_config  # noqa: E402
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient  # noqa: E402

from tests.support.modbus_devices import M213, METER_BASE, ModbusPeer  # noqa: E402

HZ_213 = METER_BASE + M213 + 26


class Clock:
    def now_ns(self) -> int:
        return time.monotonic_ns()


def meter_spec(name: str, port: int, period_ms: int) -> DeviceSpec:
    table = {
        "host": "127.0.0.1",
        "port": port,
        "profile": "sunspec",
        "timeout_ms": 500,
        "poll_ms": 10,
        "points": {
            "hz": {"sunspec": "213.Hz", "bind": f"{name}.hz"},
            "w": {"sunspec": "213.W", "bind": f"{name}.w", "plausible": [-1e9, 1e9]},
        },
    }
    catalog = {f"{name}.hz": "LREAL", f"{name}.w": "REAL"}
    device = parse_site_config({"devices": {name: table}}, "bench", catalog).devices[name]
    if period_ms != 10:  # a capacity probe: below what the configuration allows
        group = device.poll_groups["default"]
        device = replace(device, poll_groups={"default": PollGroupSpec("default", period_ms, group.stale_ms)})
    return device


def sync_device(port: int, end: float, latencies: list[float]) -> int:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1)
    client.connect()
    count = 0
    while time.monotonic() < end:
        t0 = time.perf_counter_ns()
        client.read_holding_registers(HZ_213, count=4, device_id=1)
        latencies.append((time.perf_counter_ns() - t0) / 1000)
        count += 1
    client.close()
    return count


def run_threads(peers: list[ModbusPeer], seconds: float) -> tuple[list[float], list[float]]:
    end = time.monotonic() + seconds
    counts = [0] * len(peers)
    latencies: list[float] = []

    def device(index: int) -> None:
        counts[index] = sync_device(peers[index].port, end, latencies)

    threads = [threading.Thread(target=device, args=(i,)) for i in range(len(peers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [c / seconds for c in counts], latencies


def run_drivers(peers: list[ModbusPeer], period_ms: int, seconds: float) -> tuple[list[float], list[float]]:
    """Polls per second of each device and the scan thread's read_inputs() times (µs)."""
    drivers = [ModbusDeviceDriver(meter_spec(f"m{i}", p.port, period_ms)) for i, p in enumerate(peers)]
    for driver in drivers:
        driver.start(Clock())
    time.sleep(0.5)  # connect and discover
    before = [d.status().counters["polls"] for d in drivers]
    read_times: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # a 10 ms "scan" that only collects inputs
        for driver in drivers:
            t0 = time.perf_counter_ns()
            driver.read_inputs(time.monotonic_ns())
            read_times.append((time.perf_counter_ns() - t0) / 1000)
        time.sleep(0.01)
    rates = [(d.status().counters["polls"] - b) / seconds for d, b in zip(drivers, before, strict=True)]
    for driver in drivers:
        driver.stop()
    return rates, read_times


async def _async_device(port: int, end: float, latencies: list[float]) -> int:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1)
    await client.connect()
    count = 0
    while time.monotonic() < end:
        t0 = time.perf_counter_ns()
        await client.read_holding_registers(HZ_213, count=4, device_id=1)
        latencies.append((time.perf_counter_ns() - t0) / 1000)
        count += 1
    client.close()
    return count


def run_asyncio(peers: list[ModbusPeer], seconds: float) -> tuple[list[float], list[float]]:
    latencies: list[float] = []

    async def main() -> list[int]:
        end = time.monotonic() + seconds
        return list(await asyncio.gather(*(_async_device(p.port, end, latencies) for p in peers)))

    return [count / seconds for count in asyncio.run(main())], latencies


def latency(values: list[float]) -> str:
    return f"request p50 {statistics.median(values):.0f} µs, p99 {percentile(values, 0.99):.0f} µs"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print("command: python bench/modbus_polls.py " + " ".join(sys.argv[1:]))
    peers = [ModbusPeer("meter").start() for _ in range(args.devices)]
    try:
        rates, lat = run_threads(peers[:1], args.seconds)
        base = rates[0]
        print(f"baseline  sync client, 1 device back to back:    {base:6.0f} polls/s, {latency(lat)}")
        rates, lat = run_asyncio(peers[:1], args.seconds)
        print(f"          async client, 1 device back to back:   {rates[0]:6.0f} polls/s, {latency(lat)}")
        rates, lat = run_threads(peers, args.seconds)
        print(
            f"bare      {args.devices} devices, thread per device: {sum(rates):6.0f} polls/s in all "
            f"({sum(rates) / base:.2f} x baseline), {latency(lat)}"
        )
        rates, lat = run_asyncio(peers, args.seconds)
        print(
            f"bare      {args.devices} devices, one asyncio loop:  {sum(rates):6.0f} polls/s in all "
            f"({sum(rates) / base:.2f} x baseline), {latency(lat)}"
        )
        rates, reads = run_drivers(peers, 10, args.seconds)
        print(
            f"driver    poll period 10 ms, {args.devices} devices: "
            + ", ".join(f"{r:.0f}" for r in rates)
            + f" polls/s per device ({min(rates) / 100:.2f} of the 100/s target at worst)"
        )
        print(
            f"          read_inputs() on the scan thread: p50 {statistics.median(reads):.1f} µs, "
            f"p99 {percentile(reads, 0.99):.1f} µs, max {max(reads):.1f} µs over {len(reads)} calls"
        )
        rates, _ = run_drivers(peers, 0, args.seconds)
        print(
            f"driver    back to back, {args.devices} devices: "
            + ", ".join(f"{r:.0f}" for r in rates)
            + f" polls/s per device ({sum(rates) / base:.2f} x baseline in all)"
        )
    finally:
        for peer in peers:
            peer.kill()


if __name__ == "__main__":
    main()
