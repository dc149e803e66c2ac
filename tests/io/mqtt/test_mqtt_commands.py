"""Cloud-to-gateway commands: the schema check on its own, and end to end through a real broker into
``read_inputs``; a bad message is logged, counted and changes nothing."""

from __future__ import annotations

import json
import logging
import time

import pytest
from plcrun.executor.driver_api import Quality
from plcrun.io.mqtt import CommandRejected, CurveCommand, ValueCommand, validate_command
from plcrun.io.mqtt.commands import AcceptedCommand, ReplayGuard

from tests.io.mqtt.rig import GATEWAY, wait_until

CURVE = CurveCommand(
    "fw", "main.curve_f", "main.curve_p", "main.curve_n", "main.baseline_w", power_limit_w=20000.0
)
OCPP_CURVE = {
    "curve": [
        {"frequency_hz": 49.8, "power_w": -7000},
        {"frequency_hz": 50.0, "power_w": 0},
        {"frequency_hz": 50.2, "power_w": 7000},
    ],
    "baseline_w": 2000,
    "id": "c-1",
    "expires": 1_800_000_000,
}


def message(fields: dict[str, object], ident: str = "c-1", expires: float = 1_800_000_000) -> bytes:
    return json.dumps({**fields, "id": ident, "expires": expires}).encode()


def test_curve_sets_arrays_count_and_baseline() -> None:
    accepted = validate_command(CURVE, json.dumps(OCPP_CURVE).encode())
    assert (accepted.id, accepted.expires) == ("c-1", 1_800_000_000)
    values = accepted.values
    assert [values[f"main.curve_f[{i}]"] for i in range(1, 4)] == [49.8, 50.0, 50.2]
    assert [values[f"main.curve_p[{i}]"] for i in range(1, 4)] == [-7000.0, 0.0, 7000.0]
    # elements past the last point repeat it, so a program looping to 20 sees a flat extension
    assert values["main.curve_f[20]"] == 50.2 and values["main.curve_p[20]"] == 7000.0
    assert values["main.curve_n"] == 3 and values["main.baseline_w"] == 2000.0
    assert len(values) == 2 * 20 + 2


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"curve": [{"frequency_hz": NaN, "power_w": 0}]}', "NaN is not a valid JSON number"),
        (b"[]", "message must be a JSON object"),
        (b'{"curve": [], "id": "x", "expires": 1}', "1 to 20 points"),
        (json.dumps({"curve": [{"frequency_hz": 50.0, "power_w": 0}] * 21}).encode(), "1 to 20 points"),
        (b'{"curve": [{"frequency_hz": 50.0, "power_w": 0}], "extra": 1}', "unknown field(s) ['extra']"),
        (b'{"curve": [{"frequency_hz": 50.0}]}', "curve[0] lacks field(s) ['power_w']"),
        (b'{"curve": [{"frequency_hz": "50", "power_w": 0}]}', "curve[0].frequency_hz must be a number"),
        (b'{"curve": [{"frequency_hz": true, "power_w": 0}]}', "curve[0].frequency_hz must be a number"),
        (b'{"curve": [{"frequency_hz": 5.0, "power_w": 0}]}', "curve[0].frequency_hz = 5.0 is outside"),
        (b'{"curve": [{"frequency_hz": 50.0, "power_w": 99999}]}', "curve[0].power_w = 99999 is outside"),
        (
            b'{"curve": [{"frequency_hz": 50.0, "power_w": 0}, {"frequency_hz": 49.9, "power_w": 0}]}',
            "curve[1].frequency_hz = 49.9 must be above the previous point's 50",
        ),
        (
            b'{"curve": [{"frequency_hz": 50.0, "power_w": 0}], "baseline_w": null}',
            "baseline_w must be a number",
        ),
    ],
)
def test_bad_curves_are_rejected_with_the_reason(message: bytes, reason: str) -> None:
    with pytest.raises(CommandRejected) as caught:
        validate_command(CURVE, message)
    assert reason in str(caught.value)


def test_single_values() -> None:
    enable = ValueCommand("enable", "bool", "main.enable")
    limit = ValueCommand("limit", "number", "main.limit_w", 0.0, 11000.0)
    assert validate_command(enable, message({"value": False})).values == {"main.enable": False}
    assert validate_command(limit, message({"value": 7400})).values == {"main.limit_w": 7400.0}
    with pytest.raises(CommandRejected, match="true or false"):
        validate_command(enable, message({"value": 1}))
    with pytest.raises(CommandRejected, match="outside"):
        validate_command(limit, message({"value": 12000}))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"value": true}', "lacks field(s) ['expires', 'id']"),
        (b'{"value": true, "id": "a"}', "lacks field(s) ['expires']"),
        (b'{"value": true, "id": "", "expires": 5}', "id must be a string"),
        (b'{"value": true, "id": 7, "expires": 5}', "id must be a string"),
        (b'{"value": true, "id": "a", "expires": "soon"}', "expires must be a number"),
        (b"[" * 7000 + b"]" * 7000, "nested more than 32 levels"),
        (b'{"value": ' + b"9" * 400 + b', "id": "a", "expires": 5}', "has 400 digits"),
        (b'{"value": 1' + b"0" * 400 + b'.0, "id": "a", "expires": 5}', "out of range"),
        (b'{"value": 1e999, "id": "a", "expires": 5}', "out of range"),
    ],
)
def test_hostile_or_incomplete_messages_are_rejected_with_the_reason(payload: bytes, reason: str) -> None:
    enable = ValueCommand("enable", "bool", "main.enable")
    with pytest.raises(CommandRejected) as caught:
        validate_command(enable, payload)
    assert reason in str(caught.value)


