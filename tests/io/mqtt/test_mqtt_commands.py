"""Cloud-to-gateway commands: the schema check on its own, and end to end through a real broker into
``read_inputs``; a bad message is logged, counted and changes nothing."""

from __future__ import annotations

import json
import logging

import pytest
from plcrun.executor.driver_api import Quality
from plcrun.io.mqtt import CommandRejected, CurveCommand, ValueCommand, validate_command

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
}


def test_curve_sets_arrays_count_and_baseline() -> None:
    values = validate_command(CURVE, json.dumps(OCPP_CURVE).encode())
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
        (b'{"curve": []}', "1 to 20 points"),
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
    assert validate_command(enable, b'{"value": false}') == {"main.enable": False}
    assert validate_command(limit, b'{"value": 7400}') == {"main.limit_w": 7400.0}
    with pytest.raises(CommandRejected, match="true or false"):
        validate_command(enable, b'{"value": 1}')
    with pytest.raises(CommandRejected, match="outside"):
        validate_command(limit, b'{"value": 12000}')


def test_commands_reach_read_inputs_through_the_broker(make_config, broker, probe, rig, caplog) -> None:
    backhaul, _bus, clock = rig.start(make_config(broker.port))
    assert backhaul.input_paths() == frozenset(CURVE.input_paths()) | {"main.enable"}
    assert wait_until(lambda: backhaul.status().connected)
    assert backhaul.read_inputs(0) == {}
    clock.now = 5 * 1_000_000_000
    probe.publish(f"plcrun/{GATEWAY}/command/fw", json.dumps(OCPP_CURVE))
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

    probe.publish(f"plcrun/{GATEWAY}/command/enable", b'{"value": true}')
    assert wait_until(lambda: backhaul.status().counters["commands_accepted"] == 2)
    assert {k: s.value for k, s in backhaul.read_inputs(clock.now).items()} == {"main.enable": True}
