# mypy: ignore-errors
"""A test car: the iso15118 package's EVCC with a battery that follows what the charger delivers.

Run inside the test's network namespace with the SECC environment's Python:
``python ev_car.py --iface IF [--iface IF2 ...] --mode dc_bpt|ac_bpt|dc2 --log FILE [--tls] [--pki DIR]
[--stop-file F]``; several interfaces run as several cars in one process (one JVM), each logging to
``FILE`` with ``{iface}`` replaced by its interface.

What this changes against the package's ``SimEVController`` (which reports fixed values and charges a
fixed 10 loops):
- a battery (``CAPACITY_WH``, SoC, 400 V) whose power each loop is, in DC, the charger's present
  current times its voltage and, in AC, the charger's signed EVSETargetActivePower, clipped to the
  car's own limits; it reports the SoC, energy requests (V2X ones included), its present power and
  its limits from that state, in dynamic and in scheduled mode (AC_BPT and DC_BPT);
- in scheduled mode it takes the first schedule tuple offered and logs what the charging and
  discharging schedules allow (the package's EV picks at random whether it is "ready");
- it observes each charge-loop response (a wrapper around the package's DCChargeLoop, ACChargeLoop
  and CurrentDemand states that records the response before the package handles it) and logs one
  JSON line per loop to ``--log``: time, the charger's current, target and limits, the car's power
  and SoC, whether the charger asked for more than the car's limits, and the EVSE notification;
- a DC session asked to renegotiate says ServiceRenegotiation in its SessionStopReq after welding
  detection (the package's EV says Terminate there, which ends the session), and then sends the
  ServiceDiscoveryReq that starts the renegotiation (the package's EV changes state without it), and
  forgets the stop reason (the package's EV keeps it and stops again after the next PowerDelivery);
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


def own_computer(nice: int = -10) -> None:
    """A car's controller is a computer of its own: it must not queue behind this machine's other
    work. With the kernel's autogroup scheduling a nice value only ranks processes within their
    session (every session gets the same CPU share), so the car takes a session of its own and
    gives that the nice value (root: the rig runs as root)."""
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:  # no autogroup: the process's nice value (the rig's ``nice -n -10``) counts
        pass


def main() -> None:
    own_computer()
    parser = argparse.ArgumentParser()
    parser.add_argument("--iface", required=True, action="append")
    parser.add_argument("--mode", choices=("dc_bpt", "ac_bpt", "dc2"), default="dc_bpt")
    parser.add_argument("--log", required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--pki", default="")
    parser.add_argument("--tls13", action="store_true", help="TLS 1.3 with the car's OEM certificate")
    parser.add_argument("--stop-file", default="")
    parser.add_argument("--loops", type=int, default=100000)
    parser.add_argument("--soc", type=float, default=60.0)
    parser.add_argument("--loop-delay", type=float, default=0.0, help="seconds between charge loops")
    parser.add_argument(
        "--stagger", type=float, default=0.0, help="the n-th --iface plugs in n times this (s)"
    )
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
    from iso15118.shared.messages.enums import ControlMode, DCEVErrorCode, ServiceV20
    from iso15118.shared.messages.iso15118_2.datatypes import DCEVStatus
    from iso15118.shared.messages.iso15118_20.ac import (
        BPTACChargeParameterDiscoveryReqParams,
        BPTDynamicACChargeLoopReqParams,
        BPTScheduledACChargeLoopReqParams,
    )
    from iso15118.shared.messages.iso15118_20.common_messages import (
        ChargeProgress,
        ChargingSession,
        DynamicEVPowerProfile,
        EVPowerProfile,
        EVPowerProfileEntryList,
        PowerScheduleEntry,
        PowerToleranceAcceptance,
        ScheduledEVPowerProfile,
        SessionStopReq,
    )
    from iso15118.shared.messages.iso15118_20.common_types import DisplayParameters, RationalNumber
    from iso15118.shared.messages.iso15118_20.dc import (
        BPTDCChargeParameterDiscoveryReqParams,
        BPTDynamicDCChargeLoopReqParams,
        BPTScheduledDCChargeLoopReqParams,
    )
    from iso15118.shared.settings import load_shared_settings

    logging.getLogger().setLevel(os.environ.get("EV_LOG", "WARNING"))
    load_shared_settings()
    rational = RationalNumber.get_rational_repr

    def value(number):
        return None if number is None else float(number.get_decimal_value())

    def profile(power_w: float, scheduled_id=None):
        entries = EVPowerProfileEntryList(
            entries=[PowerScheduleEntry(duration=7200, power=rational(power_w))]
        )
        if scheduled_id is None:
            return EVPowerProfile(time_anchor=0, entry_list=entries, dynamic_profile=DynamicEVPowerProfile())
        accepted = ScheduledEVPowerProfile(
            selected_schedule_tuple_id=scheduled_id,
            power_tolerance_acceptance=PowerToleranceAcceptance.CONFIRMED,
        )
        return EVPowerProfile(time_anchor=0, entry_list=entries, scheduled_profile=accepted)

    class FollowingCar(SimEVController):
        def __init__(self, config, log):
            super().__init__(config)
            self.log = log
            self.soc = args.soc
            self.power_w = 0.0
            self.loops = 0
            self.stamp = time.monotonic()

        def write(self, entry: dict) -> None:
            self.log.write(json.dumps({"t": time.time()} | entry) + "\n")

        def observe(self, asked, limits, session=None, notification=None) -> None:
            """One charge-loop response: the charger asks ``asked`` W (None: nothing said)."""
            now = time.monotonic()
            asked = asked or 0.0
            power = min(max(asked, -MAX_DISCHARGE_W), MAX_CHARGE_W)
            self.soc = min(
                100.0, max(0.0, self.soc + self.power_w * (now - self.stamp) / 3600 / CAPACITY_WH * 100)
            )
            self.stamp, self.power_w = now, power
            self.loops += 1
            ssl_object = session.writer.get_extra_info("ssl_object") if session is not None else None
            limits = limits | {"tls": ssl_object.version() if ssl_object is not None else None}
            self.write({"loop": self.loops, "power_w": power, "asked_w": asked, "soc": self.soc,
                        "beyond_limits": power != asked, "notification": notification} | limits)  # fmt: skip

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

        def energy(self) -> dict:
            per_pct = CAPACITY_WH / 100
            return {
                "ev_target_energy_request": rational(round((TARGET_SOC - self.soc) * per_pct)),
                "ev_max_energy_request": rational(round((100 - self.soc) * per_pct)),
                "ev_min_energy_request": rational(round((MIN_SOC - self.soc) * per_pct)),
            }

        def v2x(self) -> dict:
            per_pct = CAPACITY_WH / 100
            return {
                "ev_max_v2x_energy_request": rational(round((100 - self.soc) * per_pct)),
                "ev_min_v2x_energy_request": rational(round((MIN_SOC - self.soc) * per_pct)),
            }

        def power_limits(self) -> dict:
            return {
                "ev_max_charge_power": rational(MAX_CHARGE_W),
                "ev_min_charge_power": rational(0),
                "ev_max_discharge_power": rational(MAX_DISCHARGE_W),
                "ev_min_discharge_power": rational(0),
            }

        # ---- the parameters the car announces (its own limits, not the package's defaults)
        async def get_charge_params_v20(self, selected_service):
            if selected_service.service in (ServiceV20.AC, ServiceV20.AC_BPT):
                return BPTACChargeParameterDiscoveryReqParams(**self.power_limits())
            return BPTDCChargeParameterDiscoveryReqParams(
                **self.power_limits(),
                ev_max_charge_current=rational(MAX_CHARGE_W / VOLTS),
                ev_min_charge_current=rational(0),
                ev_max_discharge_current=rational(MAX_DISCHARGE_W / VOLTS),
                ev_min_discharge_current=rational(0),
                ev_max_voltage=rational(450),
                ev_min_voltage=rational(300),
            )

        async def process_scheduled_se_params(self, scheduled_params, pause):
            offer = scheduled_params.schedule_tuples[0]
            charge_w = value(offer.charging_schedule.power_schedule.schedule_entry_list.entries[0].power)
            discharge_w = None
            if offer.discharging_schedule is not None:
                entries = offer.discharging_schedule.power_schedule.schedule_entry_list.entries
                discharge_w = value(entries[0].power)
            self.write({"schedule": {"tuple": offer.schedule_tuple_id, "charge_w": charge_w,
                                     "discharge_w": discharge_w, "pause": pause}})  # fmt: skip
            # plan within what the schedule allows and the car can do
            planned = min(charge_w, MAX_CHARGE_W) if charge_w else -min(discharge_w or 0.0, MAX_DISCHARGE_W)
            progress = ChargeProgress.STOP if pause else ChargeProgress.START
            return profile(planned, offer.schedule_tuple_id), progress

        async def process_dynamic_se_params(self, dynamic_params, pause):
            progress = ChargeProgress.STOP if pause else ChargeProgress.START
            return profile(MAX_CHARGE_W), progress

        async def get_ac_charge_loop_params_v20(self, control_mode, selected_service):
            common = self.energy() | self.power_limits() | {"ev_present_active_power": rational(self.power_w)}
            if control_mode == ControlMode.SCHEDULED:
                return BPTScheduledACChargeLoopReqParams(**common)
            return BPTDynamicACChargeLoopReqParams(
                **common, **self.v2x(), departure_time=7200, ev_present_reactive_power=rational(0)
            )

        async def get_bpt_dynamic_dc_charge_loop_params(self):
            return BPTDynamicDCChargeLoopReqParams(
                departure_time=7200, **self.energy(), **self.v2x(), **self.power_limits(),
                ev_max_charge_current=rational(MAX_CHARGE_W / VOLTS),
                ev_max_voltage=rational(450), ev_min_voltage=rational(300),
                ev_max_discharge_current=rational(MAX_DISCHARGE_W / VOLTS),
            )  # fmt: skip

        async def get_bpt_scheduled_dc_charge_loop_params(self):
            return BPTScheduledDCChargeLoopReqParams(
                ev_target_current=rational(self.power_w / VOLTS), ev_target_voltage=rational(VOLTS),
                **self.energy(), **self.power_limits(),
                ev_max_charge_current=rational(MAX_CHARGE_W / VOLTS),
                ev_max_voltage=rational(450), ev_min_voltage=rational(300),
                ev_max_discharge_current=rational(MAX_DISCHARGE_W / VOLTS),
            )  # fmt: skip

        async def get_dc_ev_status(self):
            return DCEVStatus(
                ev_ready=True, ev_error_code=DCEVErrorCode.NO_ERROR, ev_ress_soc=round(self.soc)
            )

    def notification_of(res):
        status = getattr(res, "evse_status", None)
        return None if status is None else str(status.evse_notification.value)

    # observe each response before the package's state handles it
    loop_dc = iso15118_20_states.DCChargeLoop.process_message

    async def observe_dc(self, message, message_exi=None):
        res = message if hasattr(message, "evse_present_current") else None
        if res is not None:
            params = (res.bpt_dynamic_dc_charge_loop_res or res.dynamic_dc_charge_loop_res
                      or res.bpt_scheduled_dc_charge_loop_res or res.scheduled_dc_charge_loop_res)  # fmt: skip
            limits = {}
            if params is not None:
                limits = {"evse_max_charge_w": value(params.evse_maximum_charge_power),
                          "evse_max_discharge_w": value(getattr(params, "evse_max_discharge_power", None))}  # fmt: skip
            current = value(res.evse_present_current)
            car = self.comm_session.ev_controller
            asked = None if current is None else current * VOLTS
            car.observe(asked, limits | {"current_a": current}, self.comm_session, notification_of(res))
        return await loop_dc(self, message, message_exi)

    iso15118_20_states.DCChargeLoop.process_message = observe_dc
    loop_ac = iso15118_20_states.ACChargeLoop.process_message

    async def observe_ac(self, message, message_exi=None):
        res = message if hasattr(message, "evse_target_frequency") else None
        if res is not None:
            params = (
                res.bpt_dynamic_params
                or res.bpt_scheduled_params
                or res.dynamic_params
                or res.scheduled_params
            )
            target = value(getattr(params, "evse_target_active_power", None)) if params else None
            self.comm_session.ev_controller.observe(
                target, {"evse_target_w": target}, self.comm_session, notification_of(res)
            )
        return await loop_ac(self, message, message_exi)

    iso15118_20_states.ACChargeLoop.process_message = observe_ac
    demand_2 = iso15118_2_states.CurrentDemand.process_message

    async def observe_2(self, message, message_exi=None):
        res = getattr(getattr(message, "body", None), "current_demand_res", None)
        if res is not None:
            limits = {"evse_max_charge_w": value(res.evse_max_power_limit),
                      "evse_max_current_a": value(res.evse_max_current_limit)}  # fmt: skip
            current = value(res.evse_present_current)
            notification = str(res.dc_evse_status.evse_notification.value)
            self.comm_session.ev_controller.observe(
                None if current is None else current * VOLTS, limits, self.comm_session, notification
            )
        return await demand_2(self, message, message_exi)

    iso15118_2_states.CurrentDemand.process_message = observe_2

    # the package's EV ends a DC session after welding detection with SessionStop(Terminate) even when
    # it is renegotiating (AC keeps the reason): keep the reason, as ISO 15118-20 asks
    welding_next = iso15118_20_states.DCWeldingDetection.create_next_message

    def keep_renegotiation(self, next_state, next_request, *rest, **named):
        if (
            isinstance(next_request, SessionStopReq)
            and self.comm_session.charging_session_stop_v20 == ChargingSession.SERVICE_RENEGOTIATION
        ):
            next_request = next_request.copy(
                update={"charging_session": ChargingSession.SERVICE_RENEGOTIATION}
            )
        return welding_next(self, next_state, next_request, *rest, **named)

    iso15118_20_states.DCWeldingDetection.create_next_message = keep_renegotiation

    # after SessionStopRes for a renegotiation the package's EV moves to ServiceDiscovery without sending
    # the ServiceDiscoveryReq (the SECC waits, the EV times out): send it
    stop_20 = iso15118_20_states.SessionStop.process_message
    v20 = iso15118_20_states

    async def renegotiate(self, message, message_exi=None):
        await stop_20(self, message, message_exi)
        if self.next_state is v20.ServiceDiscovery:
            self.comm_session.charging_session_stop_v20 = None  # else the next PowerDeliveryRes stops
            request = v20.ServiceDiscoveryReq(
                header=v20.MessageHeader(session_id=self.comm_session.session_id, timestamp=time.time())
            )
            self.create_next_message(
                v20.ServiceDiscovery, request, v20.Timeouts.SERVICE_DISCOVERY_REQ,
                v20.Namespace.ISO_V20_COMMON_MSG, v20.ISOV20PayloadTypes.MAINSTREAM,
            )  # fmt: skip

    iso15118_20_states.SessionStop.process_message = renegotiate

    if args.mode == "dc_bpt":
        raw = {"supportedProtocols": ["ISO_15118_20_DC"], "supportedEnergyServices": ["DC_BPT"]}
    elif args.mode == "ac_bpt":
        raw = {"supportedProtocols": ["ISO_15118_20_AC"], "supportedEnergyServices": ["AC_BPT"]}
    else:
        raw = {"supportedProtocols": ["ISO_15118_2"], "supportedEnergyServices": ["DC"],
               "energyTransferMode": "DC_extended"}  # fmt: skip
    config = EVCCConfig(**raw, isCertInstallNeeded=False, useTls=args.tls, chargeLoopCycle=10)
    config.load_raw_values()
    codec = ExificientEXICodec()
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "runtime/io/iso15118/secc_process"))
    from worker import warm_up  # the SECC's warm-up: a car's controller would not start cold either

    warm_up(codec)

    async def one(index: int, iface: str) -> None:
        await asyncio.sleep(index * args.stagger)
        log = open(args.log.replace("{iface}", iface), "a", buffering=1)  # noqa: SIM115 - for the whole run
        car = FollowingCar(config, log)
        try:
            await EVCCHandler(evcc_config=config, iface=iface, exi_codec=codec, ev_controller=car).start()
        except Exception as exc:  # the test reads the log
            log.write(json.dumps({"t": time.time(), "error": f"{type(exc).__name__}: {exc}"}) + "\n")
            raise

    results = await asyncio.gather(
        *(one(i, iface) for i, iface in enumerate(args.iface)), return_exceptions=True
    )
    if any(isinstance(r, BaseException) for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
