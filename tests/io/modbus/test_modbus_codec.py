"""Register codecs, value checks, request batching, exception texts and the SunSpec point tables."""

from __future__ import annotations

import math
import struct
from dataclasses import replace

import pytest
from plcrun.io.modbus.codec import decode, encode, is_not_implemented, register_count
from plcrun.io.modbus.errors import explain
from plcrun.io.modbus.model import PointSpec
from plcrun.io.modbus.plan import Item, plan_blocks
from plcrun.io.modbus.points import PointProblem, decode_input, encode_output
from plcrun.io.modbus.sunspec_models import MODELS, point_offset

INT_SAMPLES = {
    "int16": [-32768, -1, 0, 12345, 32767],
    "uint16": [0, 1, 65535],
    "int32": [-(2**31), -70000, 0, 2**31 - 1],
    "uint32": [0, 70000, 2**32 - 1],
    "int64": [-(2**63), -5, 2**63 - 1],
    "uint64": [0, 2**64 - 1],
}


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_every_type_round_trips_in_every_order(word_order: str, byte_order: str) -> None:
    for dtype, samples in INT_SAMPLES.items():
        for value in samples:
            registers = encode(value, dtype, word_order, byte_order)  # type: ignore[arg-type]
            assert len(registers) == register_count(dtype)
            assert decode(registers, dtype, word_order, byte_order) == value  # type: ignore[arg-type]
    for value in (50.0, -1234.5, 1e-3):
        got = decode(encode(value, "float64", word_order, byte_order), "float64", word_order, byte_order)  # type: ignore[arg-type]
        assert got == value
        got32 = decode(encode(value, "float32", word_order, byte_order), "float32", word_order, byte_order)  # type: ignore[arg-type]
        assert got32 == pytest.approx(value, rel=1e-6)


def test_word_and_byte_order_match_known_register_images() -> None:
    # 0x12345678 as registers: big/big = 0x1234 0x5678; word swap; byte swap; both
    assert encode(0x12345678, "uint32", "big", "big") == [0x1234, 0x5678]
    assert encode(0x12345678, "uint32", "little", "big") == [0x5678, 0x1234]
    assert encode(0x12345678, "uint32", "big", "little") == [0x3412, 0x7856]
    assert encode(0x12345678, "uint32", "little", "little") == [0x7856, 0x3412]
    # SunSpec float32 NaN 0x7FC00000 and 50.0 Hz 0x42480000
    assert math.isnan(decode([0x7FC0, 0x0000], "float32"))
    assert decode([0x4248, 0x0000], "float32") == 50.0
    assert decode([0xFFFF], "int16") == -1


def test_float32_reads_as_the_shortest_decimal() -> None:
    registers = list(struct.unpack(">HH", struct.pack(">f", 49.8)))
    assert decode(registers, "float32") == 49.8
    assert decode(list(struct.unpack(">HH", struct.pack(">f", 16777215.0))), "float32") == 16777215.0


def test_sunspec_sentinels() -> None:
    assert is_not_implemented(-0x8000, "int16")
    assert is_not_implemented(0xFFFF, "uint16")
    assert is_not_implemented(-0x80000000, "int32")
    assert is_not_implemented(0xFFFFFFFF, "uint32")
    assert is_not_implemented(float("nan"), "float32")
    assert not is_not_implemented(5000, "int16")


def _point(**changes: object) -> PointSpec:
    base = PointSpec("p", "devices.d.points.p", "in", "holding", "int16", 1, address=0)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_scale_factor_fixed_scale_offset_and_sign() -> None:
    hz = _point(sunspec_sf="Hz_SF", sunspec_sentinels=True, st_type="REAL")
    assert decode_input(hz, [4999], sf=-2) == 49.99
    assert decode_input(_point(scale=0.1, st_type="REAL"), [2305], None) == pytest.approx(230.5)
    assert decode_input(_point(scale=2.0, offset=-40.0, st_type="REAL"), [50], None) == 60.0
    assert decode_input(_point(negate=True, st_type="REAL"), [1000], sf=1) == -10000.0
    assert decode_input(_point(dtype="uint16", st_type="UINT"), [65535], None) == 65535
    assert decode_input(_point(dtype="uint16", bit=3, st_type="BOOL"), [0b1000], None) is True
    assert decode_input(_point(dtype="uint16", true_values=frozenset({1, 11})), [11], None) is True
    assert decode_input(_point(dtype="uint16", true_values=frozenset({1, 11})), [7], None) is False


