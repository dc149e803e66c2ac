"""Security profiles against a CSMS on 127.0.0.1: mutual TLS (a client certificate from the wrong CA is
refused and reported), basic auth over TLS (a wrong password is refused with 401), and a link that
survives malformed, oversized and unsupported requests."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

from conftest import SiteFactory
from ocpp.v21 import call
from rig import write_secret

from tests.support.certs import CertAuthority, make_tls_material
from tests.support.csms import Csms


def server_context(material_dir: Path, client_ca: Path | None) -> tuple[ssl.SSLContext, Path]:
    material = make_tls_material(material_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(material.server.cert), str(material.server.key))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    return context, material.ca.cert_path


def wait(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_mutual_tls_boots_and_a_wrong_ca_is_refused(tmp_path: Path, start_site: SiteFactory) -> None:
    station_ca = CertAuthority.create(tmp_path / "station-ca")
    station = station_ca.issue_client(tmp_path / "station", common_name="CS-0001")
    rogue_ca = CertAuthority.create(tmp_path / "rogue-ca", common_name="someone else")
    rogue = rogue_ca.issue_client(tmp_path / "rogue", common_name="CS-0001")
    context, csms_ca = server_context(tmp_path / "csms", client_ca=station_ca.cert_path)
    with Csms(versions=("2.1",), ssl_context=context) as csms:
        tls = {"ca_file": str(csms_ca), "cert_file": str(rogue.cert), "key_file": str(rogue.key)}
        refused = start_site(
            csms.url.replace("127.0.0.1", "localhost"), security_profile=3, password_file=None, tls=tls
        )
        wait(lambda: refused.driver.status().counters.get("connect_failures", 0) >= 2)
        active = {a.key: a.message for a in refused.alarms.active()}
        assert "TLS" in active["ocpp:link"]
        assert csms.connections == 0 and csms.of("BootNotification") == []
        refused.close()

        tls = {"ca_file": str(csms_ca), "cert_file": str(station.cert), "key_file": str(station.key)}
        good = start_site(
            csms.url.replace("127.0.0.1", "localhost"), security_profile=3, password_file=None, tls=tls
        )
        csms.wait_for("BootNotification")
        wait(lambda: good.driver.status().connected)
        assert "ocpp:link" not in {a.key for a in good.alarms.active()}


def test_basic_auth_over_tls_and_a_wrong_password(tmp_path: Path, start_site: SiteFactory) -> None:
    context, csms_ca = server_context(tmp_path / "csms", client_ca=None)
    with Csms(versions=("2.0.1",), ssl_context=context, password="correct-horse-battery") as csms:
        url = csms.url.replace("127.0.0.1", "localhost")
        wrong = write_secret(tmp_path / "wrong", "not-the-right-password")
        refused = start_site(url, security_profile=2, password_file=str(wrong), tls={"ca_file": str(csms_ca)})
        wait(lambda: refused.driver.status().counters.get("connect_failures", 0) >= 1)
        assert "HTTP 401" in refused.driver.status().detail
        refused.close()
        start_site(url, security_profile=2, tls={"ca_file": str(csms_ca)})  # the right password
        csms.wait_for("BootNotification")


def test_malformed_oversized_and_unsupported_requests_keep_the_link(
    csms21: Csms, start_site: SiteFactory
) -> None:
    site = start_site(csms21.url, max_message_bytes=8192)
    csms21.wait_for("StatusNotification", count=2)
    for garbage in ("not json", "[2]", '{"a": 1}', '[2, "x1", 5, {}]', "[9, 1, 2]", "\x00\xff" * 10):
        csms21.send_raw(garbage)
    csms21.send_raw('[2, "big-1", "GetVariables", {"getVariableData": [' + '{"x": 1},' * 2000 + "{}]}]")
    # a request the station does not implement gets a CallError, not silence (2.1 pitfall)
    try:
        csms21.request(call.UnlockConnector(evse_id=1, connector_id=1), timeout=5)
        raise AssertionError("UnlockConnector should be answered with a CallError")
    except Exception as error:  # the package raises the CallError as an exception
        assert "NotImplemented" in type(error).__name__ or "NotImplemented" in str(error)
    # a schema-invalid request gets a CallError too (oversized, unsupported and invalid: three)
    csms21.send_raw('[2, "inv-1", "GetVariables", {"getVariableData": [{"component": {}}]}]')
    wait(lambda: site.driver.status().counters.get("errors_sent", 0) >= 3)
    answer = csms21.request(
        call.GetVariables(
            get_variable_data=[
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}},
                {
                    "component": {"name": "V2XChargingCtrlr"},
                    "variable": {"name": "LocalFrequencyUpdateThreshold"},
                },
            ]
        )
    )
    statuses = [r["attribute_status"] for r in answer.get_variable_result]
    assert statuses == ["Accepted", "UnknownComponent", "Accepted"]
    assert answer.get_variable_result[0]["attribute_value"] == "300"
    assert csms21.connections == 1  # the same connection throughout
    assert site.driver.status().counters["bad_messages"] >= 6
    reset = csms21.request(call.Reset(type="Immediate"))
    assert reset.status == "Accepted"
    boots = csms21.wait_for("BootNotification", count=2)
    assert boots[1]["reason"] == "RemoteReset"
