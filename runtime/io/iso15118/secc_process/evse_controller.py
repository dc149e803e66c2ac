# mypy: ignore-errors
# (runs inside the SECC process, against the iso15118 package, which plcrun's environment lacks)
"""The EVSE controller of one charge point inside the SECC process: applies plcrun's setpoint to what
the SECC tells the car in every charge loop, and turns what the car said into EV_SESSION fields.

Built on the package's ``SimEVSEController`` (the charger's power stage is not modelled beyond
"delivers what the SECC allows": present current = allowed power / the car's present voltage).

Setpoint P (W, P > 0 charges the car) -> what the car hears:
- ISO 15118-20 DC_BPT / AC_BPT, dynamic mode: the EVSE's limits collapse to P (charge limits P and no
  discharge when P >= 0; discharge limits |P| and no charge when P < 0); for AC that is the signed
  EVSETargetActivePower.
- scheduled mode: the same numbers as the EVSE's maximum limits (the car picks within them), and the
  schedule offered in ScheduleExchangeRes is that power at the time: one schedule tuple whose charging
  schedule allows max(P, 0) and whose discharging schedule (BPT) allows max(-P, 0) until departure.
- ISO 15118-2 / DIN, and -20 without BPT: charge only, max(P, 0) as the EVSE's maximum power.
P is first clamped to the car's and the charger's limits. Command "stop" sends Terminate (-20) or
StopCharging (-2); "renegotiate" sends ServiceRenegotiation (-20) or ReNegotiation (-2) once; "pause"
holds the session in its charge loop with every power limit and target at 0 W.

Authorization: EIM is authorized by the site (the package's answer). Plug & Charge (-20): the car's
contract chain is checked against the mobility operator roots in the PKI (``pnc.py``); a refused
contract is answered FAILED (the session ends: the package's SECC would carry on after the WARN_ codes)
and raises ``authorization`` with the reason; an accepted one clears it.
"""

from __future__ import annotations

import logging
import time

import pnc
from iso15118.secc.controller.ev_data import (
    EVACCLLimits,
    EVACCPDLimits,
    EVDataContext,
    EVDCCLLimits,
    EVDCCPDLimits,
    EVRatedLimits,
    EVSessionLimits,
)
from iso15118.secc.controller.interface import AuthorizationResponse
from iso15118.secc.controller.simulator import SimEVSEController, get_evse_context
from iso15118.shared.messages.datatypes import DCEVSEStatus, DCEVSEStatusCode
from iso15118.shared.messages.datatypes import EVSENotification as NotificationV2
from iso15118.shared.messages.enums import (
    AuthEnum,
    AuthorizationStatus,
    ControlMode,
    IsolationLevel,
    Protocol,
    ServiceV20,
)
from iso15118.shared.messages.iso15118_20.ac import (
    ACChargeParameterDiscoveryResParams,
    BPTACChargeParameterDiscoveryResParams,
)
from iso15118.shared.messages.iso15118_20.common_messages import (
    ChargingSchedule,
    DischargingSchedule,
    PowerSchedule,
    PowerScheduleEntry,
    PowerScheduleEntryList,
    PriceLevelSchedule,
    PriceLevelScheduleEntry,
    PriceLevelScheduleEntryList,
    ScheduledScheduleExchangeResParams,
    ScheduleTuple,
    ServiceParameterList,
)
from iso15118.shared.messages.iso15118_20.common_types import (
    EVSENotification,
    EVSEStatus,
    RationalNumber,
)
from iso15118.shared.messages.iso15118_20.common_types import ResponseCode as ResponseCodeV20
from iso15118.shared.messages.iso15118_20.dc import (
    BPTDCChargeParameterDiscoveryResParams,
    DCChargeParameterDiscoveryResParams,
)

log = logging.getLogger("plcrun.secc")

_PROTOCOLS = {
    Protocol.DIN_SPEC_70121: 1,
    Protocol.ISO_15118_2: 2,
    Protocol.ISO_15118_20_AC: 20,
    Protocol.ISO_15118_20_DC: 20,
    Protocol.ISO_15118_20_COMMON_MESSAGES: 20,
}
_SERVICES = {ServiceV20.AC: 1, ServiceV20.DC: 2, ServiceV20.AC_BPT: 3, ServiceV20.DC_BPT: 4}


