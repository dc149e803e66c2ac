"""``plcrun devices SITE.toml``: emulated devices for every Modbus device of a site file, so a site can
be rehearsed on one machine before the hardware is there.

Each ``[devices.<name>]`` gets a Modbus TCP server on its configured host, port and unit: profile
``sunspec`` a SunSpec meter, ``quasar`` a Wallbox Quasar, ``sunspec-der`` a SunSpec DER (``generic``
devices are skipped with a note: their register map is the site's own). A simulation scenario (the
built-in grid and fleet models, ``quiet_grid`` by default) drives them every 10 ms: the meter shows the
grid frequency, voltage and the site power (base load plus what the cars really draw), and charger
``n`` (its ``ev = "main.evs[n]"``, else the order of the file) is car ``n`` of the fleet: it reports the
car's state, SoC and power, and the car follows the setpoint the gateway writes, with the fleet
model's lag (and no minimum power: a DC charger runs at any power). The scenario repeats when it ends. ``hold_frequency`` overrides the grid (benches).
Tests run it in virtual time: ``start(clock)`` with a ``VirtualClock`` starts no physics thread, and
``tick()`` steps the simulation (and the devices' own timers) at that clock's time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import threading
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...executor.clock import Clock, MonotonicClock, VirtualClock
from ..config_errors import ConfigError
from ..config_reader import TableReader
from ..sim.driver import SimDriver
from ..sim.scenario import Scenario
from ..site_config_modbus import parse_device
from ..site_config_reader import Problems
from .devices import EmulatedDevice, QuasarCharger, SunSpecDer, SunSpecMeter, Timing

log = logging.getLogger("plcrun.devices")
_EV_INDEX = re.compile(r"\[(\d+)\]\s*$")
_METER = {"frequency_hz": "meter.hz", "voltage_v": "meter.v", "power_w": "meter.w"}
_TICK_S = 0.01


@dataclass
class Served:
    name: str
    host: str
    port: int
    unit: int
    device: EmulatedDevice
    ev_index: int | None = None  # chargers: the car of the fleet behind it


def plan_devices(path: str, answer_ms: tuple[float, float] = (5.0, 50.0)) -> tuple[list[Served], list[str]]:
    """The emulated devices of a site file (``ConfigError`` for an unreadable file or bad device
    tables) and notes about devices that are not emulated."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(path, "", f"cannot read the file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, "", f"not valid TOML: {error}") from None
    problems = Problems(path)
    devices = TableReader(data, "", problems).table("devices")
    served: list[Served] = []
    notes: list[str] = []
    chargers = 0
    for name, value in devices.items() if devices is not None else []:
        if not isinstance(value, dict):
            continue
        reader = TableReader(value, devices.key_of(name) if devices else name, problems)
        draft = parse_device(name, reader, problems)
        if draft is None:
            continue
        spec = draft.spec
        timing = Timing(*answer_ms)
        device: EmulatedDevice
        ev_index = None
        if spec.profile == "sunspec":
            base = spec.sunspec_bases[0] if spec.sunspec_bases else 40000
            device = SunSpecMeter(name, timing, base=base)
        elif spec.profile in ("quasar", "sunspec-der"):
            chargers += 1
            ev = value.get("ev")
            match = _EV_INDEX.search(ev) if isinstance(ev, str) else None
            ev_index = int(match.group(1)) if match else chargers
            if spec.profile == "quasar":
                limit = value.get("max_power_w", 7400)
                device = QuasarCharger(name, timing, int(limit) if isinstance(limit, int | float) else 7400)
            else:
                base = spec.sunspec_bases[0] if spec.sunspec_bases else 40000
                device = SunSpecDer(name, timing, base=base)
        else:
            notes.append(
                f"device '{name}' (profile {spec.profile}) is not emulated: its registers are the site's own"
            )
            continue
        served.append(Served(name, spec.host, spec.port, spec.unit, device, ev_index))
    problems.raise_if_any()
    return served, notes


def _dc_charged(scenario: Scenario) -> Scenario:
    """Cars behind DC chargers (Quasar, DER) run at any power up to their maximum: a DC charger
    controls the power itself, so the AC on-board charger's minimum (e.g. 6 A, 4.1 kW) does not apply."""
    evs = tuple(replace(ev, p_charge_min_w=0.0, p_discharge_min_w=0.0) for ev in scenario.fleet.evs)
    return replace(scenario, fleet=replace(scenario.fleet, evs=evs))


