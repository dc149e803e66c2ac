"""The line protocol between plcrun and the SECC process: whatever a peer sends is checked, cut or
dropped with a reason; nothing raises."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from plcrun.io.iso15118.wire import MAX_LINE, check_from_secc, check_to_secc, decode, encode

EVSES = frozenset({"cp1"})


def from_secc(doc: object) -> tuple[object, str]:
    message, why = decode(json.dumps(doc).encode())
    return check_from_secc(message, EVSES) if message is not None else (None, why)


def test_an_ev_report_is_checked_field_by_field() -> None:
    good, _ = from_secc(
        {"t": "ev", "evse": "cp1", "fields": {"soc_pct": 55, "protocol": 20, "e_min_wh": None}}
    )
    assert good == {"t": "ev", "evse": "cp1", "fields": {"soc_pct": 55.0, "protocol": 20, "e_min_wh": None}}
    for fields, why in (
        ({"soc_pct": 120}, "soc_pct = 120 is not a num in [0, 100]"),
        ({"connected": 1}, "connected = 1 is not a bool"),
        ({"protocol": 2.5}, "protocol = 2.5 is not a int"),
        ({"p_present_w": "7000"}, "p_present_w = 7000 is not a num"),
        ({"voltage": 400}, "unknown field 'voltage'"),
    ):
        message, reason = from_secc({"t": "ev", "evse": "cp1", "fields": fields})
        assert message is None and why in reason


def test_unknown_evses_kinds_and_non_json_are_refused() -> None:
    assert "unknown EVSE 'cp9'" in from_secc({"t": "ev", "evse": "cp9", "fields": {}})[1]
    assert "unknown message kind 'shell'" in from_secc({"t": "shell", "evse": "cp1"})[1]
    assert decode(b"NaN\n")[0] is None and decode(b'{"t": NaN}\n')[0] is None
    assert decode(b"\xff\xfe\n")[1].startswith("not JSON")
    assert "longer than" in decode(b"x" * (MAX_LINE + 1))[1]
    assert (
        from_secc({"t": "alarm", "evse": "cp1", "key": "k", "raise": True, "text": "x" * 5000})[0]["text"]
        == "x" * 512
    )  # type: ignore[index]


def test_setpoints_to_the_secc_are_finite_and_bounded() -> None:
    ok, _ = check_to_secc({"t": "setpoint", "evse": "cp1", "w": -7000, "command": "stop"}, EVSES)
    assert ok == {"t": "setpoint", "evse": "cp1", "w": -7000.0, "command": "stop"}
    for doc in (
        {"t": "setpoint", "evse": "cp1", "w": float("inf")},
        {"t": "setpoint", "evse": "cp1", "w": 2e6},
        {"t": "setpoint", "evse": "cp1", "w": True},
        {"t": "setpoint", "evse": "cp1", "w": 0, "command": "reboot"},
    ):
        assert check_to_secc(doc, EVSES)[0] is None
    assert len(encode({"t": "quit"})) < 20


@given(st.binary(max_size=300))
def test_no_bytes_raise(data: bytes) -> None:
    message, _ = decode(data)
    if message is not None:
        check_from_secc(message, EVSES)
        check_to_secc(message, EVSES)


@given(
    st.dictionaries(
        st.text(max_size=8), st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    )
)
def test_no_fields_raise(fields: dict[str, object]) -> None:
    check_from_secc({"t": "ev", "evse": "cp1", "fields": fields}, EVSES)
