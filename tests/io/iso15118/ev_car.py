# mypy: ignore-errors
"""A test car: the iso15118 package's EVCC with a battery that follows what the charger delivers.

Run inside the test's network namespace with the SECC environment's Python:
``python ev_car.py --iface IF [--iface IF2 ...] --mode dc_bpt|dc2 --log FILE [--tls] [--pki DIR]
[--stop-file F]``; several interfaces run as several cars in one process (one JVM), each logging to
``FILE`` with ``{iface}`` replaced by its interface.

What this changes against the package's ``SimEVController`` (which reports fixed values and charges a
fixed 10 loops):
- a battery (``CAPACITY_WH``, SoC, 400 V) whose power each loop is the charger's present current
  times its voltage, clipped to the car's own limits; it reports the SoC, energy requests (V2X ones
  included) and its limits from that state;
- it observes each charge-loop response (a wrapper around the package's DCChargeLoop / CurrentDemand
  states that records the response before the package handles it) and logs one JSON line per loop
  to ``--log``: time, the charger's current and limits, the car's power and SoC, and whether the
  charger asked for more than the car's limits;
- it waits ``--loop-delay`` seconds between charge loops (the package's EV sends the next request at
  once; real cars pace theirs);
- it charges until ``--stop-file`` exists, ``--loops`` loops passed, or the charger ends the session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

CAPACITY_WH = 60000.0
VOLTS = 400.0
MAX_CHARGE_W = 11000.0
MAX_DISCHARGE_W = 7000.0
MIN_SOC, TARGET_SOC = 30, 80


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iface", required=True, action="append")
    parser.add_argument("--mode", choices=("dc_bpt", "dc2"), default="dc_bpt")
    parser.add_argument("--log", required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--pki", default="")
    parser.add_argument("--tls13", action="store_true", help="TLS 1.3 with the car's OEM certificate")
    parser.add_argument("--stop-file", default="")
    parser.add_argument("--loops", type=int, default=100000)
    parser.add_argument("--soc", type=float, default=60.0)
    parser.add_argument("--loop-delay", type=float, default=0.0, help="seconds between charge loops")
    args = parser.parse_args()
    if args.pki:
        os.environ["PKI_PATH"] = args.pki.rstrip("/") + "/"
    os.environ["ENABLE_TLS_1_3"] = "True" if args.tls13 else "False"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["MESSAGE_LOG_JSON"] = "False"
    asyncio.run(run(args))


async def run(args) -> None:
    from iso15118.evcc import EVCCHandler
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.evcc.evcc_config import EVCCConfig
    from iso15118.evcc.states import iso15118_2_states, iso15118_20_states
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec
    from iso15118.shared.messages.enums import DCEVErrorCode
    from iso15118.shared.messages.iso15118_2.datatypes import DCEVStatus
    from iso15118.shared.messages.iso15118_20.common_types import DisplayParameters, RationalNumber
    from iso15118.shared.messages.iso15118_20.dc import BPTDynamicDCChargeLoopReqParams
    from iso15118.shared.settings import load_shared_settings

    logging.getLogger().setLevel(os.environ.get("EV_LOG", "WARNING"))
    load_shared_settings()
    rational = RationalNumber.get_rational_repr

    def value(number):
        return None if number is None else float(number.get_decimal_value())

    class FollowingCar(SimEVController):
        def __init__(self, config, log):
            super().__init__(config)
            self.log = log
            self.soc = args.soc
            self.power_w = 0.0
            self.loops = 0
            self.stamp = time.monotonic()

        def observe(self, current, volts, limits, session=None) -> None:
            now = time.monotonic()
            asked = (current or 0.0) * (volts or VOLTS)
            power = min(max(asked, -MAX_DISCHARGE_W), MAX_CHARGE_W)
            self.soc = min(
                100.0, max(0.0, self.soc + self.power_w * (now - self.stamp) / 3600 / CAPACITY_WH * 100)
            )
            self.stamp, self.power_w = now, power
            self.loops += 1
            ssl_object = session.writer.get_extra_info("ssl_object") if session is not None else None
            limits = limits | {"tls": ssl_object.version() if ssl_object is not None else None}
            entry = {"t": time.time(), "loop": self.loops, "current_a": current, "power_w": power,
                     "asked_w": asked, "soc": self.soc, "beyond_limits": power != asked} | limits  # fmt: skip
            self.log.write(json.dumps(entry) + "\n")

        async def charge_loop_delay(self) -> float:
            return args.loop_delay

        async def continue_charging(self) -> bool:
            if args.stop_file and os.path.exists(args.stop_file):
                return False
            return self.loops < args.loops

        async def get_display_params(self):
            return DisplayParameters(
                present_soc=round(self.soc), min_soc=MIN_SOC, target_soc=TARGET_SOC,
                charging_complete=False, battery_energy_capacity=rational(CAPACITY_WH),
            )  # fmt: skip

        async def get_present_voltage(self):
            return rational(VOLTS)

        async def get_bpt_dynamic_dc_charge_loop_params(self):
            energy = CAPACITY_WH / 100
            return BPTDynamicDCChargeLoopReqParams(
                departure_time=7200,
                ev_target_energy_request=rational(round((TARGET_SOC - self.soc) * energy)),
                ev_max_energy_request=rational(round((100 - self.soc) * energy)),
                ev_min_energy_request=rational(round((MIN_SOC - self.soc) * energy)),
                ev_max_charge_power=rational(MAX_CHARGE_W),
                ev_min_charge_power=rational(0),
                ev_max_charge_current=rational(MAX_CHARGE_W / VOLTS),
                ev_max_voltage=rational(450),
                ev_min_voltage=rational(300),
                ev_max_discharge_power=rational(MAX_DISCHARGE_W),
                ev_min_discharge_power=rational(0),
                ev_max_discharge_current=rational(MAX_DISCHARGE_W / VOLTS),
                ev_max_v2x_energy_request=rational(round((100 - self.soc) * energy)),
                ev_min_v2x_energy_request=rational(round((MIN_SOC - self.soc) * energy)),
            )

        async def get_dc_ev_status(self):
            return DCEVStatus(
                ev_ready=True, ev_error_code=DCEVErrorCode.NO_ERROR, ev_ress_soc=round(self.soc)
            )

    # observe each response before the package's state handles it
    loop_20 = iso15118_20_states.DCChargeLoop.process_message

    async def observe_20(self, message, message_exi=None):
        body = getattr(message, "dc_charge_loop_res", None) or message
        res = body if hasattr(body, "evse_present_current") else None
        if res is not None:
            params = res.bpt_dynamic_dc_charge_loop_res or res.dynamic_dc_charge_loop_res
            limits = {}
            if params is not None:
                limits = {"evse_max_charge_w": value(params.evse_maximum_charge_power),
                          "evse_max_discharge_w": value(getattr(params, "evse_max_discharge_power", None))}  # fmt: skip
            self.comm_session.ev_controller.observe(
                value(res.evse_present_current), VOLTS, limits, self.comm_session
            )
        return await loop_20(self, message, message_exi)

    iso15118_20_states.DCChargeLoop.process_message = observe_20
    demand_2 = iso15118_2_states.CurrentDemand.process_message

    async def observe_2(self, message, message_exi=None):
        res = getattr(getattr(message, "body", None), "current_demand_res", None)
        if res is not None:
            limits = {"evse_max_charge_w": value(res.evse_max_power_limit),
                      "evse_max_current_a": value(res.evse_max_current_limit)}  # fmt: skip
            self.comm_session.ev_controller.observe(
                value(res.evse_present_current), VOLTS, limits, self.comm_session
            )
        return await demand_2(self, message, message_exi)

    iso15118_2_states.CurrentDemand.process_message = observe_2

    if args.mode == "dc_bpt":
        raw = {"supportedProtocols": ["ISO_15118_20_DC"], "supportedEnergyServices": ["DC_BPT"]}
    else:
        raw = {"supportedProtocols": ["ISO_15118_2"], "supportedEnergyServices": ["DC"],
               "energyTransferMode": "DC_extended"}  # fmt: skip
    config = EVCCConfig(**raw, isCertInstallNeeded=False, useTls=args.tls, chargeLoopCycle=10)
    config.load_raw_values()
    codec = ExificientEXICodec()
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "runtime/io/iso15118/secc_process"))
    from worker import warm_up  # the SECC's warm-up: a car's controller would not start cold either

    warm_up(codec)

    async def one(iface: str) -> None:
        log = open(args.log.replace("{iface}", iface), "a", buffering=1)  # noqa: SIM115 - for the whole run
        car = FollowingCar(config, log)
        try:
            await EVCCHandler(evcc_config=config, iface=iface, exi_codec=codec, ev_controller=car).start()
        except Exception as exc:  # the test reads the log
            log.write(json.dumps({"t": time.time(), "error": f"{type(exc).__name__}: {exc}"}) + "\n")
            raise

    results = await asyncio.gather(*(one(iface) for iface in args.iface), return_exceptions=True)
    if any(isinstance(r, BaseException) for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
