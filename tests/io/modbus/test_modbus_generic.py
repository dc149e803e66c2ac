"""A generic Modbus device: all four tables, every data type and order, scaling, batching, writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plcrun.io.modbus.codec import decode, encode

from tests.io.modbus.rig import DriverFactory, Inputs, device_spec, good
from tests.support.modbus_devices import ModbusPeer, string_registers, wait_for

CATALOG = {
    "main.i16": "INT",
    "main.i32": "DINT",
    "main.u32_le": "UDINT",
    "main.f32_bs": "REAL",
    "main.f64": "LREAL",
    "main.i64": "LINT",
    "main.flag": "BOOL",
    "main.name": "STRING",
    "main.volts": "REAL",
    "main.hz": "REAL",
    "main.running": "BOOL",
    "%IW0": "UINT",
    "main.coil_in": "BOOL",
    "main.di": "BOOL",
    "%QD2": "REAL",
    "main.out_coil": "BOOL",
    "main.out_scaled": "REAL",
}

POINTS: dict[str, dict[str, object]] = {
    "i16": {"address": 0, "type": "int16", "bind": "main.i16"},
    "i32": {"address": 1, "type": "int32", "bind": "main.i32"},
    "u32_le": {"address": 3, "type": "uint32", "word_order": "little", "bind": "main.u32_le"},
    "f32_bs": {"address": 5, "type": "float32", "byte_order": "little", "bind": "main.f32_bs"},
    "f64": {"address": 7, "type": "float64", "bind": "main.f64"},
    "i64": {"address": 11, "type": "int64", "bind": "main.i64"},
    "flag": {"address": 15, "type": "uint16", "bit": 3, "bind": "main.flag"},
    "name": {"address": 16, "type": "string", "registers": 5, "bind": "main.name"},
    "volts": {"address": 21, "type": "int16", "scale": 0.1, "bind": "main.volts"},
    "hz": {"address": 22, "type": "int16", "scale_register": 23, "bind": "main.hz"},
    "running": {"address": 30, "type": "uint16", "true_values": [1, 2], "bind": "main.running"},
    "ir0": {"table": "input", "address": 0, "bind": "%IW0"},
    "coil_in": {"table": "coil", "address": 3, "bind": "main.coil_in"},
    "di": {"table": "discrete", "address": 5, "bind": "main.di"},
    "out_f32": {
        "address": 100,
        "type": "float32",
        "word_order": "little",
        "direction": "out",
        "bind": "%QD2",
    },
    "out_coil": {"table": "coil", "address": 10, "direction": "out", "bind": "main.out_coil"},
    "out_scaled": {
        "address": 102,
        "type": "int16",
        "scale": 0.1,
        "direction": "out",
        "bind": "main.out_scaled",
    },
}


@pytest.fixture(scope="module")
def plc() -> Iterator[ModbusPeer]:
    with ModbusPeer("generic") as peer:
        peer.set_registers(0, encode(-1234, "int16"))
        peer.set_registers(1, encode(-70000, "int32"))
        peer.set_registers(3, encode(3_000_000_000, "uint32", "little"))
        peer.set_registers(5, encode(12.5, "float32", "big", "little"))
        peer.set_registers(7, encode(-0.125, "float64"))
        peer.set_registers(11, encode(-(2**40), "int64"))
        peer.set_registers(15, [0b1000])
        peer.set_registers(16, string_registers("EVSE1", 5))
        peer.set_registers(21, [2305])
        peer.set_registers(22, [4999, (-2) & 0xFFFF])
        peer.set_registers(30, [2])
        peer.set_registers(0, [777], table="input")
        peer.set_bits(3, [True], table="coil")
        peer.set_bits(5, [True], table="discrete")
        yield peer


def plc_table(port: int, points: dict[str, dict[str, object]], **extra: object) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": port, "timeout_ms": 300, "poll_ms": 10, "points": points, **extra}


def test_every_table_type_and_order_is_decoded(plc: ModbusPeer, start_driver: DriverFactory) -> None:
    driver = start_driver(device_spec("plc", plc_table(plc.port, POINTS), CATALOG))
    inputs = Inputs(driver)
    expected = {
        "main.i16": -1234,
        "main.i32": -70000,
        "main.u32_le": 3_000_000_000,
        "main.f32_bs": 12.5,
        "main.f64": -0.125,
        "main.i64": -(2**40),
        "main.flag": True,
        "main.name": "EVSE1",
        "main.volts": 230.5,
        "main.hz": 49.99,
        "main.running": True,
        "%IW0": 777,
        "main.coil_in": True,
        "main.di": True,
    }
    for path, value in expected.items():
        sample = inputs.wait(path, good(value))
        assert type(sample.value) is type(value), path
    assert driver.input_paths() == frozenset(expected)
    assert driver.output_paths() == frozenset({"%QD2", "main.out_coil", "main.out_scaled"})


@pytest.mark.parametrize("write_connection", [False, True])
def test_outputs_are_encoded_and_written(
    plc: ModbusPeer, start_driver: DriverFactory, write_connection: bool
) -> None:
    """On the polling connection (pymodbus' client) and on a setpoint connection (plcrun's write
    link): function 16 (float32), 5 (coil) and 6 (int16)."""
    table = {**plc_table(plc.port, POINTS), "write_connection": write_connection}
    driver = start_driver(device_spec("plc", table, CATALOG))
    driver.write_outputs(0, {"%QD2": -7.25, "main.out_coil": True, "main.out_scaled": 12.3})
    Inputs(driver).wait("main.i16", good(-1234))  # connected and polling
    wait_for(lambda: decode(plc.registers(100, 2), "float32", "little") == -7.25)
    wait_for(lambda: plc.registers(10, table="coil") == [1])
    wait_for(lambda: plc.registers(102) == [123])
    driver.write_outputs(0, {"%QD2": 1.5, "main.out_coil": False, "main.out_scaled": -1.0})
    wait_for(lambda: decode(plc.registers(100, 2), "float32", "little") == 1.5)
    wait_for(lambda: plc.registers(10, table="coil") == [0])
    wait_for(lambda: plc.registers(102) == [(-10) & 0xFFFF])


def test_neighbouring_points_are_read_in_one_request_per_table(
    plc: ModbusPeer, start_driver: DriverFactory
) -> None:
    inputs_only = {name: point for name, point in POINTS.items() if point.get("direction") != "out"}
    driver = start_driver(device_spec("plc", plc_table(plc.port, inputs_only, max_gap=8), CATALOG))
    Inputs(driver).wait("main.running", good(True))
    wait_for(lambda: driver.status().counters["polls"] >= 20)
    driver.stop()  # the counters are final now
    counters = driver.status().counters
    # 14 points in 4 tables: holding 0..30 (gap of 6 spanned), input 0, coil 3, discrete 5
    assert counters["requests"] == 4 * counters["polls"]
