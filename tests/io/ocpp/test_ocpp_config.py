"""The [ocpp] table: every problem reported at once, with file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.io.ocpp import OcppConfigError, parse_ocpp_config
from rig import base_table, catalog, make_config

from tests.support.certs import CertAuthority


def problems(tmp_path: Path, **overrides: object) -> dict[str, str]:
    url = str(overrides.pop("url", "ws://127.0.0.1:9000/ocpp"))
    table = base_table(tmp_path, url, **overrides)
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(OcppConfigError) as caught:
        parse_ocpp_config(table, "site.toml", catalog())
    assert caught.value.file == "site.toml"
    return {p.key: p.problem for p in caught.value.problems}


def test_a_valid_table_binds_the_sessions_and_the_station_variables(tmp_path: Path) -> None:
    config = make_config(tmp_path, "ws://127.0.0.1:9000/ocpp")
    assert config.endpoint() == "ws://127.0.0.1:9000/ocpp/CS-0001"
    assert config.versions == ("2.1", "2.0.1")
    assert config.session_paths[2]["connected"] == "main.evs[2].connected"
    assert config.limit_paths[1] == {
        "p_limit_charge_w": "main.evs[1].p_limit_charge_w",
        "p_limit_discharge_w": "main.evs[1].p_limit_discharge_w",
    }
    assert config.station_paths["operation_mode"] == "main.ocpp_mode"
    assert config.curve_slots == 20
    assert "main.v2x_curve_hz[20]" in config.input_paths()
    assert "main.evs[3].connected" not in config.output_paths()  # only the configured EVSEs


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        url="ws://csms.invalid:9000/ocpp",
        versions=["1.6"],
        evses=9,
        heartbeat_interval_s=0,
        heartbeat_intervall_s=5,
        station_id="bad id with spaces",
    )
    assert "plain ws:// to csms.invalid is not allowed" in found["ocpp.url"]
    assert "'1.6' is not supported" in found["ocpp.versions"]
    assert "main.evs[5].connected" in found["ocpp.evses"]
    assert "ocpp.heartbeat_interval_s" in found
    assert "heartbeat_interval_s" in found["ocpp.heartbeat_intervall_s"]
    assert "ocpp.station_id" in found


def test_tls_profiles_need_their_files_and_wss(tmp_path: Path) -> None:
    found = problems(tmp_path, security_profile=3, password_file=None)
    assert "security profile 3 needs [ocpp.tls]" in found["ocpp.tls"]
    assert "needs a wss:// URL" in found["ocpp.url"]
    found = problems(
        tmp_path, security_profile=2, url="wss://127.0.0.1:9443/ocpp", tls={"ca_file": "nope.pem"}
    )
    assert "does not exist" in found["ocpp.tls.ca_file"]


def test_profile_three_reads_the_shared_tls_table(tmp_path: Path) -> None:
    ca = CertAuthority.create(tmp_path / "ca")
    client = ca.issue_client(tmp_path / "client", common_name="CS-0001")
    config = make_config(
        tmp_path,
        "wss://127.0.0.1:9443/ocpp",
        security_profile=3,
        password_file=None,
        tls={"ca_file": str(ca.cert_path), "cert_file": str(client.cert), "key_file": str(client.key)},
    )
    assert config.tls is not None and config.tls.cert_file == client.cert
    assert config.password is None


def test_a_short_password_and_a_missing_store_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tiny")
    short.chmod(0o600)
    found = problems(tmp_path, password_file=str(short), store=None)
    assert "16 to 40 characters" in found["ocpp.password_file"]
    assert "is required" in found["ocpp.store"]


def test_a_variable_named_explicitly_must_exist(tmp_path: Path) -> None:
    found = problems(tmp_path, variables={"operation_mode": "main.ocpp_mod"})
    assert "unknown variable 'main.ocpp_mod'" in found["ocpp.variables.operation_mode"]