@pytest.mark.parametrize(
    ("point", "words", "sf", "problem"),
    [
        (_point(sunspec_sentinels=True), [0x8000], None, "'not implemented' value 0x8000"),
        (_point(dtype="uint16", sunspec_sentinels=True), [0xFFFF], None, "'not implemented' value 0xFFFF"),
        (_point(dtype="float32", registers=2), [0x7FC0, 0], None, "not a number (NaN)"),
        (_point(sunspec_sf="Hz_SF"), [5000], -32768, "scale factor register says 'not implemented'"),
        (_point(sunspec_sf="Hz_SF"), [5000], 42, "implausible scale factor 42"),
        (
            _point(sunspec_sf="Hz_SF", plausible=(45.0, 65.0)),
            [5000],
            -1,
            "outside the plausible range 45..65",
        ),
        (_point(dtype="uint16", sentinel=0xFFFF), [0xFFFF], None, "'not implemented' value 65535"),
        (_point(sentinel=0x8000), [0x8000], None, "'not implemented' value 32768"),
    ],
)
def test_unusable_values_are_problems(
    point: PointSpec, words: list[int], sf: int | None, problem: str
) -> None:
    with pytest.raises(PointProblem) as caught:
        decode_input(point, words, sf)
    assert problem in caught.value.problem


def test_output_encoding_clamps_flips_and_scales() -> None:
    setpoint = _point(direction="out", limits=(-7400.0, 7400.0))
    assert encode_output(setpoint, -3000.0, None) == ([(-3000) & 0xFFFF], False)
    assert encode_output(setpoint, 9000.0, None) == ([7400], True)
    wset = _point(direction="out", dtype="int32", registers=2, negate=True, sunspec_sf="WSet_SF")
    # +3000 W charging is -3000 W for a SunSpec DER; WSet_SF = 1 counts tens of watts
    assert encode_output(wset, 3000.0, 1) == (encode(-300, "int32"), False)
    small = _point(direction="out", dtype="int16")
    assert encode_output(small, 1e9, None) == ([32767], True)
    with pytest.raises(PointProblem):
        encode_output(setpoint, float("nan"), None)


def test_batching_joins_neighbours_and_avoids_bad_registers() -> None:
    items = [Item("holding", 100, 2), Item("holding", 102, 1), Item("holding", 110, 1), Item("input", 100, 1)]
    blocks = plan_blocks(items, 125, 0, frozenset())
    assert [(b.table, b.address, b.count) for b in blocks] == [
        ("holding", 100, 3),
        ("holding", 110, 1),
        ("input", 100, 1),
    ]
    joined = plan_blocks(items, 125, 8, frozenset())
    assert (joined[0].table, joined[0].address, joined[0].count) == ("holding", 100, 11)
    # a known-bad register is neither read nor spanned by a gap
    bad = frozenset({Item("holding", 102, 1)})
    avoided = plan_blocks(items, 125, 8, bad)
    assert [(b.address, b.count) for b in avoided if b.table == "holding"] == [(100, 2), (110, 1)]
    # the request limit splits long runs
    many = [Item("holding", a, 1) for a in range(0, 300)]
    assert [b.count for b in plan_blocks(many, 125, 0, frozenset())] == [125, 125, 50]


def test_exception_texts_name_device_unit_function_address_and_meaning() -> None:
    text = explain(2, "site-meter", 1, 3, 40086, 1)
    assert text.startswith("register 40086 is not supported by device 'site-meter' (unit 1)")
    assert "exception 02 ILLEGAL DATA ADDRESS" in text and "read holding registers" in text
    assert "is not supported by device 'c' (unit 7)" in explain(1, "c", 7, 16, 260, 1)
    assert "busy" in explain(6, "c", 7, 3, 1, 1)


@pytest.mark.parametrize(
    ("model", "point", "offset"),
    [
        # offsets from the model ID register, as published in the register-map notes
        (203, "Hz", 16), (203, "Hz_SF", 17), (203, "W", 18), (203, "W_SF", 22),
        (213, "Hz", 26), (213, "W", 28),
        (701, "W", 10), (701, "Hz", 17), (701, "W_SF", 116),
        (702, "WChaRteMaxRtg", 10), (702, "WDisChaRteMaxRtg", 11),
        (704, "WSetEna", 22), (704, "WSetMod", 23), (704, "WSet", 24), (704, "WSetRvrtTms", 31),
        (704, "WSet_SF", 55),
        (711, "DbOf", 14), (711, "DbUf", 16), (711, "KOf", 18), (711, "KUf", 19), (711, "RspTms", 20),
    ],
)  # fmt: skip
def test_sunspec_offsets_match_the_register_maps(model: int, point: str, offset: int) -> None:
    assert MODELS[model].points[point].offset == offset


def test_sunspec_tables_cover_all_meter_variants_and_old_layouts() -> None:
    for model in (201, 202, 203, 204):
        assert MODELS[model].points["Hz"].offset == 16 and MODELS[model].points["Hz"].sf == "Hz_SF"
    for model in (211, 212, 213, 214):
        assert MODELS[model].points["Hz"].dtype == "float32"
    assert MODELS[704].points["WSet"].dtype == "int32" and MODELS[704].points["WSet"].sf == "WSet_SF"
    # the first published 702 was two registers shorter in front of its scale factors
    w_sf = MODELS[702].points["W_SF"]
    assert point_offset(702, 50, w_sf) == 45 and point_offset(702, 48, w_sf) == 43
