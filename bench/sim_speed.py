"""Speed and memory of the built-in simulation at 10, 100 and 1000 EVs.

For each fleet size, on the same 10 ms scan grid:

* ``FleetModel``: grid (seeded noise), meter and the reference fleet stepped per step (numpy), the
  cost of one step, also as a multiple of ``baseline``: one numpy in-place add over N floats per
  step, measured in the same run (so it reads as "this many elementary numpy operations");
* ``LazyFleet``: the closed-form fleet the driver runs, new setpoints every second, total power
  every step;
* ``SimDriver``: the whole driver path per scan (``read_inputs`` with its samples, ``write_outputs``
  with one setpoint per car, the history completed at the end), the way the executor calls it, for
  setpoints that stay the same, change every second, or change every scan; only the time spent in
  the driver's calls counts (the executor builds the setpoint dict).

Memory per EV session (tracemalloc): the fleet model's arrays, the driver's bindings (path strings,
last-sent arrays, without the history), and the history's per-car power matrix per simulated minute.

    python bench/sim_speed.py                 # 20 simulated seconds per size
    python bench/sim_speed.py --seconds 60    # longer, steadier figures
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from plcrun.io.sim import Scenario, SimDriver, parse_scenario
from plcrun.io.sim.fleet import FleetModel
from plcrun.io.sim.fleet_lazy import LazyFleet
from plcrun.io.sim.grid import GridModel
from plcrun.io.sim.meter import MeterModel

SIZES = (10, 100, 1000)
METER = {"frequency_hz": "main.grid_hz", "voltage_v": "main.grid_v", "power_w": "main.site_w"}


def scenario_for(n_evs: int, seconds: float) -> Scenario:
    data: dict[str, object] = {
        "scenario": {"name": f"bench_{n_evs}", "duration_s": seconds, "seed": 3},
        "grid": {"segments": [{"kind": "noise", "hz": 50.0, "sigma_hz": 0.01}]},
        "fleet": {"n_evs": n_evs, "seed": 3, "report_period_s": 0.5},
        "site": {"base_load_w": 5000.0},
    }
    return parse_scenario(data, f"bench:{n_evs}", Path("."))


def setpoints_for(step: int, n: int) -> np.ndarray:
    """A setpoint pattern that keeps every car moving (changes every second)."""
    phase = (step // 100) % 4
    return np.full(n, (-6000.0, 0.0, 6000.0, 3000.0)[phase])


PATTERNS: dict[str, Callable[[int, int], np.ndarray]] = {
    # the program holds its setpoints (a quiet grid)
    "steady": lambda step, n: np.full(n, 6000.0),
    # new setpoints every second
    "per second": setpoints_for,
    # new setpoints every scan (a frequency ramp or event)
    "per scan": lambda step, n: np.full(n, 4200.0 + (step % 100) * 60.0),
}


def time_models(scenario: Scenario) -> float:
    """The reference models stepped per step: grid chunk, ``FleetModel.step`` (numpy), meter."""
    grid = GridModel(scenario)
    fleet = FleetModel(scenario.fleet, scenario.nominal_voltage_v)
    meter = MeterModel(scenario.meter, scenario.faults, scenario.scan_period_s)
    dt, steps = scenario.scan_period_s, scenario.n_steps
    start = time.perf_counter()
    chunk_hz, chunk_v = grid.sample(np.arange(steps + 1) * dt)
    for step in range(steps):
        fleet.setpoint_w[:] = setpoints_for(step, fleet.n)
        fleet.step(step * dt, dt, float(chunk_v[step]))
        site = 5000.0 + float(fleet.power_w.sum())
        meter.update(step + 1, (step + 1) * dt, float(chunk_hz[step + 1]), float(chunk_v[step + 1]), site)
        fleet.soc_stats()
    return time.perf_counter() - start


def time_lazy_fleet(scenario: Scenario) -> float:
    """The closed-form fleet the driver runs (``LazyFleet``), same setpoints, total power per step."""
    fleet = LazyFleet(scenario.fleet, scenario.nominal_voltage_v, scenario.scan_period_s)
    cars = np.arange(fleet.n, dtype=np.int64)
    start = time.perf_counter()
    for step in range(scenario.n_steps):
        if step % 100 == 0:
            fleet.set_setpoints(cars, setpoints_for(step, fleet.n))
        fleet.advance(230.0)
        fleet.total_power()
    return time.perf_counter() - start


def time_driver(scenario: Scenario, pattern: Callable[[int, int], np.ndarray]) -> tuple[float, int]:
    """Seconds spent in the driver's calls (building the setpoint dicts is the executor's part and
    not counted), and the number of samples returned."""
    driver = SimDriver(scenario, METER, "main.evs")
    paths = sorted(driver.output_paths(), key=lambda p: int(p.split("[")[1].split("]")[0]))
    samples = 0
    spent = 0.0
    clock = time.perf_counter
    for step in range(scenario.n_steps + 1):
        now = step * scenario.scan_period_ns
        values = dict(zip(paths, pattern(step, len(paths)).tolist(), strict=True))
        start = clock()
        samples += len(driver.read_inputs(now))
        driver.write_outputs(now, values)
        spent += clock() - start
    start = clock()
    driver.history()  # the last history rows are completed here
    return spent + clock() - start, samples


def time_baseline(n: int, steps: int) -> float:
    a, b = np.zeros(n), np.ones(n)
    start = time.perf_counter()
    for _ in range(steps):
        a += b
    return time.perf_counter() - start


def allocated(build: Callable[[], object]) -> tuple[int, object]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, kept


def memory_per_ev(n: int) -> dict[str, float]:
    scenario = scenario_for(n, 60.0)
    fleet_bytes, _ = allocated(lambda: FleetModel(scenario.fleet, scenario.nominal_voltage_v))
    driver_bytes, driver = allocated(lambda: SimDriver(scenario, METER, "main.evs"))
    assert isinstance(driver, SimDriver)
    history = driver.recorder
    history_bytes = history._ev_power.nbytes + sum(a.nbytes for a in history._scalars.values())
    sent_bytes, _ = allocated(lambda: driver.read_inputs(0))
    return {
        "fleet_model_b": fleet_bytes / n,
        "driver_bindings_b": (driver_bytes - history_bytes) / n,
        "history_per_min_b": history._ev_power.nbytes / n,
        "first_read_samples_b": sent_bytes / n,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per size")
    args = parser.parse_args(argv)
    print("command:", " ".join([sys.executable, *sys.argv]))
    print(f"simulated {args.seconds:g} s per size on a 10 ms grid ({round(args.seconds / 0.01)} steps)\n")
    header = f"{'EVs':>5} {'FleetModel step us':>18} {'x numpy add':>11} {'LazyFleet step us':>17}"
    print(header + "   (reference model per step; the closed-form fleet the driver runs)")
    driver_rows = []
    for n in SIZES:
        scenario = scenario_for(n, args.seconds)
        steps = scenario.n_steps
        models = time_models(scenario)
        base = time_baseline(n, steps)
        lazy = time_lazy_fleet(scenario)
        print(f"{n:>5} {models / steps * 1e6:>18.1f} {models / base:>11.1f} {lazy / steps * 1e6:>17.2f}")
        for name, pattern in PATTERNS.items():
            driver, samples = time_driver(scenario, pattern)
            driver_rows.append(
                (n, name, args.seconds / driver, driver / (steps + 1) * 1e6, samples / (steps + 1))
            )
    print("\nSimDriver alone (read_inputs + write_outputs of every setpoint + history), by setpoint pattern:")
    print(f"{'EVs':>5} {'setpoints':>11} {'sim s/s':>9} {'us/scan':>8} {'samples/scan':>12}")
    for n, name, ratio, scan_us, per_scan in driver_rows:
        print(f"{n:>5} {name:>11} {ratio:>9.0f} {scan_us:>8.1f} {per_scan:>12.1f}")
    print("\nmemory per EV session (tracemalloc, bytes):")
    for n in SIZES:
        figures = memory_per_ev(n)
        print(f"{n:>5} EVs: " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
