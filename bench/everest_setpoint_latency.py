"""Meter step -> ``set_external_limits`` at each EVSE over EVerest's MQTT API: the shipped site program
(programs/freq_response.st, FCR 10 kW) with a SunSpec meter (Modbus test peer, instant answers, polled
every 10 ms) and two EVerest EVSEs (a Mosquitto broker on 127.0.0.1; a test client plays EVerest).

    python bench/everest_setpoint_latency.py --steps 1000

Each step holds a new frequency at the meter (a new setpoint every time). The latency of a step runs
from the meter applying the new value (CLOCK_MONOTONIC in the meter's process) to the later of the two
EVSEs' ``set_external_limits`` messages arriving at a subscriber in a third process (same clock). The
meter's answer carrying the value comes up to one poll (10 ms) after the change, so the issue's goal
"from the answer: 2 scans + 10 ms" is at most 40 ms from the change. Prints p50/p99/max in ms with the
scan period (10 ms) as the baseline.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plcrun.compiler.api import compile_file  # noqa: E402
from plcrun.executor.rt_setup import RtConfig, apply_rt_setup  # noqa: E402
from plcrun.site import SiteRuntime  # noqa: E402

from tests.support.modbus_devices import ModbusPeer  # noqa: E402
from tests.support.mosquitto import Mosquitto, MqttProbe  # noqa: E402

EVSE_API = "everest_api/1/evse_manager_consumer"
LIMITS = "everest_api/1/external_energy_limits_consumer/{}/m2e/set_external_limits"

SITE = """
[site]
name = "EVerest latency bench"

[devices.site-meter]
host = "127.0.0.1"
port = {meter}
profile = "sunspec"
timeout_ms = 200
poll_ms = 10

[devices.site-meter.points.grid_hz]
sunspec = "213.Hz"
bind = "main.grid_hz"

[devices.site-meter.points.voltage]
sunspec = "213.PhV"
bind = "main.grid_v"

[everest]
host = "127.0.0.1"
port = {broker}
prefix = "main.evs"
min_interval_s = 0.05

[everest.evse.evse_1]
slot = 1
limits_module = "limits_1"
allow_discharge = true
max_discharge_w = 7000.0

[everest.evse.evse_2]
slot = 2
limits_module = "limits_2"
allow_discharge = true
max_discharge_w = 7000.0

[parameters]
"main.n_evs" = 2
"main.service" = "FCR"
"main.p_contracted_w" = 10000.0
"main.baseline_w" = 0.0
"""


def subscriber(port: int, conn: Connection) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    log: list[tuple[int, str, float]] = []
    lock = threading.Lock()

    def on_message(client: object, userdata: object, message: mqtt.MQTTMessage) -> None:
        stamp = time.perf_counter_ns()
        try:
            document = json.loads(message.payload)
            export = document["schedule_export"][0]["limits_to_root"]["total_power_W"]["value"]
            imported = document["schedule_import"][0]["limits_to_root"]["total_power_W"]["value"]
        except (ValueError, KeyError, IndexError, TypeError):
            return
        with lock:
            log.append((stamp, message.topic.split("/")[3], float(imported) - float(export)))

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("everest_api/1/external_energy_limits_consumer/+/m2e/set_external_limits")
    client.loop_start()
    conn.send("ready")
    while True:
        command = conn.recv()
        if command == "take":
            with lock:
                taken, log[:] = list(log), []
            conn.send(taken)
        else:
            client.loop_stop()
            conn.send(None)
            return


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.15, help="seconds between steps")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    print(f"command: python bench/everest_setpoint_latency.py --steps {args.steps} --gap {args.gap:g}")
    with (
        tempfile.TemporaryDirectory() as work,
        Mosquitto(Path(work) / "broker") as broker,
        ModbusPeer("meter") as meter,
    ):
        meter.set_meter(hz=50.0, watts=0.0, volts=230.0)
        everest = MqttProbe(broker.port, ["bench/none"])
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=subscriber, args=(broker.port, child), daemon=True)
        process.start()
        assert parent.recv() == "ready"
        config = Path(work) / "site.toml"
        config.write_text(SITE.format(meter=meter.port, broker=broker.port))
        site = SiteRuntime.build(compile_file(ROOT / "programs" / "freq_response.st"), config=str(config))
        site.start()
        executor = site.executor

        def scan_thread() -> None:
            rt = apply_rt_setup(RtConfig())
            try:
                executor.run()
            finally:
                rt.close()

        thread = threading.Thread(target=scan_thread, name="scan", daemon=True)
        thread.start()
        time.sleep(1.0)  # the driver subscribed: EVerest publishes on change only (docs/everest.md)
        for module in ("evse_1", "evse_2"):
            everest.publish(
                f"{EVSE_API}/{module}/e2m/supported_energy_transfer_modes", json.dumps(["DC", "DC_BPT"])
            )
            everest.publish(
                f"{EVSE_API}/{module}/e2m/session_info",
                json.dumps(
                    {
                        "state": "Charging",
                        "charged_energy_wh": 0,
                        "discharged_energy_wh": 0,
                        "latest_total_w": 0.0,
                        "session_duration_s": 1,
                    }
                ),
            )
            everest.publish(
                f"{EVSE_API}/{module}/e2m/ev_info",
                json.dumps(
                    {
                        "soc": 60.0,
                        "maximum_power_limit": 11000.0,
                        "maximum_discharge_power_limit": -7000.0,
                        "battery_capacity": 60000.0,
                        "remaining_energy_needed": 10000.0,
                    }
                ),
            )
        beating = threading.Event()

        def heartbeats() -> None:  # EVerest's modules are heard every second, else their sessions go STALE
            count = 0
            while not beating.wait(1.0):
                count += 1
                for module in ("evse_1", "evse_2"):
                    everest.publish(f"{EVSE_API}/{module}/e2m/heartbeat", str(count))

        threading.Thread(target=heartbeats, name="everest-heartbeats", daemon=True).start()
        deadline = time.monotonic() + 30
        while executor.read("main.status") != "ST_NORMAL" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        latencies: list[int] = []
        missing = 0
        sign = 1
        for k in range(args.steps):
            sign = -sign
            hz = 50.0 + sign * (0.02 + ((k * 37) % 80) * 0.001)
            want = round(50000.0 * (hz - 50.0) / 2.0)
            parent.send("take")
            parent.recv()
            applied = meter.set_meter_at(hz)
            time.sleep(args.gap)
            parent.send("take")
            log = parent.recv()
            arrived = []
            for module in ("limits_1", "limits_2"):
                first = [t for t, m, w in log if m == module and t >= applied and abs(w - want) <= 2.0]
                arrived.append(min(first) if first else None)
            if any(a is None for a in arrived):
                missing += 1
                if args.verbose:
                    print("missing", hz, want, [(m, w) for _t, m, w in log])
                continue
            latencies.append(max(a for a in arrived if a is not None) - applied)
        beating.set()
        executor.stop()
        thread.join(5)
        site.stop()
        parent.send("stop")
        parent.recv()
        everest.close()
    values = np.array(latencies, dtype=np.float64) / 1e6
    print(f"steps {args.steps}, measured {len(latencies)}, missing {missing}; scan period 10 ms")
    print(
        f"latency from the meter change, ms: p50 {np.percentile(values, 50):.1f}  p99 {np.percentile(values, 99):.1f}  "
        f"max {values.max():.1f}  within 40 ms: {np.mean(values <= 40.0) * 100:.1f}%  within 30 ms: "
        f"{np.mean(values <= 30.0) * 100:.1f}%"
    )


if __name__ == "__main__":
    main()
