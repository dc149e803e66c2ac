"""Mutual TLS against a real Mosquitto TLS listener with certificates generated for the test: the
right setup connects (TLS 1.3 preferred); a wrong CA, a wrong host name or an expired client
certificate is refused with an error that says so."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from plcrun.io.mqtt import Backhaul

from tests.io.mqtt.rig import GATEWAY, load_config, wait_until, write_site_config
from tests.support.certs import CertAuthority, CertPair, TlsMaterial, make_tls_material
from tests.support.mosquitto import Mosquitto, MqttProbe, TlsListener

REPORT_TOPIC = f"plcrun/{GATEWAY}/report"
S = 1_000_000_000


def tls_section(ca: Path, client: CertPair) -> str:
    return f'\n[mqtt.tls]\nca_file = "{ca}"\ncert_file = "{client.cert}"\nkey_file = "{client.key}"\n'


@pytest.fixture
def pki(tmp_path: Path) -> TlsMaterial:
    return make_tls_material(tmp_path / "pki")


def tls_broker(tmp_path: Path, pki: TlsMaterial, server: CertPair | None = None) -> Mosquitto:
    server = server or pki.server
    return Mosquitto(
        tmp_path / "broker", plain=False, tls=TlsListener(pki.ca.cert_path, server.cert, server.key)
    )


@pytest.fixture
def secure_broker(tmp_path: Path, pki: TlsMaterial) -> Iterator[Mosquitto]:
    with tls_broker(tmp_path, pki) as running:
        yield running


def client_context(pki: TlsMaterial) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    context.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    return context


def wait_for_detail(backhaul: Backhaul, text: str) -> str:
    """The backhaul's status detail once it mentions ``text`` (or whatever it says after 15 s)."""
    wait_until(lambda: text in backhaul.status().detail, 15.0)
    return backhaul.status().detail


def test_mutual_tls_delivers_reports_over_tls13(tmp_path, pki, secure_broker, rig) -> None:
    probe = MqttProbe(secure_broker.tls_port, [f"plcrun/{GATEWAY}/#"], tls=client_context(pki))
    try:
        site = write_site_config(
            tmp_path / "site", secure_broker.tls_port, mqtt_extra=tls_section(pki.ca.cert_path, pki.client)
        )
        backhaul, _bus, clock = rig.start(load_config(site))
        for k in range(101):
            clock.now = k * 10_000_000
            backhaul.write_outputs(clock.now, {"main.grid_hz": 50.0, "main.site_w": 1000.0})
        assert probe.wait_for(lambda: len(probe.snapshot(REPORT_TOPIC)) == 1)
        status = backhaul.status()
        assert status.connected and "TLSv1.3" in status.detail
        assert status.counters["tcp_nodelay"] == 1
    finally:
        probe.close()


def test_wrong_ca_is_refused_with_a_clear_error(tmp_path, pki, secure_broker, rig) -> None:
    stranger = CertAuthority.create(tmp_path / "other-ca", "some other CA")
    site = write_site_config(
        tmp_path / "site", secure_broker.tls_port, mqtt_extra=tls_section(stranger.cert_path, pki.client)
    )
    backhaul, bus, clock = rig.start(load_config(site))
    detail = wait_for_detail(backhaul, "not trusted")
    assert f"not trusted by {stranger.cert_path}" in detail
    assert not backhaul.status().connected
    alarms = {a.key: a for a in bus.active()}
    assert alarms["mqtt:connection"].message == detail
    for k in range(101):  # reports are kept for later, not lost
        clock.now = k * 10_000_000
        backhaul.write_outputs(clock.now, {"main.grid_hz": 50.0, "main.site_w": 0.0})
    assert wait_until(lambda: backhaul.status().counters["pending"] >= 2)


def test_wrong_hostname_is_refused_with_a_clear_error(tmp_path, pki, rig) -> None:
    elsewhere = pki.ca.issue_server(
        tmp_path / "elsewhere", "elsewhere", dns_names=["broker.invalid"], ip_addresses=[]
    )
    with tls_broker(tmp_path, pki, elsewhere) as broker:
        site = write_site_config(
            tmp_path / "site", broker.tls_port, mqtt_extra=tls_section(pki.ca.cert_path, pki.client)
        )
        backhaul, _bus, _clock = rig.start(load_config(site))
        detail = wait_for_detail(backhaul, "not valid for host")
        assert "'127.0.0.1'" in detail and not backhaul.status().connected


def test_expired_client_certificate_is_refused_with_a_clear_error(tmp_path, pki, secure_broker, rig) -> None:
    expired = pki.ca.issue_expired_client(tmp_path / "expired")
    site = write_site_config(
        tmp_path / "site", secure_broker.tls_port, mqtt_extra=tls_section(pki.ca.cert_path, expired)
    )
    backhaul, _bus, _clock = rig.start(load_config(site))
    detail = wait_for_detail(backhaul, "expired")
    assert str(expired.cert) in detail and "refused" in detail
    assert not backhaul.status().connected
    assert "certificate verify failed" in secure_broker.log_text()  # the broker, not only we, refused it