class Rehearsal:
    """Servers for the planned devices plus the simulation that drives them (``start``/``stop``)."""

    def __init__(self, served: list[Served], scenario: Scenario) -> None:
        self.served = served
        self.scenario = _dc_charged(scenario)
        self.n_cars = max([scenario.n_evs] + [s.ev_index or 0 for s in served])
        self.hold_frequency: float | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._ready = threading.Event()
        self._measured = threading.Event()  # the physics published its first values (or stopped)
        self._error: str | None = None
        self._servers: list[Any] = []
        self._clock: VirtualClock | None = None  # start(clock): stepped by tick()
        self._sim: SimDriver | None = None
        self._latest: dict[str, Any] = {}
        self.laps = 0

    @property
    def meters(self) -> list[SunSpecMeter]:
        return [s.device for s in self.served if isinstance(s.device, SunSpecMeter)]

    def start(self, clock: VirtualClock | None = None) -> None:
        """Serve the devices and start the simulation behind them: on its own thread every 10 ms of
        real time, or, given a virtual ``clock`` (tests), one step per ``tick()`` at that clock's
        time, so a site in virtual time sees the same physics whatever the machine's load."""
        server_thread = threading.Thread(target=self._serve, name="plcrun-devices", daemon=True)
        server_thread.start()
        self._threads.append(server_thread)
        if not self._ready.wait(20.0) or self._error is not None:
            self.stop()
            raise OSError(self._error or "the emulated devices did not start within 20 s")
        if clock is not None:
            self._clock = clock
            for served in self.served:  # the devices' own timers (meter refresh, charger fallback) too
                served.device.clock = lambda: clock.now_ns() / 1e9
                served.device.last_message = served.device.clock()
            try:
                self._sim = self._new_sim(clock)
            except Exception as error:
                self._error = f"the simulation behind the emulated devices did not start: {error}"
            else:
                self.tick()
            self._measured.set()
        else:
            physics = threading.Thread(target=self._physics, name="plcrun-devices-sim", daemon=True)
            physics.start()
            self._threads.append(physics)
        # started means answering with the scenario's values: the first step (building the simulation,
        # its first grid chunk and the imports that pulls in) holds the interpreter for tens of ms, and
        # until it publishes the meter reads 0 Hz. A site connecting after start() meets neither.
        if not self._measured.wait(20.0) or self._error is not None:
            self.stop()
            raise OSError(
                self._error or "the simulation behind the emulated devices did not start within 20 s"
            )
        # what exists now (modules, scenario, register images) never becomes garbage: out of the
        # collector's way, so a full collection is short and a device does not pause tens of ms
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        self._stop.set()
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(lambda: None)
        for thread in self._threads:
            thread.join(10.0)
        self._threads.clear()

    # ------------------------------------------------------------ servers (asyncio thread)
    def _serve(self) -> None:
        asyncio.run(self._serve_all())

    async def _serve_all(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self._loop = asyncio.get_running_loop()
        try:
            for served in self.served:
                blocks = [
                    SimData(start, count=count, values=0, datatype=DataType.REGISTERS)
                    for start, count in served.device.ranges
                ]
                empty = [SimData(0, values=[False], datatype=DataType.BITS)]
                input_regs = [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
                device = SimDevice(
                    id=served.unit, simdata=(empty, empty, blocks, input_regs), action=served.device.action
                )
                server = ModbusTcpServer(context=[device], address=(served.host, served.port))
                await server.serve_forever(background=True)
                self._servers.append(server)
        except OSError as error:
            self._error = (
                f"cannot serve {served.name} on {served.host}:{served.port}: {error.strerror or error}"
            )
            self._ready.set()
            return
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
        for server in self._servers:
            await server.shutdown()

    # ------------------------------------------------------------ the simulation (its own thread)
    def _new_sim(self, clock: Clock) -> SimDriver:
        sim = SimDriver(self.scenario, _METER, "car", self.n_cars, max_history_rows=2)
        sim.start(clock)
        return sim

    def tick(self) -> None:
        """One step of the simulation at the virtual clock's time (``start(clock)``): the devices
        show the grid and the cars, the cars take the chargers' setpoints."""
        assert self._clock is not None, "tick() needs start(clock)"
        self._step(self._clock)

    def _physics(self) -> None:
        clock = MonotonicClock()
        try:
            self._sim = self._new_sim(clock)
        except Exception as error:
            self._error = f"the simulation behind the emulated devices did not start: {error}"
            self._measured.set()
            return
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                self._step(clock)
                self._measured.set()
                next_tick += _TICK_S
                self._stop.wait(max(0.0, next_tick - time.monotonic()))
        except Exception:  # the devices keep answering with their last values
            log.exception("the simulation behind the emulated devices stopped")
        finally:
            self._measured.set()  # start() does not wait for a simulation that is gone

    def _step(self, clock: Clock) -> None:
        sim = self._sim
        assert sim is not None
        now = clock.now_ns()
        if sim.time_s >= self.scenario.duration_s:  # the scenario repeats
            self._sim = sim = self._new_sim(clock)
            self._latest = {}
            self.laps += 1
        latest = self._latest
        for path, sample in sim.read_inputs(now).items():
            latest[path] = sample.value
        self._publish(latest)
        setpoints = {
            f"car[{s.ev_index}].p_setpoint_w": s.device.setpoint_w()  # type: ignore[attr-defined]
            for s in self.served
            if s.ev_index is not None
        }
        sim.write_outputs(now, setpoints)

    def _publish(self, latest: dict[str, Any]) -> None:
        hz = self.hold_frequency if self.hold_frequency is not None else latest.get("meter.hz")
        volts, watts = latest.get("meter.v"), latest.get("meter.w")
        if isinstance(hz, float) and isinstance(volts, float) and isinstance(watts, float):
            for meter in self.meters:
                meter.measure(hz, volts, watts)
        for served in self.served:
            if served.ev_index is None:
                continue
            car = f"car[{served.ev_index}]"
            connected = bool(latest.get(f"{car}.connected", False))
            soc = float(latest.get(f"{car}.soc_pct", 0.0) or 0.0)
            present = float(latest.get(f"{car}.p_present_w", 0.0) or 0.0)
            charge = float(latest.get(f"{car}.p_charge_max_w", 0.0) or 0.0)
            discharge = float(latest.get(f"{car}.p_discharge_max_w", 0.0) or 0.0)
            served.device.report(connected, soc, present, min(charge, discharge) if discharge else charge)  # type: ignore[attr-defined]