def test_replay_guard_admits_an_id_once_and_only_before_its_expiry() -> None:
    now = [1_000.0]
    guard = ReplayGuard(lambda: now[0], max_ttl_s=300.0, capacity=2)
    guard.admit(AcceptedCommand("a", 1_060.0, {}))
    with pytest.raises(CommandRejected, match="already accepted"):
        guard.admit(AcceptedCommand("a", 1_060.0, {}))
    with pytest.raises(CommandRejected, match=r"expired 1\.0 s ago"):
        guard.admit(AcceptedCommand("b", 999.0, {}))
    with pytest.raises(CommandRejected, match="at most 300 s ahead"):
        guard.admit(AcceptedCommand("c", 1_301.0, {}))
    guard.admit(AcceptedCommand("d", 1_010.0, {}))
    with pytest.raises(CommandRejected, match="2 unexpired commands"):
        guard.admit(AcceptedCommand("e", 1_100.0, {}))
    now[0] = 1_020.0  # "d" has expired: its place is free, and replaying it is refused by its expiry
    guard.admit(AcceptedCommand("e", 1_100.0, {}))
    with pytest.raises(CommandRejected, match="expired"):
        guard.admit(AcceptedCommand("d", 1_010.0, {}))
    assert len(guard) == 2


def test_commands_reach_read_inputs_through_the_broker(make_config, broker, probe, rig, caplog) -> None:
    backhaul, _bus, clock = rig.start(make_config(broker.port))
    assert backhaul.input_paths() == frozenset(CURVE.input_paths()) | {"main.enable"}
    assert wait_until(lambda: backhaul.status().connected)
    assert backhaul.read_inputs(0) == {}
    clock.now = 5 * 1_000_000_000
    soon = time.time() + 60  # the backhaul checks expiries against the wall clock
    probe.publish(f"plcrun/{GATEWAY}/command/fw", message(OCPP_CURVE, "fw-1", soon))
    received: dict[str, object] = {}
    assert wait_until(lambda: bool(received.update(backhaul.read_inputs(clock.now)) or received))
    assert received["main.curve_n"].value == 3  # type: ignore[attr-defined]
    assert received["main.curve_p[3]"].value == 7000.0  # type: ignore[attr-defined]
    assert received["main.baseline_w"].quality is Quality.GOOD  # type: ignore[attr-defined]
    assert received["main.baseline_w"].timestamp_ns == clock.now  # type: ignore[attr-defined]
    assert backhaul.read_inputs(clock.now) == {}  # only changes are returned

    with caplog.at_level(logging.WARNING, logger="plcrun.mqtt"):
        probe.publish(f"plcrun/{GATEWAY}/command/fw", b'{"curve": [{"frequency_hz": 50.1')
        probe.publish(f"plcrun/{GATEWAY}/command/enable", b'{"value": "yes"}')
        assert wait_until(lambda: backhaul.status().counters["commands_rejected"] == 2)
    assert backhaul.read_inputs(clock.now) == {}  # nothing changed
    messages = [r.getMessage() for r in caplog.records]
    assert any("rejected command 'fw'" in m and "not valid JSON" in m for m in messages)
    assert any("rejected command 'enable'" in m and "true or false" in m for m in messages)

    probe.publish(f"plcrun/{GATEWAY}/command/enable", message({"value": True}, "en-1", soon))
    assert wait_until(lambda: backhaul.status().counters["commands_accepted"] == 2)
    assert {k: s.value for k, s in backhaul.read_inputs(clock.now).items()} == {"main.enable": True}

    # the same message again (captured and replayed) and an expired one change nothing
    with caplog.at_level(logging.WARNING, logger="plcrun.mqtt"):
        probe.publish(f"plcrun/{GATEWAY}/command/enable", message({"value": True}, "en-1", soon))
        probe.publish(f"plcrun/{GATEWAY}/command/enable", message({"value": False}, "en-2", time.time() - 1))
        assert wait_until(lambda: backhaul.status().counters["commands_rejected"] == 4)
    assert backhaul.read_inputs(clock.now) == {}
    messages = [r.getMessage() for r in caplog.records]
    assert any("'en-1' was already accepted (a replay)" in m for m in messages)
    assert any("'en-2' expired" in m for m in messages)