def fresh_ev_context() -> EVDataContext:
    """An EVDataContext with its own limit objects (the package's defaults are shared instances)."""
    return EVDataContext(
        rated_limits=EVRatedLimits(ac_limits=EVACCPDLimits(), dc_limits=EVDCCPDLimits()),
        session_limits=EVSessionLimits(ac_limits=EVACCLLimits(), dc_limits=EVDCCLLimits()),
    )


def _num(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class PlcrunEVSEController(SimEVSEController):
    """One EVSE: ``emit(message)`` sends a line to plcrun; ``command(w, command)`` comes from it."""

    def __init__(self, evse: dict, emit, pki_path: str = "") -> None:
        super().__init__()
        self.evse = evse
        self.pki_path = pki_path
        self._refused = False
        self.id = evse["id"]
        self.emit = emit
        self.ev_data_context = fresh_ev_context()
        self.evse_data_context = get_evse_context()
        context = self.evse_data_context
        context.present_voltage = 0
        context.present_current = 0
        context.present_active_power = 0
        context.nominal_voltage = evse["nominal_voltage_v"]
        self.setpoint_w = 0.0
        self.command_name = "run"
        self._renegotiation_sent = False
        self.comm_session = None
        self.connected = False
        self.applied_w = 0.0
        self._sent: dict | None = None
        self._sent_at = 0.0
        self.loops = 0

    # ------------------------------------------------------------ from plcrun
    def command(self, power_w: float, command: str) -> None:
        if command != "renegotiate":
            self._renegotiation_sent = False
        self.setpoint_w = power_w
        self.command_name = command

    # ------------------------------------------------------------ session life
    async def set_present_protocol_state(self, state) -> None:
        session = getattr(state, "comm_session", None)
        if session is not None and self.comm_session is not session:
            self.comm_session = session
            self.connected = True
        self.report()

    async def session_ended(self, current_state: str, reason: str) -> None:
        # the package may call this twice per session: report once
        if self.connected:
            self.connected = False
            self.emit({"t": "ended", "evse": self.id, "reason": f"{reason} (in {current_state})"[:400]})
        self.comm_session = None
        self.ev_data_context = fresh_ev_context()
        self.applied_w = 0.0
        self._renegotiation_sent = False
        self.report(force=True)

    def reset_ev_data_context(self) -> None:
        self.ev_data_context = fresh_ev_context()

    # ------------------------------------------------------------ offers
    async def get_service_parameter_list(self, service_id: int):
        offered = await super().get_service_parameter_list(service_id)
        wanted = self.evse["control_mode"]  # 1 scheduled, 2 dynamic: offered first, cars take the first

        def mode(parameter_set) -> int:
            for parameter in parameter_set.parameters:
                if parameter.name == "ControlMode":
                    return parameter.int_value
            return 0

        ordered = sorted(offered.parameter_sets, key=lambda s: 0 if mode(s) == wanted else 1)
        return ServiceParameterList(parameter_sets=ordered)

    async def get_dc_charge_params_v20(self, energy_service):
        evse = self.evse
        rational = RationalNumber.get_rational_repr
        base = DCChargeParameterDiscoveryResParams(
            evse_max_charge_power=rational(evse["max_charge_w"]),
            evse_min_charge_power=rational(0),
            evse_max_charge_current=rational(evse["max_current_a"]),
            evse_min_charge_current=rational(0),
            evse_max_voltage=rational(evse["max_voltage_v"]),
            evse_min_voltage=rational(evse["min_voltage_v"]),
        )
        if energy_service == ServiceV20.DC_BPT:
            return BPTDCChargeParameterDiscoveryResParams(
                **base.dict(),
                evse_max_discharge_power=rational(evse["max_discharge_w"]),
                evse_min_discharge_power=rational(0),
                evse_max_discharge_current=rational(evse["max_current_a"]),
                evse_min_discharge_current=rational(0),
            )
        return base

    async def is_authorized(self, id_token=None, id_token_type=None, certificate_chain=None, hash_data=None):
        session = self.comm_session
        pnc_20 = _PROTOCOLS.get(getattr(session, "protocol", None), 0) == 20
        if getattr(session, "selected_auth_option", None) != AuthEnum.PNC or not pnc_20:
            return await super().is_authorized(id_token, id_token_type, certificate_chain, hash_data)
        accepted, reason = pnc.check_contract(self.pki_path, getattr(session, "plcrun_contract", None))
        iface = self.evse["iface"]
        if accepted:
            log.info("%s: Plug & Charge authorized: %s", self.id, reason)
            if self._refused:
                self._refused = False
                text = f"Plug & Charge authorized on {iface}: {reason}"
                self.emit(
                    {"t": "alarm", "evse": self.id, "key": "authorization", "raise": False, "text": text}
                )
            return AuthorizationResponse(AuthorizationStatus.ACCEPTED, ResponseCodeV20.OK)
        self._refused = True
        text = f"Plug & Charge refused on {iface}: {reason}"
        log.warning("%s: %s", self.id, text)
        self.emit({"t": "alarm", "evse": self.id, "key": "authorization", "raise": True, "text": text})
        return AuthorizationResponse(AuthorizationStatus.REJECTED, ResponseCodeV20.FAILED)

    async def service_renegotiation_supported(self) -> bool:
        # the package's simulator says no: then a car asked to renegotiate ends the session instead
        return True

    async def get_ac_charge_params_v20(self, energy_service):
        evse = self.evse
        rational = RationalNumber.get_rational_repr
        base = ACChargeParameterDiscoveryResParams(
            evse_max_charge_power=rational(evse["max_charge_w"]),
            evse_min_charge_power=rational(0),
            evse_nominal_frequency=rational(50),
            evse_present_active_power=rational(0),
        )
        if energy_service == ServiceV20.AC_BPT:
            return BPTACChargeParameterDiscoveryResParams(
                **base.dict(),
                evse_max_discharge_power=rational(evse["max_discharge_w"]),
                evse_min_discharge_power=rational(0),
            )
        return base

    async def get_scheduled_se_params(self, selected_energy_service, schedule_exchange_req):
        """Scheduled mode: one schedule tuple, the program's power now, until the car's departure."""
        power = self._allowed_power()
        self.applied_w = power
        rational = RationalNumber.get_rational_repr
        asked = getattr(schedule_exchange_req, "scheduled_params", None)
        departure = _num(getattr(asked, "departure_time", None))
        duration = int(departure) if departure and 0 < departure < 86400 else 86400

        def schedule(watts: float) -> PowerSchedule:
            entry = PowerScheduleEntry(duration=duration, power=rational(watts))
            return PowerSchedule(time_anchor=0, schedule_entry_list=PowerScheduleEntryList(entries=[entry]))

        # the XSD wants a price schedule with each power schedule: one flat price level (no tariffs)
        flat = PriceLevelSchedule(
            time_anchor=0,
            schedule_id=1,
            num_price_levels=1,
            schedule_entries=PriceLevelScheduleEntryList(
                entries=[PriceLevelScheduleEntry(duration=duration, price_level=0)]
            ),
        )
        discharging = None
        if selected_energy_service.service in (ServiceV20.AC_BPT, ServiceV20.DC_BPT):
            discharging = DischargingSchedule(
                power_schedule=schedule(max(-power, 0.0)), price_level_schedule=flat
            )
        offer = ScheduleTuple(
            schedule_tuple_id=1,
            charging_schedule=ChargingSchedule(
                power_schedule=schedule(max(power, 0.0)), price_level_schedule=flat
            ),
            discharging_schedule=discharging,
        )
        log.info("%s: scheduled mode, offered %.0f W until departure (%d s)", self.id, power, duration)
        return ScheduledScheduleExchangeResParams(schedule_tuples=[offer])

    # ------------------------------------------------------------ the charge loop
    def _kind(self):
        """(protocol code, energy mode code, control mode code) of the running session."""
        session = self.comm_session
        if session is None:
            return 0, 0, 0
        protocol = _PROTOCOLS.get(getattr(session, "protocol", None), 0)
        service = getattr(getattr(session, "selected_energy_service", None), "service", None)
        mode = _SERVICES.get(service, 0)
        if mode == 0:
            selected = str(getattr(self.ev_data_context, "selected_energy_mode", "") or "")
            mode = 2 if "DC" in selected else 1 if "AC" in selected else 0
        control = {ControlMode.SCHEDULED: 1, ControlMode.DYNAMIC: 2}.get(
            getattr(session, "control_mode", None), 0
        )
        return protocol, mode, control

    def _car_limits(self, dc: bool):
        """The car's (max charge, min charge, max discharge, min discharge) in W, None where unsaid."""
        ev = self.ev_data_context
        session = ev.session_limits.dc_limits if dc else ev.session_limits.ac_limits
        rated = ev.rated_limits.dc_limits if dc else ev.rated_limits.ac_limits

        def pick(name):
            value = _num(getattr(session, name, None))
            return value if value is not None else _num(getattr(rated, name, None))

        return (
            pick("max_charge_power"),
            pick("min_charge_power"),
            pick("max_discharge_power"),
            pick("min_discharge_power"),
        )

    def _allowed_power(self) -> float:
        """The setpoint after the command, the charger's and the car's limits."""
        _, mode, _ = self._kind()
        bidirectional = mode in (3, 4)
        power = 0.0 if self.command_name in ("stop", "pause") else self.setpoint_w
        car_max_charge, car_min_charge, car_max_discharge, car_min_discharge = self._car_limits(
            mode not in (1, 3)
        )
        high = self.evse["max_charge_w"]
        if car_max_charge is not None:
            high = min(high, car_max_charge)
        low = 0.0
        if bidirectional:
            low = -self.evse["max_discharge_w"]
            if car_max_discharge is not None:
                low = max(low, -car_max_discharge)
        power = min(max(power, low), max(high, 0.0))
        # a car cannot run between 0 and its minimum: below it, nothing
        if power > 0 and car_min_charge and power < car_min_charge:
            power = 0.0
        if power < 0 and car_min_discharge and -power < car_min_discharge:
            power = 0.0
        return power

    def _volts(self) -> float:
        voltage = _num(self.ev_data_context.present_voltage)
        return voltage if voltage and voltage > 0 else float(self.evse["nominal_voltage_v"])

    def _apply(self) -> float:
        """Write the allowed power into the EVSE's session limits and present values."""
        power = self._allowed_power()
        self.applied_w = power
        volts = self._volts()
        context = self.evse_data_context
        dc = context.session_limits.dc_limits
        ac = context.session_limits.ac_limits
        charge, discharge = (power, 0.0) if power >= 0 else (0.0, -power)
        dc.max_charge_power = charge
        dc.min_charge_power = 0
        dc.max_discharge_power = discharge
        dc.min_discharge_power = 0
        dc.max_charge_current = charge / volts
        dc.max_discharge_current = discharge / volts
        dc.max_voltage = self.evse["max_voltage_v"]
        dc.min_voltage = self.evse["min_voltage_v"]
        ac.max_charge_power = charge
        ac.max_discharge_power = discharge
        ac.max_charge_reactive_power = 0
        ac.max_discharge_reactive_power = 0
        for phase in ("l2", "l3"):
            setattr(ac, f"max_charge_power_{phase}", None)
            setattr(ac, f"max_discharge_power_{phase}", None)
            setattr(ac, f"max_charge_reactive_power_{phase}", None)
            setattr(ac, f"max_discharge_reactive_power_{phase}", None)
        # the power stage delivers what is allowed
        context.present_voltage = volts
        context.present_current = power / volts
        context.present_active_power = power
        context.rated_limits.dc_limits.max_charge_power = self.evse["max_charge_w"]
        return power

    async def get_dc_charge_loop_params_v20(self, control_mode, selected_service):
        self._apply()
        self.loops += 1
        params = await super().get_dc_charge_loop_params_v20(control_mode, selected_service)
        self.report()
        return params

    async def get_ac_charge_loop_params_v20(self, control_mode, selected_service):
        self._apply()
        self.loops += 1
        params = await super().get_ac_charge_loop_params_v20(control_mode, selected_service)
        self.report()
        return params

    async def send_charging_command(
        self, ev_target_voltage=None, ev_target_current=None, is_precharge=False, is_session_bpt=False
    ):
        self._apply()

    async def get_evse_present_current(self, protocol):
        self._apply()
        return await super().get_evse_present_current(protocol)

    async def get_evse_status(self):
        if self.command_name == "stop":
            return EVSEStatus(notification_max_delay=0, evse_notification=EVSENotification.TERMINATE)
        if self.command_name == "renegotiate" and not self._renegotiation_sent:
            self._renegotiation_sent = True
            return EVSEStatus(
                notification_max_delay=0, evse_notification=EVSENotification.SERVICE_RENEGOTIATION
            )
        return None

    async def get_dc_evse_status(self):
        notification = NotificationV2.NONE
        if self.command_name == "stop":
            notification = NotificationV2.STOP_CHARGING
        elif self.command_name == "renegotiate" and not self._renegotiation_sent:
            self._renegotiation_sent = True
            notification = NotificationV2.RE_NEGOTIATION
        self.loops += 1
        self._apply()
        self.report()
        return DCEVSEStatus(
            evse_notification=notification,
            notification_max_delay=0,
            evse_isolation_status=IsolationLevel.VALID,
            evse_status_code=DCEVSEStatusCode.EVSE_READY,
        )

    # ------------------------------------------------------------ what plcrun hears
    def fields(self) -> dict:
        if not self.connected:
            return {name: None for name in _FIELDS} | {"connected": False, "bidirectional_allowed": False}
        ev = self.ev_data_context
        protocol, mode, control = self._kind()
        max_charge, min_charge, max_discharge, min_discharge = self._car_limits(mode not in (1, 3))
        bidirectional = mode in (3, 4) and (max_discharge or 0.0) > 0 and self.evse["max_discharge_w"] > 0
        if mode == 1 or mode == 3:
            present = _num(ev.present_active_power)
        else:
            present = _num(self.evse_data_context.present_current)
            present = None if present is None else present * self._volts()
        departure = _num(ev.departure_time)
        auth = getattr(self.comm_session, "selected_auth_option", None)
        auth_code = 0
        if auth is not None:
            auth_code = 2 if str(getattr(auth, "value", auth)).lower().startswith("pnc") else 1
            if auth in (AuthEnum.EIM,):
                auth_code = 1
        return {
            "connected": True,
            "bidirectional_allowed": bidirectional,
            "protocol": protocol,
            "energy_mode": mode,
            "control_mode": control,
            "auth_mode": auth_code,
            "soc_pct": _num(ev.present_soc),
            "target_soc_pct": _num(ev.target_soc),
            "min_soc_pct": _num(ev.min_soc),
            # the car says seconds from now
            "departure_time": int(time.time() + departure) if departure is not None else None,
            "e_target_wh": _num(ev.target_energy_request),
            "e_min_wh": _num(ev.min_energy_request),
            "e_max_wh": _num(ev.max_energy_request),
            "e_v2x_min_wh": _num(ev.min_v2x_energy_request),
            "e_v2x_max_wh": _num(ev.max_v2x_energy_request),
            "p_charge_max_w": _num(max_charge),
            "p_charge_min_w": _num(min_charge),
            "p_discharge_max_w": _num(max_discharge) if bidirectional else 0.0,
            "p_discharge_min_w": _num(min_discharge) if bidirectional else 0.0,
            "p_present_w": present,
        }

    def report(self, force: bool = False) -> None:
        fields = self.fields()
        # departure drifts by a second now and then: compare without it unless it moved > 1 s
        # (and at least every second during a session: plcrun takes silence for a lost car)
        now = time.monotonic()
        if not force and self._sent is not None and (not self.connected or now - self._sent_at < 1.0):
            same = all(
                fields[k] == self._sent.get(k)
                or (k == "departure_time" and _close(fields[k], self._sent.get(k)))
                for k in fields
            )
            if same:
                return
        self._sent, self._sent_at = fields, now
        for key, value in fields.items():
            if isinstance(value, float) and value != value:
                fields[key] = None
        self.emit({"t": "ev", "evse": self.id, "fields": fields})


def _close(a, b) -> bool:
    return isinstance(a, int) and isinstance(b, int) and abs(a - b) <= 1


_FIELDS = (
    "connected", "bidirectional_allowed", "protocol", "energy_mode", "control_mode", "auth_mode",
    "soc_pct", "target_soc_pct", "min_soc_pct", "departure_time", "e_target_wh", "e_min_wh",
    "e_max_wh", "e_v2x_min_wh", "e_v2x_max_wh", "p_charge_max_w", "p_charge_min_w",
    "p_discharge_max_w", "p_discharge_min_w", "p_present_w",
)  # fmt: skip
