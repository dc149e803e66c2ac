"""The site configuration: a good file loads; every kind of mistake is reported with file, key and problem,
all of them at once, before anything starts."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.site_config import SiteConfigError, load_site_config

ROOT = Path(__file__).resolve().parents[2]
EV_FIELDS = {
    "connected": "BOOL",
    "soc_pct": "REAL",
    "p_present_w": "REAL",
    "p_charge_max_w": "REAL",
    "p_discharge_max_w": "REAL",
    "p_setpoint_w": "REAL",
    "min_soc_pct": "REAL",
}
CATALOG = {
    "main.grid_hz": "LREAL",
    "main.site_w": "REAL",
    "main.grid_v": "REAL",
    "main.charger1_state": "UINT",
    "main.site_var": "REAL",
    "main.enable": "BOOL",
    "main.count": "INT",
    "%IW0": "INT",
    "%QW3": "INT",
} | {f"main.evs[{i}].{name}": st for i in (1, 2) for name, st in EV_FIELDS.items()}

METER = """
[devices.site-meter]
host = "127.0.0.1"
port = 15020
profile = "sunspec"
poll_groups = { fast = 10 }
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems(tmp_path: Path, text: str, catalog: dict[str, str] = CATALOG) -> list[tuple[str, str]]:
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(write(tmp_path, text), catalog)
    error = caught.value
    assert isinstance(error, ConfigError)
    assert all(p.file.endswith("site.toml") for p in error.problems)
    return [(p.key, p.problem) for p in error.problems]


def test_the_example_site_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    shutil.copy(ROOT / "examples" / "site.toml", path)
    site = load_site_config(str(path), CATALOG)
    assert set(site.devices) == {"site-meter", "charger-1", "charger-2"}
    assert site.devices["site-meter"].sunspec_bases == (40000, 0, 50000)
    assert site.bindings["main.grid_hz"].device == "site-meter"
    assert site.bindings["main.evs[2].soc_pct"].device == "charger-2"
    assert site.output_paths() == {"main.evs[1].p_setpoint_w", "main.evs[2].p_setpoint_w"}
    assert "main.grid_v" in site.input_paths()  # bound by name in [bindings]
    assert (site.bindings["main.grid_v"].device, site.bindings["main.grid_v"].point) == (
        "site-meter",
        "voltage",
    )
    charger = site.devices["charger-1"]
    assert charger.heartbeat_ms == 2000 and charger.fallback_ms == 10_000
    assert [w.address for w in charger.init_writes] == [81, 83, 88]
    assert all(d.host == "127.0.0.1" for d in site.devices.values())


def test_the_der_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    shutil.copy(ROOT / "examples" / "site_der.toml", path)
    catalog = CATALOG | {
        "main.feeder_a": "REAL",
        "%IX0.0": "BOOL",
        "%ID1": "UDINT",
        "%IW4": "WORD",
        "%QX0.0": "BOOL",
        "main.site_limit_w": "REAL",
    }
    site = load_site_config(str(path), catalog)
    der = site.devices["der-1"]
    assert der.sunspec_bases == (40000, 0, 50000) and der.fallback_ms == 10_000
    setpoint = next(p for p in der.points if p.name == "p_setpoint_w")
    assert setpoint.negate and setpoint.sunspec is not None and str(setpoint.sunspec) == "704.WSet"
    assert site.output_paths() == {"main.evs[1].p_setpoint_w", "%QX0.0", "main.site_limit_w"}
    assert site.bindings["%ID1"].device == "plc" and site.devices["plc"].unit == 3


def test_every_table_is_checked_by_the_driver_that_owns_it(tmp_path: Path) -> None:
    text = (
        METER
        + '[mqtt]\nhost = "127.0.0.1"\nanything = [1, 2]\n[sim]\nseed = 3\n[server]\nport = 1502\n[bogus]\n'
    )
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(write(tmp_path, text), CATALOG)
    keys = {p.key for p in caught.value.problems}
    assert {"mqtt.buffer", "sim.seed", "bogus"} <= keys
    assert not any(k.startswith("server") for k in keys)


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        METER
        + """
        [devices.site-meter.points.hz]
        sunspec = "213.Hz"
        bind = "main.grid_hzz"

        [devices.site-meter.points.w]
        sunspec = "213.W"
        bind = "main.enable"

        [devices.site-meter.points.slow]
        sunspec = "213.PhV"
        bind = "main.grid_v"
        poll = "fsat"

        [bindings]
        "main.site_w" = "site-mater.213.W"
        """,
    )
    assert found == [
        ("devices.site-meter.points.slow.poll", "unknown poll group 'fsat' (groups: default, fast) "
         "(did you mean 'fast'?)"),
        ('bindings."main.site_w"', "unknown device 'site-mater' (did you mean 'site-meter'?)"),
        ("devices.site-meter.points.hz.bind", "unknown variable 'main.grid_hzz': the program has no such "
         "bindable variable (did you mean 'main.grid_hz' or 'main.grid_v'?)"),
        ("devices.site-meter.points.w.bind", "type mismatch: SunSpec point 213.W (float32) cannot be "
         "bound to main.enable of type BOOL (use a coil/discrete input, 'bit' or 'true_values')"),
    ]  # fmt: skip
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(write(tmp_path, METER + '[bindings]\n"main.site_w" = "nope.1"\n'), CATALOG)
    assert str(caught.value).startswith(f'{tmp_path / "site.toml"}: bindings."main.site_w": unknown device')


