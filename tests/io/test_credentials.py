"""Secrets from systemd credentials: ``$CREDENTIALS_DIRECTORY/<name>`` read directly, through
``credential:NAME`` in any path key of a configuration file, and the MQTT buffer key and TLS key
of a real site file read that way."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from plcrun.io.config_errors import ConfigError
from plcrun.io.credentials import (
    CredentialError,
    credential_path,
    find_credential,
    optional_credential_text,
    read_credential,
    read_credential_text,
    resolve_secret_path,
)
from plcrun.io.mqtt import parse_mqtt_config

from tests.io.mqtt.rig import KEY_HEX, write_site_config
from tests.support.certs import make_tls_material


def credentials(tmp_path: Path, **files: bytes) -> Path:
    """A credentials directory as systemd lays it out: each file 0400."""
    directory = tmp_path / "creds"
    directory.mkdir()
    for name, data in files.items():
        path = directory / name.replace("_", "-")
        path.write_bytes(data)
        path.chmod(0o400)
    return directory


@pytest.fixture
def creds_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = credentials(
        tmp_path,
        dashboard_token=b"a-long-dashboard-token-0123456789\n",
        mqtt_buffer_key=KEY_HEX.encode() + b"\n",
        empty=b"\n",
        binary=b"\xff\xfe",
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    return directory


def test_read_by_name(creds_env: Path) -> None:
    assert read_credential("dashboard-token") == b"a-long-dashboard-token-0123456789\n"
    assert read_credential_text("dashboard-token") == "a-long-dashboard-token-0123456789"
    assert credential_path("mqtt-buffer-key") == creds_env / "mqtt-buffer-key"
    assert find_credential("ocpp-password") is None
    assert optional_credential_text("ocpp-password") is None
    assert optional_credential_text("dashboard-token") == "a-long-dashboard-token-0123456789"


def test_problems_are_one_sentence(creds_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        CredentialError, match=r"'ocpp-password' is not in \$CREDENTIALS_DIRECTORY.*LoadCredential"
    ):
        read_credential("ocpp-password")
    with pytest.raises(CredentialError, match="'empty' is empty"):
        read_credential_text("empty")
    with pytest.raises(CredentialError, match="not UTF-8"):
        read_credential_text("binary")
    for bad in ("../etc/passwd", "a/b", "..", ""):
        with pytest.raises(CredentialError, match="not valid"):
            read_credential(bad)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert find_credential("dashboard-token") is None
    with pytest.raises(CredentialError, match=r"\$CREDENTIALS_DIRECTORY is not set"):
        read_credential("dashboard-token")


def test_explicit_environment_mapping(tmp_path: Path) -> None:
    directory = credentials(tmp_path, tls_key=b"PEM")
    env = {"CREDENTIALS_DIRECTORY": str(directory)}
    assert resolve_secret_path("credential:tls-key", env) == str(directory / "tls-key")
    assert resolve_secret_path("/etc/plcrun/key.pem", env) == "/etc/plcrun/key.pem"


def test_site_file_reads_buffer_key_and_tls_key_from_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write_site_config(tmp_path, 1883)
    pki = make_tls_material(tmp_path / "pki")
    directory = credentials(
        tmp_path, mqtt_buffer_key=bytes.fromhex("ef" * 32), gateway_key=Path(pki.client.key).read_bytes()
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    text = site.read_text().replace('key_file = "buffer.key"', 'key_file = "credential:mqtt-buffer-key"')
    text = text.replace('host = "127.0.0.1"', 'host = "broker.example.com"').replace("port = 1883\n", "")
    tls = f'\n[mqtt.tls]\nca_file = "{pki.ca.cert_path}"\ncert_file = "{pki.client.cert}"\n'
    tls += 'key_file = "credential:gateway-key"\n'
    text = text.replace("stop_timeout_s = 2.0", "stop_timeout_s = 2.0" + tls, 1)
    config = parse_mqtt_config(tomllib.loads(text)["mqtt"], str(site))
    assert config.buffer.key == bytes.fromhex("ef" * 32)
    assert config.tls is not None and config.tls.key_file == directory / "gateway-key"

    missing = text.replace("credential:gateway-key", "credential:no-such-key")
    with pytest.raises(ConfigError) as caught:
        parse_mqtt_config(tomllib.loads(missing)["mqtt"], str(site))
    assert caught.value.key == "mqtt.tls.key_file" and "'no-such-key' is not in" in caught.value.problem


def test_buffer_key_defaults_to_the_mqtt_buffer_key_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = write_site_config(tmp_path, 1883)
    text = site.read_text().replace('key_file = "buffer.key"\n', "")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as caught:
        parse_mqtt_config(tomllib.loads(text)["mqtt"], str(site))
    assert "mqtt-buffer-key" in caught.value.problem
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials(tmp_path, mqtt_buffer_key=b"12" * 32)))
    assert parse_mqtt_config(tomllib.loads(text)["mqtt"], str(site)).buffer.key == bytes.fromhex("12" * 32)


def test_credential_files_as_systemd_makes_them_pass_the_private_key_check(tmp_path: Path) -> None:
    directory = credentials(tmp_path, k=b"x")
    assert os.stat(directory / "k").st_mode & 0o077 == 0
