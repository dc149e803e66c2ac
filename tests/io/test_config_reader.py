"""The shared TOML table reader: typed getters, dotted keys, unknown keys with hints, and both problem
policies (fail at the first problem, or collect them all and raise them together)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.config_reader import (
    SCENARIO_WORDING,
    SITE_WORDING,
    CollectAll,
    ConfigProblems,
    FailFast,
    TableReader,
    Wording,
    did_you_mean,
    join_key,
    type_name,
)

FILE = "conf.toml"


def strict(text: str, wording: Wording | None = None, key: str = "") -> TableReader:
    policy = FailFast(FILE) if wording is None else FailFast(FILE, wording)
    return TableReader(tomllib.loads(text), key, policy)


def refusal(read: Any) -> ConfigError:
    """The ConfigError that calling ``read()`` raises."""
    with pytest.raises(ConfigError) as caught:
        read()
    assert caught.value.file == FILE
    return caught.value


def test_fail_fast_raises_the_first_problem_naming_file_key_and_problem() -> None:
    reader = strict("[mqtt]\nport = 70000\nqos = 5\n")
    mqtt = reader.table("mqtt")
    assert mqtt is not None
    error = refusal(lambda: mqtt.integer("port", minimum=1, maximum=65535))
    assert (error.key, error.problem) == ("mqtt.port", "must be between 1 and 65535, got 70000")
    assert str(error) == "conf.toml: mqtt.port: must be between 1 and 65535, got 70000"
    assert type(error) is ConfigError
    assert refusal(lambda: mqtt.integer("qos", 1, minimum=0, maximum=2)).key == "mqtt.qos"


def test_collect_all_keeps_going_with_defaults_and_raises_everything_together() -> None:
    problems = CollectAll(FILE)
    reader = TableReader(tomllib.loads('port = "x"\nunit = 300\nname = 5\nok = 7\n'), "dev", problems)
    assert reader.integer("port", 502) == 502
    assert reader.integer("unit", None, maximum=255) is None
    assert reader.string("name", "fallback") == "fallback"
    assert reader.string("host", None, required=True) is None
    assert reader.integer("ok", 0) == 7
    reader.finish()
    assert [(e.key, e.problem) for e in problems.errors] == [
        ("dev.port", "must be an integer, not a string"),
        ("dev.unit", "must be at most 255, got 300"),
        ("dev.name", "must be a string, not an integer"),
        ("dev.host", "is required"),
    ]
    with pytest.raises(ConfigProblems) as caught:
        problems.raise_if_any()
    assert caught.value.problems == problems.errors
    assert str(caught.value).startswith("conf.toml: 4 problems in the file:\n  dev.port: must be an integer")


def test_collect_all_with_one_problem_reads_like_that_problem() -> None:
    problems = CollectAll(FILE)
    TableReader({"x": True}, "t", problems).integer("x", 0)
    with pytest.raises(ConfigProblems) as caught:
        problems.raise_if_any()
    assert str(caught.value) == "conf.toml: t.x: must be an integer, not a boolean"
    CollectAll(FILE).raise_if_any()  # nothing found: nothing raised


def test_a_required_key_without_fallback_stops_collecting_with_what_was_found() -> None:
    problems = CollectAll(FILE)
    reader = TableReader({"a": "x"}, "", problems)
    reader.integer("a", 0)
    with pytest.raises(ConfigProblems) as caught:
        reader.number("b")
    assert [(e.key, e.problem) for e in caught.value.problems] == [
        ("a", "must be an integer, not a string"),
        ("b", "is required"),
    ]
    with pytest.raises(ConfigProblems):
        TableReader({}, "", CollectAll(FILE)).fail("c", "cannot go on")


def test_string_checks_type_blankness_and_choices_with_a_hint() -> None:
    reader = strict('a = "x"\nblank = "  "\nmode = "quazar"\nn = 1\n')
    assert reader.string("a") == "x"
    assert reader.string("missing", "d") == "d"
    assert reader.string("missing2", None) is None
    assert refusal(lambda: reader.string("blank")).problem == "must not be empty"
    assert reader.string("blank", allow_empty=True) == "  "
    assert refusal(lambda: reader.string("n")).problem == "must be a string, not an integer"
    problem = refusal(lambda: reader.string("mode", choices=("generic", "quasar"))).problem
    assert problem == "must be one of 'generic', 'quasar', got 'quazar' (did you mean 'quasar'?)"
    assert refusal(lambda: reader.string("nope")).problem == "is required"


def test_integer_refuses_booleans_and_floats_and_checks_ranges_with_units() -> None:
    reader = strict("t = true\nf = 3.0\nlow = 5\nhigh = 70000\nok = 42\n")
    assert refusal(lambda: reader.integer("t")).problem == "must be an integer, not a boolean"
    assert refusal(lambda: reader.integer("f")).problem == "must be an integer, not a float"
    assert refusal(lambda: reader.integer("low", minimum=10, unit="ms")).problem == (
        "must be at least 10 ms, got 5 ms"
    )
    assert (
        refusal(lambda: reader.integer("high", maximum=65535)).problem == "must be at most 65535, got 70000"
    )
    assert refusal(lambda: reader.integer("high", minimum=1, maximum=65535, unit="ms")).problem == (
        "must be between 1 and 65535 ms, got 70000 ms"
    )
    assert reader.integer("ok", minimum=42, maximum=42) == 42


def test_number_takes_integers_and_refuses_non_finite_values() -> None:
    reader = strict("i = 3\nnan = nan\ninf = -inf\nzero = 0.0\ns = '1.5'\nx = 0.25\n")
    value = reader.number("i")
    assert value == 3.0 and isinstance(value, float)
    assert refusal(lambda: reader.number("nan")).problem == "must be a finite number, not nan"
    assert refusal(lambda: reader.number("inf")).problem == "must be a finite number, not -inf"
    assert refusal(lambda: reader.number("zero", positive=True)).problem == "must be above 0, got 0"
    assert refusal(lambda: reader.number("s")).problem == "must be a number, not a string"
    assert refusal(lambda: reader.number("x", minimum=0.5, maximum=2.0)).problem == (
        "must be between 0.5 and 2, got 0.25"
    )
    assert reader.number("absent", None) is None and reader.number("absent2", 1.5) == 1.5


def test_boolean_and_lists() -> None:
    reader = strict('b = false\none = 1\nnames = ["a", "b"]\nmixed = ["a", 1]\nints = [1, 9]\nnone = []\n')
    assert reader.boolean("b") is False and reader.boolean("absent", True) is True
    assert refusal(lambda: reader.boolean("one")).problem == "must be true or false, not an integer"
    assert reader.string_list("names") == ["a", "b"]
    assert refusal(lambda: reader.string_list("mixed")).problem == "must be an array of strings, not ['a', 1]"
    assert reader.integer_list("ints", minimum=0, maximum=9) == [1, 9]
    assert refusal(lambda: reader.integer_list("ints", maximum=5)).problem == "must be at most 5, got 9"
    assert refusal(lambda: reader.integer_list("none")).problem == (
        "must be a non-empty array of integers, not []"
    )


def test_number_pairs() -> None:
    reader = strict(
        "limits = [0, 10]\nbackwards = [5, 1]\npoints = [[0, 50.0], [1, 49.9]]\nbad = [[0, 1], [2]]\n"
    )
    assert reader.range_pair("limits") == (0.0, 10.0)
    assert reader.range_pair("absent") is None
    assert refusal(lambda: reader.range_pair("backwards")).problem == "low 5 must be below high 1"
    assert reader.pairs("points") == ((0.0, 50.0), (1.0, 49.9))
    error = refusal(lambda: reader.pairs("bad"))
    assert (error.key, error.problem) == ("bad[1]", "must be a [number, number] pair, not [2]")


def test_nested_tables_arrays_of_tables_and_their_dotted_keys() -> None:
    text = """
    [site.devices."meter 1".points.hz]
    scale = "x"
    [[site.segments]]
    kind = "const"
    [[site.segments]]
    kind = 5
    """
    root = strict(text)
    site = root.table("site")
    assert site is not None and root.table("absent") is None
    devices = site.table("devices")
    assert devices is not None
    [(name, meter)] = devices.sub_tables()
    assert name == "meter 1" and meter.key == 'site.devices."meter 1"'
    points = meter.table("points")
    assert points is not None
    hz = points.table("hz")
    assert hz is not None
    assert refusal(lambda: hz.number("scale")).key == 'site.devices."meter 1".points.hz.scale'
    first, second = site.tables("segments")
    assert first.string("kind") == "const" and first.key == "site.segments[0]"
    assert refusal(lambda: second.string("kind")).key == "site.segments[1].kind"
    assert site.tables("absent") == []
    assert site.table_or_empty("absent").data == {}
    assert refusal(lambda: site.table_or_empty("required", required=True)).key == "site.required"


def test_table_shapes_are_checked() -> None:
    reader = strict('t = 1\narr = { x = 1 }\nitems = [1]\n[raw]\nanything = [1, "a"]\n')
    assert refusal(lambda: reader.table("t")).problem == "must be a table, not an integer"
    assert (
        refusal(lambda: reader.tables("arr")).problem == "must be an array of tables ([[arr]]), not a table"
    )
    error = refusal(lambda: reader.tables("items"))
    assert (error.key, error.problem) == ("items[0]", "must be a table, not an integer")
    assert reader.raw_table("raw") == {"anything": [1, "a"]}
    assert reader.raw("t") == 1 and reader.raw("absent", "d") == "d"


def test_sub_tables_collects_entries_that_are_not_tables() -> None:
    problems = CollectAll(FILE)
    reader = TableReader({"read": 1, "a": {"x": 1}, "b": 2}, "cmd", problems)
    reader.integer("read")
    found = reader.sub_tables()
    assert [(name, r.key, dict(r.data)) for name, r in found] == [("a", "cmd.a", {"x": 1})]
    assert [(e.key, e.problem) for e in problems.errors] == [("cmd.b", "must be a table, not an integer")]
    reader.finish()  # every entry was read
    assert len(problems.errors) == 1


def test_finish_reports_unknown_keys_with_did_you_mean() -> None:
    problems = CollectAll(FILE)
    reader = TableReader({"port": 1, "prot": 2, "zzz": 3, "misplaced": 4, "items": 5}, "devices.m", problems)
    reader.integer("port")
    reader.string("protocol", "modbus-tcp")
    reader.mark_used("misplaced")
    reader.finish(allowed_hint=["item"])
    assert [(e.key, e.problem) for e in problems.errors] == [
        ("devices.m.prot", "unknown key 'prot' (did you mean 'port' or 'protocol'?)"),
        ("devices.m.zzz", "unknown key 'zzz'"),
        ("devices.m.items", "unknown key 'items' (did you mean 'item'?)"),
    ]
    with pytest.raises(ConfigError) as caught:
        strict("tpyo = 1\n", key="mqtt").finish()
    assert str(caught.value) == "conf.toml: mqtt.tpyo: unknown key 'tpyo'"


def test_items_marks_every_entry_read() -> None:
    reader = strict('"main.x" = "a.b"\n"main.y" = "c.d"\n', key="bindings")
    assert list(reader.items()) == [("main.x", "a.b"), ("main.y", "c.d")]
    reader.finish()
    assert reader.key_of("main.x") == 'bindings."main.x"'


def test_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "site.toml"
    config.parent.mkdir()
    (config.parent / "ca.pem").write_text("pem")
    reader = TableReader({"ca": "ca.pem", "home": "~/x", "dir": "."}, "tls", FailFast(str(config)))
    assert reader.path("ca") == config.parent / "ca.pem"
    assert reader.path("home") == Path.home() / "x"
    assert reader.existing_file("ca") == config.parent / "ca.pem"
    assert reader.existing_file("absent", None) is None
    with pytest.raises(ConfigError) as caught:
        reader.existing_file("dir")
    assert caught.value.problem == f"{config.parent} is not a regular file"


def test_existing_files_must_exist_and_private_keys_must_be_mode_0600(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("secret")
    key.chmod(0o644)
    reader = TableReader({"key": str(key), "gone": str(tmp_path / "gone.pem")}, "tls", FailFast(FILE))
    assert reader.existing_file("key") == key  # any readable file when it need not be private
    with pytest.raises(ConfigError) as caught:
        reader.existing_file("key", private=True)
    assert caught.value.key == "tls.key"
    assert caught.value.problem == f"file {key} has mode 0644; a key file must be mode 0600 (chmod 600)"
    key.chmod(0o600)
    assert reader.existing_file("key", private=True) == key
    with pytest.raises(ConfigError) as caught:
        reader.existing_file("gone")
    assert caught.value.problem == f"file {tmp_path / 'gone.pem'} does not exist"


def test_collected_file_problems_fall_back_to_the_default(tmp_path: Path) -> None:
    problems = CollectAll(FILE)
    reader = TableReader({"gone": str(tmp_path / "nope")}, "", problems)
    assert reader.existing_file("gone", None) is None
    assert [e.key for e in problems.errors] == ["gone"]


def test_site_and_scenario_wordings() -> None:
    site = TableReader({"unit": 300, "poll": 5, "p": "quazar"}, "devices.m", CollectAll(FILE, SITE_WORDING))
    site.integer("unit", None, maximum=255)
    site.integer("poll", None, minimum=10, maximum=1000, unit="ms")
    site.string("p", None, choices=("generic", "quasar"))
    site.integer("port", None, required=True)
    assert [e.problem for e in site.problems.errors] == [
        "300 is above the maximum 255",
        "5 ms is below the minimum 10 ms",
        "'quazar' is not one of 'generic', 'quasar' (did you mean 'quasar'?)",
        "missing (required)",
    ]
    scenario = strict("soc = 120.0\nd = -1.0\nn = 2.5\nk = 'sine'\n", SCENARIO_WORDING, key="ev")
    assert refusal(lambda: scenario.number("soc", minimum=0.0, maximum=100.0)).problem == (
        "must be <= 100, got 120"
    )
    assert refusal(lambda: scenario.number("d", positive=True)).problem == "must be > 0, got -1"
    assert refusal(lambda: scenario.number("d", minimum=0.0)).problem == "must be >= 0, got -1"
    assert refusal(lambda: scenario.integer("n")).problem == "expected an integer, got a float"
    assert refusal(lambda: scenario.string("k", choices=("const", "ramp"))).problem == (
        "unknown value 'sine' (expected one of: 'const', 'ramp')"
    )
    assert refusal(lambda: scenario.string("absent")).problem == "required key is missing"


def test_helpers() -> None:
    assert join_key("", "a") == "a" and join_key("a", "b-c_1") == "a.b-c_1"
    assert join_key("bindings", 'main."x"') == 'bindings."main.\\"x\\""'
    assert did_you_mean("fsat", ["fast", "default"]) == " (did you mean 'fast'?)"
    assert did_you_mean("qqq", ["fast"]) == ""
    parsed = tomllib.loads("a = 1979-05-27T07:32:00Z\nb = 1979-05-27\nc = 07:32:00\nd = 1.0\ne = {}\n")
    assert [type_name(v) for v in parsed.values()] == [
        "a date-time",
        "a date",
        "a time",
        "a float",
        "a table",
    ]