def test_register_overlap_within_a_device(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [devices.plc]
        host = "127.0.0.1"
        port = 1502
        points.a = { address = 10, type = "float32", bind = "main.site_w" }
        points.b = { address = 11, type = "int16", bind = "main.count" }
        points.c = { address = 12, bit = 3, bind = "main.enable" }
        """,
    )
    assert found == [
        ("devices.plc.points.b", "register overlap in device 'plc': point 'b' (holding 11) overlaps "
         "point 'a' (holding 10..11)"),
    ]  # fmt: skip


def test_heartbeat_must_beat_the_device_fallback_timer(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [devices.charger-1]
        host = "127.0.0.1"
        port = 15021
        profile = "quasar"
        ev = "main.evs[1]"
        idle_timeout_s = 2
        timeout_ms = 500
        heartbeat_ms = 2000
        """,
    )
    assert len(found) == 1
    key, problem = found[0]
    assert key == "devices.charger-1.heartbeat_ms"
    assert "heartbeat 2000 ms is not shorter than the device's timeout" in problem
    assert "idle_timeout_s" in problem and "below 1500 ms" in problem
    # without an explicit heartbeat a safe one is derived from the fallback timer
    ok = textwrap.dedent(
        """
        [devices.charger-1]
        host = "127.0.0.1"
        port = 15021
        profile = "quasar"
        ev = "main.evs[1]"
        idle_timeout_s = 2
        timeout_ms = 500
        """
    )
    site = load_site_config(write(tmp_path, ok), CATALOG)
    assert site.devices["charger-1"].heartbeat_ms == 500


def test_polling_faster_than_allowed(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [devices.m]
        host = "127.0.0.1"
        port = 1502
        poll_ms = 5
        min_poll_ms = 50
        poll_groups = { fast = 20 }
        """,
    )
    assert found == [
        ("devices.m.poll_ms", "poll period 5 ms is faster than allowed: the minimum is 50 ms "
         "(this device's min_poll_ms)"),
        ("devices.m.poll_groups.fast", "poll period 20 ms is faster than allowed: the minimum is 50 ms "
         "(this device's min_poll_ms)"),
    ]  # fmt: skip
    assert problems(tmp_path, '[devices.m]\nhost = "127.0.0.1"\nport = 1502\npoll_ms = 2\n') == [
        (
            "devices.m.poll_ms",
            "poll period 2 ms is faster than allowed: the minimum is 10 ms (the scan period)",
        )
    ]


def test_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [sites]
        name = "x"

        [devices.m]
        host = "127.0.0.1"
        prot = 1502
        unit = 300
        profile = "quazar"
        timeout_ms = "fast"
        idle_timeout_s = 5

        [devices.m.points.p]
        table = "coil"
        type = "int16"
        address = 3
        bind = "main.enable"
        scael = 2
        """,
    )
    keys = dict(found)
    assert keys["sites"] == "unknown key 'sites' (did you mean 'site'?)"
    assert keys["devices.m.port"] == "missing (required)"
    assert keys["devices.m.prot"] == "unknown key 'prot' (did you mean 'port', 'protocol' or 'points'?)"
    assert keys["devices.m.unit"] == "300 is above the maximum 255"
    assert keys["devices.m.profile"].startswith("'quazar' is not one of 'generic', 'sunspec', 'quasar'")
    assert keys["devices.m.profile"].endswith("(did you mean 'quasar'?)")
    assert keys["devices.m.timeout_ms"] == "must be an integer, not a string"
    assert keys["devices.m.idle_timeout_s"] == "only used with profile 'quasar'"
    assert keys["devices.m.points.p.type"] == "a coil holds one bit: its type must be 'bool', not 'int16'"
    assert keys["devices.m.points.p.scael"] == "unknown key 'scael' (did you mean 'scale'?)"


