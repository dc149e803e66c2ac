"""The OCPP basic-auth password from systemd credentials: ``password_file = "credential:NAME"``, or
the credential ``ocpp-password`` when the table names no password at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from plcrun.io.ocpp import OcppConfigError
from rig import PASSWORD, make_config, write_secret


def test_password_from_a_named_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    write_secret(creds / "csms-basic-auth", "a-credential-password-0042\n").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = make_config(tmp_path, "ws://127.0.0.1:9000/ocpp", password_file="credential:csms-basic-auth")
    assert config.password == "a-credential-password-0042"
    with pytest.raises(OcppConfigError) as caught:
        make_config(tmp_path, "ws://127.0.0.1:9000/ocpp", password_file="credential:missing")
    (problem,) = caught.value.problems
    assert (
        problem.key == "ocpp.password_file"
        and "'missing' is not in $CREDENTIALS_DIRECTORY" in problem.problem
    )


def test_the_ocpp_password_credential_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(OcppConfigError) as caught:
        make_config(tmp_path, "ws://127.0.0.1:9000/ocpp", password_file=None)
    assert "the systemd credential ocpp-password" in caught.value.problems[0].problem
    creds = tmp_path / "creds"
    write_secret(creds / "ocpp-password", PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert make_config(tmp_path, "ws://127.0.0.1:9000/ocpp", password_file=None).password == PASSWORD
    write_secret(creds / "ocpp-password", "short")
    with pytest.raises(OcppConfigError) as caught:
        make_config(tmp_path, "ws://127.0.0.1:9000/ocpp", password_file=None)
    assert "16 to 40 characters" in caught.value.problems[0].problem
