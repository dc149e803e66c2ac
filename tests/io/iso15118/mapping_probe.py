# mypy: ignore-errors
"""Run with the SECC environment's Python: drives ``PlcrunEVSEController`` (no network, no car) through
setpoints and session kinds and prints what the car would hear, one JSON object per case."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "runtime/io/iso15118/secc_process"))

from evse_controller import PlcrunEVSEController
from iso15118.shared.messages.enums import AuthEnum, ControlMode, Protocol, ServiceV20

EVSE = {"id": "cp1", "max_charge_w": 22000.0, "max_discharge_w": 11000.0, "max_current_a": 60.0,
        "max_voltage_v": 500.0, "min_voltage_v": 150.0, "nominal_voltage_v": 400.0, "control_mode": 2}  # fmt: skip


async def case(protocol, service, control, setpoint, command="run", car=None):
    sent = []
    controller = PlcrunEVSEController(EVSE, sent.append)
    session = SimpleNamespace(
        protocol=protocol,
        selected_energy_service=SimpleNamespace(service=service) if service else None,
        control_mode=control,
        selected_auth_option=AuthEnum.EIM,
    )
    await controller.set_present_protocol_state(SimpleNamespace(comm_session=session))
    limits = controller.ev_data_context.session_limits.dc_limits
    for name, value in (car or {"max_charge_power": 11000.0, "max_discharge_power": 7000.0}).items():
        setattr(limits, name, value)
    controller.ev_data_context.present_voltage = 400.0
    controller.command(setpoint, command)
    controller._apply()
    controller.report(force=True)  # what the charge loop sends after applying
    dc = controller.evse_data_context.session_limits.dc_limits
    status = await controller.get_evse_status()
    return {
        "applied_w": controller.applied_w,
        "max_charge_w": dc.max_charge_power,
        "max_discharge_w": dc.max_discharge_power,
        "current_a": controller.evse_data_context.present_current,
        "notification": status.evse_notification.value if status else None,
        "fields": sent[-1]["fields"],
    }


async def main():
    v20 = Protocol.ISO_15118_20_DC
    cases = {
        "dynamic_discharge": await case(v20, ServiceV20.DC_BPT, ControlMode.DYNAMIC, -20000.0),
        "dynamic_charge": await case(v20, ServiceV20.DC_BPT, ControlMode.DYNAMIC, 5000.0),
        "scheduled_discharge": await case(v20, ServiceV20.DC_BPT, ControlMode.SCHEDULED, -3000.0),
        "dc_without_bpt": await case(v20, ServiceV20.DC, ControlMode.DYNAMIC, -3000.0),
        "iso2_discharge": await case(Protocol.ISO_15118_2, None, None, -3000.0),
        "below_car_minimum": await case(
            v20,
            ServiceV20.DC_BPT,
            ControlMode.DYNAMIC,
            800.0,
            car={"max_charge_power": 11000.0, "min_charge_power": 1500.0, "max_discharge_power": 7000.0},
        ),
        "stop": await case(v20, ServiceV20.DC_BPT, ControlMode.DYNAMIC, 5000.0, "stop"),
        "renegotiate": await case(v20, ServiceV20.DC_BPT, ControlMode.DYNAMIC, 5000.0, "renegotiate"),
    }
    print(json.dumps(cases))


asyncio.run(main())
