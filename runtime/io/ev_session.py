"""The EV session record (stdlib/ev_session.st, EV_SESSION) as drivers see it: the fields a driver
fills from a charger, the car or a simulation, and the one it takes back."""

from __future__ import annotations

# Filled by drivers (Modbus charger profiles, EVerest sessions, the simulation); the ages
# (soc_age, setpoint_age) are kept by the runtime.
EV_INPUT_FIELDS = (
    "connected",
    "bidirectional_allowed",
    "soc_pct",
    "min_soc_pct",
    "target_soc_pct",
    "departure_time",
    "p_charge_max_w",
    "p_charge_min_w",
    "p_discharge_max_w",
    "p_discharge_min_w",
    "e_target_wh",
    "e_min_wh",
    "e_max_wh",
    "e_v2x_min_wh",
    "e_v2x_max_wh",
    "p_present_w",
    "protocol",
    "energy_mode",
    "control_mode",
    "auth_mode",
)
# Written by the program and sent to the charger.
SETPOINT_FIELD = "p_setpoint_w"


# Codes of the INT fields (0 = unknown: the source does not say).
PROTOCOL_DIN70121 = 1
PROTOCOL_ISO15118_2 = 2
PROTOCOL_ISO15118_20 = 20
MODE_AC = 1
MODE_DC = 2
MODE_AC_BPT = 3
MODE_DC_BPT = 4
CONTROL_SCHEDULED = 1
CONTROL_DYNAMIC = 2
AUTH_EIM = 1
AUTH_PNC = 2
