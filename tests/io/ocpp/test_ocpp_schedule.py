"""Composite schedules, written from the facts of the OCPP 2.x specification (Part 2, smart charging):
its example profile (11 kW, 6 kW from 08:00 to 20:00, recurring daily), stacking within a purpose,
TxProfile replacing TxDefaultProfile, the lowest limit across purposes, validity and offline rules."""

from __future__ import annotations

from typing import Any

import pytest
from plcrun.io.ocpp.schedule import (
    NO_LIMIT,
    Context,
    ProfileError,
    ProfileSet,
    composite_periods,
    parse_profile,
    parse_time,
)

DAY = parse_time("2026-12-07T00:00:00Z")  # a Monday
H = 3600.0


def profile(
    pid: int,
    purpose: str,
    periods: list[tuple[int, float]],
    stack: int = 0,
    kind: str = "Absolute",
    start: float | None = DAY,
    evse: int = 0,
    unit: str = "W",
    **extra: Any,
) -> Any:
    schedule: dict[str, Any] = {
        "id": pid,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    }
    if start is not None:
        schedule["startSchedule"] = f"2026-12-07T{int((start - DAY) // 3600):02d}:00:00Z"
    for key in ("duration",):
        if key in extra:
            schedule[key] = extra.pop(key)
    raw = {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
        **extra,
    }
    return parse_profile(evse, raw, DAY, 230.0, 3)


SPEC_EXAMPLE = [(0, 11000.0), (8 * 3600, 6000.0), (20 * 3600, 11000.0)]


def limits(
    profiles: ProfileSet, evse: int, t0: float, t1: float, ctx: Context | None = None
) -> list[tuple[float, float]]:
    return [((t - t0) / H, v.charge_w) for t, v in profiles.segments(evse, t0, t1, ctx or Context())]


def test_the_specification_example_recurs_every_day() -> None:
    ps = ProfileSet([profile(1, "TxDefaultProfile", SPEC_EXAMPLE, kind="Recurring", recurrencyKind="Daily")])
    assert limits(ps, 1, DAY + 24 * H, DAY + 48 * H) == [(0.0, 11000.0), (8.0, 6000.0), (20.0, 11000.0)]
    assert ps.values_at(1, DAY + 3 * 24 * H + 12 * H, Context()).charge_w == 6000.0


def test_a_higher_stack_level_leads_only_while_its_schedule_runs() -> None:
    ps = ProfileSet(
        [
            profile(1, "TxDefaultProfile", SPEC_EXAMPLE, kind="Recurring", recurrencyKind="Daily"),
            profile(2, "TxDefaultProfile", [(0, 2000.0)], stack=1, start=DAY + 10 * H, duration=2 * 3600),
        ]
    )
    assert limits(ps, 1, DAY, DAY + 24 * H) == [
        (0.0, 11000.0),
        (8.0, 6000.0),
        (10.0, 2000.0),
        (12.0, 6000.0),  # stack level 1 ended: level 0 leads again, it is not shadowed
        (20.0, 11000.0),
    ]


def test_a_higher_level_may_raise_the_limit_within_its_purpose() -> None:
    ps = ProfileSet(
        [
            profile(1, "TxDefaultProfile", [(0, 6000.0)]),
            profile(2, "TxDefaultProfile", [(0, 9000.0)], stack=3),
        ]
    )
    assert ps.values_at(1, DAY + H, Context()).charge_w == 9000.0


def test_tx_profile_replaces_the_default_and_the_station_maximum_caps_both() -> None:
    ctx = Context(tx={1: ("tx-1", DAY)})
    ps = ProfileSet(
        [
            profile(1, "TxDefaultProfile", [(0, 6000.0)], stack=5),
            profile(2, "TxProfile", [(0, 8000.0), (3600, 3000.0)], evse=1, transactionId="tx-1"),
            profile(3, "ChargingStationMaxProfile", [(0, 7000.0)]),
        ]
    )
    assert limits(ps, 1, DAY, DAY + 2 * H, ctx) == [(0.0, 7000.0), (1.0, 3000.0)]
    # another EVSE without a transaction: the default, under the station maximum
    assert limits(ps, 2, DAY, DAY + 2 * H, ctx) == [(0.0, 6000.0)]
    # the station itself: only the station maximum
    assert limits(ps, 0, DAY, DAY + 2 * H, ctx) == [(0.0, 7000.0)]
    # a TxProfile for another transaction does not apply
    assert ps.values_at(1, DAY, Context(tx={1: ("tx-2", DAY)})).charge_w == 6000.0