def test_sunspec_references_and_located_addresses(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        METER
        + """
        points.a = { sunspec = "213.Hzz", bind = "main.grid_hz" }
        points.b = { sunspec = "999.W", bind = "main.site_w" }
        [devices.plc]
        host = "127.0.0.1"
        port = 1502
        points.in = { address = 0, type = "int16", bind = "%QW3" }
        points.out = { address = 1, type = "int16", direction = "out", bind = "%IW0" }
        points.ro = { table = "input", address = 2, direction = "out", bind = "main.count" }
        """,
    )
    keys = dict(found)
    assert keys["devices.site-meter.points.a.sunspec"] == (
        "SunSpec model 213 (wye three phase meter (float)) has no point 'Hzz' (did you mean 'Hz'?)"
    )
    assert keys["devices.site-meter.points.b.sunspec"].startswith("SunSpec model 999 has no point table")
    assert (
        keys["devices.plc.points.in.bind"]
        == "input point bound to output address %QW3: inputs need a %I address"
    )
    assert (
        keys["devices.plc.points.out.bind"]
        == "output point bound to input address %IW0: outputs need a %Q address"
    )
    assert keys["devices.plc.points.ro.direction"].startswith("a input cannot be written")


def test_integer_ranges_and_scaled_values(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        [devices.plc]
        host = "127.0.0.1"
        port = 1502
        points.a = { address = 0, type = "uint16", bind = "main.count" }
        points.b = { address = 1, type = "int16", scale = 0.1, bind = "%IW0" }
        points.c = { address = 2, type = "int16", bind = "main.site_w" }
        """,
    )
    keys = dict(found)
    assert keys["devices.plc.points.a.bind"] == (
        "type mismatch: a uint16 point ranges 0..65535, which does not fit main.count of type INT "
        "(-32768..32767)"
    )
    assert keys["devices.plc.points.b.bind"].startswith(
        "type mismatch: a int16 point gives fractional values"
    )
    assert "devices.plc.points.c.bind" not in keys  # integers widen into REAL


def test_a_variable_cannot_be_bound_twice_and_names_are_case_insensitive(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        METER
        + """
        points.a = { sunspec = "213.Hz", bind = "MAIN.Grid_Hz" }
        points.b = { sunspec = "203.Hz", bind = "main.grid_hz" }
        """,
    )
    assert found == [
        ("devices.site-meter.points.b.bind", "'main.grid_hz' is bound twice: already to point 'a' of device "
         "'site-meter' (devices.site-meter.points.a.bind)"),
    ]  # fmt: skip


def test_profile_fields_must_exist_in_the_program(tmp_path: Path) -> None:
    catalog = {k: v for k, v in CATALOG.items() if k != "main.evs[1].soc_pct"}
    found = problems(
        tmp_path,
        """
        [devices.charger-1]
        host = "127.0.0.1"
        port = 15021
        profile = "quasar"
        ev = "main.evs[1]"
        fields = ["soc_pct", "p_setpoint", "connected"]
        """,
        catalog,
    )
    assert found == [
        ("devices.charger-1.fields", "'p_setpoint' is not a field the profile fills "
         "(did you mean 'p_setpoint_w'?)"),
        ("devices.charger-1.ev", "unknown variable 'main.evs[1].soc_pct': the program has no such "
         "bindable variable (did you mean 'main.evs[2].soc_pct', 'main.evs[1].min_soc_pct' or "
         "'main.evs[2].min_soc_pct'?)"),
    ]  # fmt: skip


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(str(tmp_path / "missing.toml"), CATALOG)
    assert "missing.toml: cannot read the file: No such file or directory" in str(caught.value)
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(write(tmp_path, "[devices.m\nhost = 1"), CATALOG)
    assert "site.toml: not valid TOML" in str(caught.value)
    many = problems(tmp_path, "[devices.a]\nport = 1\n[devices.b]\nport = 2\n")
    assert len(many) == 2
    with pytest.raises(SiteConfigError) as caught:
        load_site_config(write(tmp_path, "[devices.a]\nport = 1\n[devices.b]\nport = 2\n"), CATALOG)
    assert "2 problems in the site configuration:\n  devices.a.host: missing (required)" in str(caught.value)


def test_reconnect_starts_at_one_poll_period_capped_at_a_second_and_stuck_detection_is_per_point(
    tmp_path: Path,
) -> None:
    site = load_site_config(
        write(
            tmp_path,
            METER
            + """
            [devices.site-meter.points.hz]
            sunspec = "213.Hz"
            bind = "main.grid_hz"
            poll = "fast"
            stuck_ms = 30000
            [devices.site-meter.points.w]
            sunspec = "213.W"
            bind = "main.site_w"
            """,
        ),
        CATALOG,
    )
    meter = site.devices["site-meter"]
    assert (meter.reconnect_min_ms, meter.reconnect_max_ms) == (10, 1000)
    stuck = {p.name: p.stuck_ms for p in meter.points}
    assert stuck == {"hz": 30000, "w": None}  # off unless asked for
    found = problems(
        tmp_path,
        METER
        + """
        reconnect_min_ms = 2000
        [devices.site-meter.points.out]
        address = 5
        direction = "out"
        stuck_ms = 100
        """,
    )
    assert ("devices.site-meter.reconnect_min_ms", "2000 ms is above reconnect_max_ms (1000 ms)") in found
    assert ("devices.site-meter.points.out.stuck_ms", "only applies to inputs") in found
