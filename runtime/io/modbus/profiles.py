"""Device profiles: the points and start-up writes of a known device type.

A profile turns ``profile = "quasar"`` plus a few settings into the list of points the driver polls
and writes. Points named like fields of the EV session record (``soc_pct``, ``p_setpoint_w``, ...)
are bound to ``<ev>.<field>`` by the site configuration; the others can be bound by name.

Sign convention: P > 0 charges the car, P < 0 discharges it. The Wallbox Quasar uses the same sign;
SunSpec DER models count generation (discharge) as positive, so that profile flips the sign.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .model import InitWrite, PointSpec, SunSpecRef

# Wallbox Quasar 1 holding registers (single 16-bit registers, negatives as two's complement)
QUASAR_CONTROL = 81  # 1 = remote Modbus control
QUASAR_SETPOINT_TYPE = 83  # 1 = power
QUASAR_IDLE_TIMEOUT = 88  # s without a Modbus message before the charger idles
QUASAR_ACTION = 257  # 1 start, 2 stop
QUASAR_POWER_SETPOINT = 260  # W, signed
QUASAR_MAX_AVAILABLE_POWER = 514  # W
QUASAR_ACTUAL_POWER = 526  # W, signed
QUASAR_STATE = 537  # 0 disconnected, 1 charging, 2 waiting for car, 4 paused, 7 error, 11 discharging
QUASAR_SOC = 538  # %
QUASAR_CONNECTED_STATES = frozenset({1, 2, 4, 11})
QUASAR_MAX_POWER_W = 7400


@dataclass(frozen=True, slots=True)
class ProfileSetup:
    points: tuple[PointSpec, ...]
    init_writes: tuple[InitWrite, ...]
    fallback_ms: int | None  # the device's own fallback timer, which the heartbeat must beat


def _holding(name: str, key: str, address: int, dtype: str, direction: str = "in") -> PointSpec:
    return PointSpec(
        name=name,
        key=f"{key}.profile",
        direction="out" if direction == "out" else "in",
        table="holding",
        dtype=dtype,
        registers=1,
        address=address,
    )


def quasar(
    key: str,
    idle_timeout_s: int,
    max_power_w: float,
    connected_states: frozenset[int] = QUASAR_CONNECTED_STATES,
) -> ProfileSetup:
    """Wallbox Quasar 1: power setpoint in register 260 under remote control, state, SoC and power."""
    points = (
        replace(_holding("connected", key, QUASAR_STATE, "uint16"), true_values=connected_states),
        _holding("state", key, QUASAR_STATE, "uint16"),
        replace(_holding("soc_pct", key, QUASAR_SOC, "uint16"), plausible=(0.0, 100.0)),
        _holding("p_present_w", key, QUASAR_ACTUAL_POWER, "int16"),
        _holding("p_charge_max_w", key, QUASAR_MAX_AVAILABLE_POWER, "uint16"),
        _holding("p_discharge_max_w", key, QUASAR_MAX_AVAILABLE_POWER, "uint16"),
        replace(
            _holding("p_setpoint_w", key, QUASAR_POWER_SETPOINT, "int16", "out"),
            limits=(-max_power_w, max_power_w),
            write_function=6,
        ),
    )
    init = (
        InitWrite("remote control on (register 81 = 1)", 1, address=QUASAR_CONTROL),
        InitWrite("setpoint type power (register 83 = 1)", 1, address=QUASAR_SETPOINT_TYPE),
        InitWrite(
            f"idle timeout {idle_timeout_s} s (register 88)", idle_timeout_s, address=QUASAR_IDLE_TIMEOUT
        ),
    )
    return ProfileSetup(points, init, idle_timeout_s * 1000)


def _sunspec(name: str, key: str, model: int, point: str, dtype: str, registers: int) -> PointSpec:
    return PointSpec(
        name=name,
        key=f"{key}.profile",
        direction="in",
        table="holding",
        dtype=dtype,
        registers=registers,
        sunspec=SunSpecRef(model, point),
        sunspec_sentinels=True,
    )


def sunspec_der(key: str, revert_s: int, wset_mod: int, max_power_w: float | None) -> ProfileSetup:
    """A SunSpec DER (701 measurements, 702 capacity, 704 controls) used as a bidirectional charger."""
    setpoint = replace(
        _sunspec("p_setpoint_w", key, 704, "WSet", "int32", 2),
        direction="out",
        sunspec_sf="WSet_SF",
        negate=True,
        sunspec_sentinels=False,
        limits=None if max_power_w is None else (-max_power_w, max_power_w),
    )
    points = (
        replace(_sunspec("p_present_w", key, 701, "W", "int16", 1), sunspec_sf="W_SF", negate=True),
        replace(_sunspec("p_charge_max_w", key, 702, "WChaRteMaxRtg", "uint16", 1), sunspec_sf="W_SF"),
        replace(_sunspec("p_discharge_max_w", key, 702, "WDisChaRteMaxRtg", "uint16", 1), sunspec_sf="W_SF"),
        setpoint,
    )
    init = (
        InitWrite(
            f"active power mode {wset_mod} (704.WSetMod)", wset_mod, sunspec=SunSpecRef(704, "WSetMod")
        ),
        InitWrite(
            f"reversion time {revert_s} s (704.WSetRvrtTms)",
            revert_s,
            dtype="uint32",
            sunspec=SunSpecRef(704, "WSetRvrtTms"),
        ),
        InitWrite("set active power enabled (704.WSetEna = 1)", 1, sunspec=SunSpecRef(704, "WSetEna")),
    )
    return ProfileSetup(points, init, revert_s * 1000)


# EV session record fields a profile can fill (inputs) or take (outputs)
EV_FIELDS: dict[str, tuple[str, ...]] = {
    "quasar": ("connected", "soc_pct", "p_present_w", "p_charge_max_w", "p_discharge_max_w", "p_setpoint_w"),
    "sunspec-der": ("p_present_w", "p_charge_max_w", "p_discharge_max_w", "p_setpoint_w"),
}