def test_an_evse_default_takes_precedence_over_the_station_wide_default() -> None:
    ps = ProfileSet(
        [
            profile(1, "TxDefaultProfile", [(0, 6000.0)], stack=9),
            profile(2, "TxDefaultProfile", [(0, 10000.0)], evse=2),
        ]
    )
    assert ps.values_at(2, DAY, Context()).charge_w == 10000.0
    assert ps.values_at(1, DAY, Context()).charge_w == 6000.0


def test_relative_profiles_start_with_the_transaction_and_amperes_become_watts() -> None:
    relative = profile(1, "TxDefaultProfile", [(0, 16.0), (1800, 8.0)], kind="Relative", start=None, unit="A")
    ps = ProfileSet([relative])
    assert ps.values_at(1, DAY, Context()).charge_w == NO_LIMIT  # no transaction: not started
    ctx = Context(tx={1: ("tx", DAY + 5 * H)})
    assert limits(ps, 1, DAY + 5 * H, DAY + 7 * H, ctx) == [(0.0, 16 * 230 * 3), (0.5, 8 * 230 * 3)]


def test_validity_and_the_offline_duration() -> None:
    ps = ProfileSet(
        [
            profile(1, "TxDefaultProfile", [(0, 5000.0)], validTo="2026-12-07T06:00:00Z"),
            profile(2, "ChargingStationMaxProfile", [(0, 4000.0)], maxOfflineDuration=600),
        ]
    )
    online = limits(ps, 1, DAY, DAY + 8 * H)
    assert online == [(0.0, 4000.0)]
    offline = limits(ps, 1, DAY, DAY + 8 * H, Context(offline_since=DAY + H))
    assert offline == [(0.0, 4000.0), (1.0 + 600 / H, 5000.0), (6.0, NO_LIMIT)]


def test_v21_modes_curves_and_discharge_limits() -> None:
    raw = {
        "id": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2026-12-07T00:00:00Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "operationMode": "LocalFrequency",
                        "v2xFreqWattCurve": [
                            {"frequency": 49.8, "power": -7000.0},
                            {"frequency": 50.0, "power": 0.0},
                            {"frequency": 50.2, "power": 7000.0},
                        ],
                        "v2xBaseline": 2000.0,
                        "dischargeLimit": -5000.0,
                    },
                    {"startPeriod": 3600, "operationMode": "ChargingOnly", "limit": 11000.0},
                ],
            }
        ],
    }
    ps = ProfileSet([parse_profile(0, raw, DAY, 230.0, 3)])
    first = ps.values_at(1, DAY + 60, Context())
    assert first.mode == "LocalFrequency" and first.baseline_w == 2000.0
    assert first.curve == ((49.8, -7000.0), (50.0, 0.0), (50.2, 7000.0))
    assert (first.charge_w, first.discharge_w) == (NO_LIMIT, 5000.0)
    later = ps.values_at(1, DAY + 2 * H, Context())
    assert (later.mode, later.charge_w, later.discharge_w) == ("ChargingOnly", 11000.0, 0.0)
    periods = composite_periods(
        ps.segments(1, DAY, DAY + 2 * H, Context()), DAY, "W", 230.0, 3, 22000.0, True
    )
    assert periods[0]["operationMode"] == "LocalFrequency" and periods[0]["dischargeLimit"] == -5000.0
    assert periods[1] == {
        "startPeriod": 3600,
        "limit": 11000.0,
        "dischargeLimit": -0.0,
        "operationMode": "ChargingOnly",
    }


def test_composite_periods_in_amperes_and_merged() -> None:
    ps = ProfileSet([profile(1, "ChargingStationMaxProfile", [(0, 6900.0), (600, 6900.0), (1200, 13800.0)])])
    periods = composite_periods(ps.segments(0, DAY, DAY + H, Context()), DAY, "A", 230.0, 3, 22000.0, False)
    assert periods == [
        {"startPeriod": 0, "limit": 10.0, "numberPhases": 3},
        {"startPeriod": 1200, "limit": 20.0, "numberPhases": 3},
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"chargingSchedulePeriod": [{"startPeriod": 5, "limit": 1.0}]},
        {"chargingSchedulePeriod": [{"startPeriod": 0, "limit": -1.0}]},
        {
            "chargingSchedulePeriod": [
                {
                    "startPeriod": 0,
                    "operationMode": "LocalFrequency",
                    "v2xFreqWattCurve": [{"frequency": 50, "power": 0}],
                }
            ]
        },
    ],
)
def test_unusable_schedules_are_refused(bad: dict[str, Any]) -> None:
    raw = {
        "id": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", **bad}],
    }
    with pytest.raises(ProfileError):
        parse_profile(1, raw, DAY, 230.0, 3)
