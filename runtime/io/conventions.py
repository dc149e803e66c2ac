"""Names by which plcrun finds a site program's meter and EV sessions when nothing configures them:
the simulation binds to these variables and the dashboard charts and tabulates them (best first,
compared without case)."""

from __future__ import annotations

EV_STRUCT = "EV_SESSION"  # an ARRAY OF it holds the EV sessions
METER_STRUCT = "METER_READING"  # or a structure with frequency_hz, voltage_v, power_w

FREQUENCY_NAMES = (
    "grid_hz",
    "grid_frequency_hz",
    "frequency_hz",
    "grid_freq_hz",
    "freq_hz",
    "f_hz",
    "grid_f_hz",
    "grid_frequency",
    "frequency",
    "hz",
    "meter_hz",
)
VOLTAGE_NAMES = ("grid_v", "voltage_v", "meter_v")
SITE_POWER_NAMES = (
    "site_p_w",
    "site_power_w",
    "site_w",
    "p_site_w",
    "site_meter_w",
    "grid_power_w",
    "grid_p_w",
    "meter_power_w",
    "meter_w",
)
EV_COUNT_NAMES = ("n_evs", "ev_count", "num_evs", "nb_evs", "evs_count", "n_sessions", "session_count")
