"""``parse_mqtt_config``: a full site configuration parses into the expected values; every bad entry
is refused with ``ConfigError`` naming the file, the dotted key and the problem."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.mqtt import CurveCommand, ValueCommand, parse_mqtt_config

from tests.io.mqtt.rig import KEY_HEX, write_key, write_site_config
from tests.support.certs import make_tls_material


def parse(path: Path, text: str | None = None) -> object:
    if text is not None:
        path.write_text(text)
    table = tomllib.loads(path.read_text())
    return parse_mqtt_config(table["mqtt"], str(path))


def refused(path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(path, text)
    error = caught.value
    assert error.file == str(path) and str(path) in str(error)
    return error


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site_config(tmp_path, 1883)


def test_full_configuration_parses(site: Path) -> None:
    config = parse(site)
    assert config.host == "127.0.0.1" and config.port == 1883 and config.qos == 1  # type: ignore[attr-defined]
    variables = {v.name: v for v in config.report.variables}  # type: ignore[attr-defined]
    assert variables["frequency_hz"].paths == ("main.grid_hz",)
    assert variables["site_power_w"].stats == ("min", "max", "mean", "last", "energy")
    assert variables["sessions"].paths == tuple(f"main.evs[{i}].connected" for i in range(1, 5))
    assert variables["sessions"].reduce == "count_nonzero"
    assert config.buffer.directory == site.parent / "buffer"  # type: ignore[attr-defined]
    assert config.buffer.key == bytes.fromhex(KEY_HEX)  # type: ignore[attr-defined]
    assert KEY_HEX not in repr(config)  # the key is never printed
    curve, enable = config.commands  # type: ignore[attr-defined]
    assert isinstance(curve, CurveCommand) and isinstance(enable, ValueCommand)
    assert (
        curve.frequency_paths()[0] == "main.curve_f[1]" and curve.frequency_paths()[-1] == "main.curve_f[20]"
    )
    assert curve.stale_s is None and enable.stale_s is None  # no freshness limit unless given
    assert config.input_paths() == frozenset(curve.input_paths()) | {"main.enable"}  # type: ignore[attr-defined]
    assert "main.site_w" in config.output_paths()  # type: ignore[attr-defined]
    topics = config.topics.resolve("gw-9")  # type: ignore[attr-defined]
    assert topics.report == "plcrun/gw-9/report" and topics.command_topic("fw") == "plcrun/gw-9/command/fw"


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ("keepalive_s = 5", "keepalive_s = 5\nkeepalive = 5", "mqtt.keepalive", "unknown key"),
        ("period_s = 1.0", "perod_s = 1.0", "mqtt.report.perod_s", "unknown key"),
        ("port = 1883", 'port = "1883"', "mqtt.port", "must be an integer, not a string"),
        ("port = 1883", "port = 70000", "mqtt.port", "between 1 and 65535"),
        ("keepalive_s = 5", "keepalive_s = true", "mqtt.keepalive_s", "must be an integer, not a boolean"),
        ("period_s = 1.0", "period_s = 0.0", "mqtt.report.period_s", "between"),
        ('host = "127.0.0.1"', 'host = "broker.example.com"', "mqtt.host", "add [mqtt.tls]"),
        (
            'stats = ["min", "max", "mean", "last"]',
            'stats = ["median"]',
            "mqtt.report.variables[0].stats",
            "unknown statistic 'median'",
        ),
        (
            'path = "main.grid_hz"',
            'path = "main grid"',
            "mqtt.report.variables[0].path",
            "not a process-image path",
        ),
        (
            'path = "main.evs[1..4].connected"',
            'path = "main.evs[4..1].connected"',
            "mqtt.report.variables[2].path",
            "range must go upwards",
        ),
        ('name = "sessions"', 'name = "frequency_hz"', "mqtt.report.variables[2].name", "reported twice"),
        (
            'reduce = "count_nonzero"',
            'reduce = "median"',
            "mqtt.report.variables[2].reduce",
            "must be one of",
        ),
        ('fsync = "always"', 'fsync = "sometimes"', "mqtt.buffer.fsync", "must be one of"),
        ('kind = "bool"', 'kind = "string"', "mqtt.commands.enable.kind", "must be one of"),
        ('path = "main.enable"', 'path = "main.curve_n"', "mqtt.commands.enable", "already bound by fw"),
        (
            "power_limit_w = 20000.0",
            'power_limit_w = "lots"',
            "mqtt.commands.fw.power_limit_w",
            "must be a number",
        ),
        (
            'path = "main.enable"',
            'path = "main.enable"\nstale_s = 0',
            "mqtt.commands.enable.stale_s",
            "between",
        ),
    ],
)
def test_bad_entries_name_file_key_and_problem(
    site: Path, old: str, new: str, key: str, problem: str
) -> None:
    text = site.read_text()
    assert old in text
    error = refused(site, text.replace(old, new, 1))
    assert error.key == key and problem in error.problem, str(error)


def test_topic_with_wildcard_or_unknown_placeholder_is_refused(site: Path) -> None:
    text = site.read_text()
    error = refused(site, text + '\n[mqtt.topics]\nreport = "plcrun/+/report"\n')
    assert error.key == "mqtt.topics.report" and "wildcards" in error.problem
    error = refused(site, text + '\n[mqtt.topics]\nalarm = "plcrun/{site}/alarm"\n')
    assert error.key == "mqtt.topics.alarm" and "placeholder" in error.problem
    error = refused(site, text + '\n[mqtt.topics]\ncommand = "plcrun/{gateway_id}/command"\n')
    assert error.key == "mqtt.topics.command" and "{name}" in error.problem


def test_buffer_key_file_must_be_private_and_well_formed(site: Path) -> None:
    key = site.parent / "buffer.key"
    os.chmod(key, 0o644)
    error = refused(site, site.read_text())
    assert error.key == "mqtt.buffer.key_file" and "mode 0644" in error.problem and "0600" in error.problem
    write_key(key, "not hex at all")
    error = refused(site, site.read_text())
    assert error.key == "mqtt.buffer.key_file" and "64 hex characters" in error.problem
    key.unlink()
    error = refused(site, site.read_text())
    assert error.key == "mqtt.buffer.key_file" and "does not exist" in error.problem


def test_buffer_key_from_environment(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = site.read_text().replace('key_file = "buffer.key"', 'key_env = "PLCRUN_TEST_BUFFER_KEY"')
    monkeypatch.delenv("PLCRUN_TEST_BUFFER_KEY", raising=False)
    error = refused(site, text)
    assert error.key == "mqtt.buffer.key_env" and "is not set" in error.problem
    monkeypatch.setenv("PLCRUN_TEST_BUFFER_KEY", "ab" * 31)
    assert "64 hex characters" in refused(site, text).problem
    monkeypatch.setenv("PLCRUN_TEST_BUFFER_KEY", "cd" * 32)
    assert parse(site, text).buffer.key == bytes.fromhex("cd" * 32)  # type: ignore[attr-defined]
    both = text.replace('key_env = "PLCRUN_TEST_BUFFER_KEY"', 'key_env = "X"\nkey_file = "buffer.key"')
    assert "exactly one" in refused(site, both).problem


def test_tls_files_are_checked(site: Path, tmp_path: Path) -> None:
    pki = make_tls_material(tmp_path / "pki")
    text = site.read_text().replace('host = "127.0.0.1"', 'host = "broker.example.com"')
    text = text.replace("port = 1883\n", "")  # with TLS the port defaults to 8883

    def with_tls(ca: object, cert: object, key: object) -> str:
        section = f'\n[mqtt.tls]\nca_file = "{ca}"\ncert_file = "{cert}"\nkey_file = "{key}"\n'
        return text.replace("stop_timeout_s = 2.0", "stop_timeout_s = 2.0" + section, 1)

    good = parse(site, with_tls(pki.ca.cert_path, pki.client.cert, pki.client.key))
    assert good.port == 8883 and good.tls.min_version == "1.2"  # type: ignore[attr-defined]
    error = refused(site, with_tls(tmp_path / "missing-ca.pem", pki.client.cert, pki.client.key))
    assert error.key == "mqtt.tls.ca_file" and "does not exist" in error.problem
    os.chmod(pki.client.key, 0o640)
    error = refused(site, with_tls(pki.ca.cert_path, pki.client.cert, pki.client.key))
    assert error.key == "mqtt.tls.key_file" and "mode 0640" in error.problem
    os.chmod(pki.client.key, 0o600)
    error = refused(site, with_tls(pki.client.key, pki.client.cert, pki.client.key))
    assert error.key == "mqtt.tls.ca_file" and "no usable PEM CA certificate" in error.problem
    error = refused(site, with_tls(pki.ca.cert_path, pki.client.cert, pki.server.key))
    assert error.key == "mqtt.tls.cert_file" and "not a matching" in error.problem
    error = refused(
        site,
        with_tls(pki.ca.cert_path, pki.client.cert, pki.client.key).replace(
            "[mqtt.tls]", "[mqtt.tls]\nmin_version = '1.1'"
        ),
    )
    assert error.key == "mqtt.tls.min_version"


def test_missing_buffer_table_is_refused(site: Path) -> None:
    text = site.read_text()
    start = text.index("[mqtt.buffer]")
    end = text.index("[mqtt.commands.fw]")
    error = refused(site, text[:start] + text[end:])
    assert error.key == "mqtt.buffer" and "required" in error.problem
