"""Charging profiles and composite schedules (OCPP 2.0.1/2.1 functional block K), in watts, pure Python.

Rules (OCPP 2.x Part 2, "stacking" and "combining purposes"):
- Within one purpose, the leading profile at an instant is the one with the highest ``stackLevel``
  that is valid then (validFrom/validTo, offline validity) AND has a schedule period covering it;
  a higher level that has ended or not started does not shadow a lower one.
- ``TxProfile`` (for the EVSE's running transaction) replaces ``TxDefaultProfile``; a
  ``TxDefaultProfile`` installed on the EVSE takes precedence over one on EVSE 0 (all EVSEs).
- The composite is the lowest limit among the leading profiles of ``ChargingStationMaxProfile``,
  ``ChargingStationExternalConstraints`` and the transaction purpose. ``dischargeLimit`` (2.1, <= 0)
  combines the same way on magnitudes; operation mode, setpoint, curve and baseline (2.1) come from
  the transaction purpose. ``ChargingOnly`` forbids discharging, ``Idle`` forbids both directions.
- EVSE 0 is the station's total: only the station purposes limit it; the station-wide
  ``TxDefaultProfile`` (on EVSE 0) gives its operation mode, setpoint, curve and baseline.

Times are seconds since the epoch (UTC). Amperes become watts as A x voltage x phases.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...errors import PlcrunError

STATION_MAX = "ChargingStationMaxProfile"
EXTERNAL = "ChargingStationExternalConstraints"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSES = (STATION_MAX, EXTERNAL, TX_DEFAULT, TX)
MODES = (
    "Idle",
    "ChargingOnly",
    "CentralSetpoint",
    "ExternalSetpoint",
    "ExternalLimits",
    "CentralFrequency",
    "LocalFrequency",
    "LocalLoadBalancing",
)
NO_LIMIT = math.inf
_RECUR_S = {"Daily": 86400.0, "Weekly": 7 * 86400.0}


def parse_time(text: str) -> float:
    """RFC 3339 date-time to epoch seconds (``Z`` or an offset; no offset means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class ProfileError(PlcrunError, ValueError):
    """A charging profile the station cannot accept (the reason goes into statusInfo)."""


@dataclass(frozen=True)
class Values:
    """What a schedule period says, in watts. ``inf`` = no limit from this source."""

    charge_w: float = NO_LIMIT
    discharge_w: float = NO_LIMIT  # magnitude
    mode: str | None = None
    setpoint_w: float | None = None
    curve: tuple[tuple[float, float], ...] = ()
    baseline_w: float | None = None


@dataclass(frozen=True)
class Period:
    start_s: float  # offset from the schedule start
    values: Values


@dataclass(frozen=True)
class Profile:
    id: int
    evse_id: int
    stack_level: int
    purpose: str
    kind: str  # Absolute, Recurring, Relative
    periods: tuple[Period, ...]
    raw: Mapping[str, Any] = field(compare=False, repr=False)  # as received (camelCase), for reports
    recurrency: str | None = None
    start_s: float | None = None  # startSchedule
    duration_s: float | None = None
    valid_from: float = -NO_LIMIT
    valid_to: float = NO_LIMIT
    transaction_id: str | None = None
    max_offline_s: float | None = None
    invalid_after_offline: bool = False
    installed_at: float = 0.0

    def schedule_start(self, t: float, tx_start: float | None) -> float | None:
        """Start of the schedule occurrence that covers ``t`` (None: not started / no transaction)."""
        if self.kind == "Relative":
            return tx_start
        start = self.start_s if self.start_s is not None else self.installed_at
        if self.kind == "Recurring" and self.recurrency in _RECUR_S:
            every = _RECUR_S[self.recurrency]
            if t >= start:
                start += math.floor((t - start) / every) * every
        return start

    def values_at(self, t: float, tx_start: float | None, offline_since: float | None) -> Values | None:
        if not self.valid_from <= t < self.valid_to:
            return None
        if offline_since is not None and self.max_offline_s is not None:
            if t >= offline_since + self.max_offline_s:
                return None
        start = self.schedule_start(t, tx_start)
        if start is None or t < start:
            return None
        offset = t - start
        if self.duration_s is not None and offset >= self.duration_s:
            return None
        index = bisect.bisect_right([p.start_s for p in self.periods], offset) - 1
        return self.periods[index].values if index >= 0 else None

    def breakpoints(self, t0: float, t1: float, tx_start: float | None) -> Iterable[float]:
        yield from (self.valid_from, self.valid_to)
        if self.kind == "Relative":
            starts = [] if tx_start is None else [tx_start]
        else:
            first = self.start_s if self.start_s is not None else self.installed_at
            starts = [first]
            if self.kind == "Recurring" and self.recurrency in _RECUR_S:
                every = _RECUR_S[self.recurrency]
                k = max(0, math.floor((t0 - first) / every))
                starts = [first + i * every for i in range(k, k + 2 + int((t1 - t0) // every))]
        for start in starts:
            for period in self.periods:
                yield start + period.start_s
            if self.duration_s is not None:
                yield start + self.duration_s


def _watts(value: object, unit: str, phases: float, voltage_v: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ProfileError(f"{value!r} is not a finite number")
    return float(value) * (voltage_v * phases if unit == "A" else 1.0)


def parse_profile(
    evse_id: int, raw: Mapping[str, Any], now: float, voltage_v: float, default_phases: int
) -> Profile:
    """A schema-valid chargingProfile (camelCase) as a ``Profile``; ``ProfileError`` when unusable."""
    schedules = raw.get("chargingSchedule")
    schedule = schedules[0] if isinstance(schedules, list) and schedules else schedules
    if not isinstance(schedule, Mapping):
        raise ProfileError("chargingSchedule is missing")
    unit = schedule.get("chargingRateUnit", "W")
    periods: list[Period] = []
    last = -1.0
    for item in schedule.get("chargingSchedulePeriod", ()):
        start = float(item["startPeriod"])
        if start <= last or (not periods and start != 0):
            raise ProfileError("startPeriod must begin at 0 and increase")
        last = start
        phases = float(item.get("numberPhases", default_phases))
        mode = item.get("operationMode")
        charge = NO_LIMIT if "limit" not in item else _watts(item["limit"], unit, phases, voltage_v)
        discharge = NO_LIMIT
        if "dischargeLimit" in item:
            discharge = -_watts(item["dischargeLimit"], unit, phases, voltage_v)
        if charge < 0 or discharge < 0:
            raise ProfileError("limit must be >= 0 and dischargeLimit <= 0")
        curve = tuple(
            (float(p["frequency"]), _watts(p["power"], unit, phases, voltage_v))
            for p in item.get("v2xFreqWattCurve", ())
        )
        if mode == "LocalFrequency" and len(curve) < 2:
            raise ProfileError("LocalFrequency needs a v2xFreqWattCurve of at least 2 points")
        if any(b[0] <= a[0] for a, b in itertools.pairwise(curve)):
            raise ProfileError("v2xFreqWattCurve frequencies must increase")
        setpoint = item.get("setpoint")
        baseline = item.get("v2xBaseline")
        values = Values(
            charge_w=charge,
            discharge_w=discharge,
            mode=mode,
            setpoint_w=None if setpoint is None else _watts(setpoint, unit, phases, voltage_v),
            curve=curve,
            baseline_w=None if baseline is None else _watts(baseline, unit, phases, voltage_v),
        )
        periods.append(Period(start, values))
    if not periods:
        raise ProfileError("chargingSchedulePeriod is empty")
    kind = raw["chargingProfileKind"]
    start_text = schedule.get("startSchedule")
    if kind in ("Absolute", "Recurring") and start_text is None and kind == "Recurring":
        raise ProfileError("a Recurring profile needs startSchedule")
    try:
        start_s = None if start_text is None else parse_time(start_text)
        valid_from = parse_time(raw["validFrom"]) if "validFrom" in raw else -NO_LIMIT
        valid_to = parse_time(raw["validTo"]) if "validTo" in raw else NO_LIMIT
    except (ValueError, TypeError) as error:
        raise ProfileError(f"bad date-time ({error})") from None
    purpose = raw["chargingProfilePurpose"]
    if purpose not in PURPOSES:
        raise ProfileError(f"purpose {purpose} is not supported")
    if purpose == TX and not raw.get("transactionId"):
        raise ProfileError("a TxProfile needs transactionId")
    if purpose in (STATION_MAX, EXTERNAL) and evse_id != 0:
        raise ProfileError(f"a {purpose} must be installed on EVSE 0")
    if purpose == TX and evse_id == 0:
        raise ProfileError("a TxProfile must name an EVSE")
    return Profile(
        id=int(raw["id"]),
        evse_id=evse_id,
        stack_level=int(raw["stackLevel"]),
        purpose=purpose,
        kind=kind,
        periods=tuple(periods),
        raw=dict(raw),
        recurrency=raw.get("recurrencyKind"),
        start_s=start_s,
        duration_s=None if schedule.get("duration") is None else float(schedule["duration"]),
        valid_from=valid_from,
        valid_to=valid_to,
        transaction_id=raw.get("transactionId"),
        max_offline_s=None if raw.get("maxOfflineDuration") is None else float(raw["maxOfflineDuration"]),
        invalid_after_offline=bool(raw.get("invalidAfterOfflineDuration", False)),
        installed_at=now,
    )


@dataclass(frozen=True)
class Context:
    """What a composite depends on besides the profiles: transactions and the link."""

    tx: Mapping[int, tuple[str, float]] = field(default_factory=dict)  # evse -> (transaction id, start)
    offline_since: float | None = None


def _leading(profiles: Sequence[Profile], t: float, tx_start: float | None, ctx: Context) -> Values | None:
    for profile in profiles:  # sorted by stack level, highest first
        values = profile.values_at(t, tx_start, ctx.offline_since)
        if values is not None:
            return values
    return None


class ProfileSet:
    """The installed profiles; ``composite`` and ``segments`` evaluate them."""

    def __init__(self, profiles: Iterable[Profile] = ()) -> None:
        self.profiles: dict[int, Profile] = {}
        for profile in profiles:
            self.profiles[profile.id] = profile

    def install(self, profile: Profile) -> None:
        """Same id replaces; same purpose, EVSE, stack level (and transaction) replaces too."""
        for other in list(self.profiles.values()):
            if (
                other.purpose == profile.purpose
                and other.evse_id == profile.evse_id
                and other.stack_level == profile.stack_level
                and other.transaction_id == profile.transaction_id
            ):
                del self.profiles[other.id]
        self.profiles[profile.id] = profile

    def clear(
        self, profile_id: int | None, evse_id: int | None, purpose: str | None, stack_level: int | None
    ) -> list[int]:
        removed = [
            p.id
            for p in self.profiles.values()
            if (profile_id is None or p.id == profile_id)
            and (evse_id is None or p.evse_id == evse_id)
            and (purpose is None or p.purpose == purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        for profile_id_ in removed:
            del self.profiles[profile_id_]
        return removed

    def drop_transaction(self, transaction_id: str) -> None:
        """A TxProfile ends with its transaction."""
        for profile in [p for p in self.profiles.values() if p.transaction_id == transaction_id]:
            del self.profiles[profile.id]

    def _sorted(self, purpose: str, evse_id: int, transaction_id: str | None = None) -> list[Profile]:
        found = [
            p
            for p in self.profiles.values()
            if p.purpose == purpose
            and p.evse_id == evse_id
            and (purpose != TX or p.transaction_id == transaction_id)
        ]
        return sorted(found, key=lambda p: -p.stack_level)

    def relevant(self, evse_id: int, ctx: Context) -> tuple[list[Profile], ...]:
        """(station max, external, EVSE TxDefault, EVSE-0 TxDefault, Tx) for one EVSE (0 = station)."""
        tx = ctx.tx.get(evse_id)
        return (
            self._sorted(STATION_MAX, 0),
            self._sorted(EXTERNAL, 0) + (self._sorted(EXTERNAL, evse_id) if evse_id else []),
            self._sorted(TX_DEFAULT, evse_id) if evse_id else [],
            self._sorted(TX_DEFAULT, 0),
            self._sorted(TX, evse_id, tx[0]) if (evse_id and tx) else [],
        )

    def values_at(self, evse_id: int, t: float, ctx: Context) -> Values:
        station, external, tx_default_evse, tx_default_all, tx = self.relevant(evse_id, ctx)
        tx_start = ctx.tx[evse_id][1] if evse_id in ctx.tx else None
        leading = [_leading(station, t, tx_start, ctx), _leading(external, t, tx_start, ctx)]
        transaction = _leading(tx, t, tx_start, ctx)
        if transaction is None:
            transaction = _leading(tx_default_evse, t, tx_start, ctx)
        if transaction is None:
            transaction = _leading(tx_default_all, t, tx_start, ctx)
        if evse_id:  # EVSE 0: the station's total; TxDefault limits (per EVSE) do not bound it
            leading.append(transaction)
        charge = min((v.charge_w for v in leading if v is not None), default=NO_LIMIT)
        discharge = min((v.discharge_w for v in leading if v is not None), default=NO_LIMIT)
        if transaction is None:
            return Values(charge, discharge)
        if evse_id and transaction.mode == "Idle":
            charge, discharge = 0.0, 0.0
        elif evse_id and transaction.mode == "ChargingOnly":
            discharge = 0.0
        return Values(
            charge,
            discharge,
            transaction.mode,
            transaction.setpoint_w,
            transaction.curve,
            transaction.baseline_w,
        )

    def segments(self, evse_id: int, t0: float, t1: float, ctx: Context) -> list[tuple[float, Values]]:
        """The composite over [t0, t1) as (start, values) with values changing at each start."""
        tx_start = ctx.tx[evse_id][1] if evse_id in ctx.tx else None
        points = {t0}
        for group in self.relevant(evse_id, ctx):
            for profile in group:
                points.update(t for t in profile.breakpoints(t0, t1, tx_start) if t0 < t < t1)
                if ctx.offline_since is not None and profile.max_offline_s is not None:
                    cut = ctx.offline_since + profile.max_offline_s
                    if t0 < cut < t1:
                        points.add(cut)
        out: list[tuple[float, Values]] = []
        for t in sorted(points):
            values = self.values_at(evse_id, t, ctx)
            if not out or out[-1][1] != values:
                out.append((t, values))
        return out


def composite_periods(
    segments: Sequence[tuple[float, Values]],
    t0: float,
    unit: str,
    voltage_v: float,
    phases: int,
    max_w: float,
    v21: bool,
) -> list[dict[str, Any]]:
    """chargingSchedulePeriod entries of a GetCompositeSchedule answer (startPeriod from ``t0``)."""
    scale = 1.0 / (voltage_v * phases) if unit == "A" else 1.0
    periods: list[dict[str, Any]] = []
    for start, values in segments:
        limit = min(values.charge_w, max_w)
        period: dict[str, Any] = {"startPeriod": round(start - t0), "limit": round(limit * scale, 1)}
        if unit == "A":
            period["numberPhases"] = phases
        if v21:
            if math.isfinite(values.discharge_w):
                period["dischargeLimit"] = -round(values.discharge_w * scale, 1)
            if values.mode is not None:
                period["operationMode"] = values.mode
            if values.setpoint_w is not None:
                period["setpoint"] = round(values.setpoint_w * scale, 1)
            if values.curve:
                period["v2xFreqWattCurve"] = [
                    {"frequency": hz, "power": round(w * scale, 1)} for hz, w in values.curve
                ]
            if values.baseline_w is not None:
                period["v2xBaseline"] = round(values.baseline_w * scale, 1)
        if periods and periods[-1]["startPeriod"] == period["startPeriod"]:
            periods[-1] = period
        elif not periods or {k: v for k, v in periods[-1].items() if k != "startPeriod"} != {
            k: v for k, v in period.items() if k != "startPeriod"
        }:
            periods.append(period)
    return periods
