"""The EVerest driver over mutual TLS to a Mosquitto TLS listener (certificates made by the test)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from plcrun.executor.alarms import AlarmBus
from plcrun.executor.clock import VirtualClock
from plcrun.io.everest import EverestSessionDriver, parse_everest_config

from tests.io.everest.everest_rig import EVSE_API, Inputs, catalog, everest_table, session_info
from tests.support.certs import make_tls_material
from tests.support.mosquitto import Mosquitto, MqttProbe, TlsListener


def test_sessions_arrive_over_mutual_tls(tmp_path: Path) -> None:
    pki = make_tls_material(tmp_path / "pki")
    listener = TlsListener(pki.ca.cert_path, pki.server.cert, pki.server.key)
    with Mosquitto(tmp_path / "broker", plain=False, tls=listener) as broker:
        tls = {
            "ca_file": str(pki.ca.cert_path),
            "cert_file": str(pki.client.cert),
            "key_file": str(pki.client.key),
        }
        table = everest_table(broker.tls_port, host="localhost", tls=tls)
        config = parse_everest_config(table, str(tmp_path / "site.toml"), catalog())
        assert config.tls is not None
        driver = EverestSessionDriver(config, AlarmBus())
        clock = VirtualClock()
        driver.start(clock)
        context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
        context.load_cert_chain(str(pki.client.cert), str(pki.client.key))
        everest: MqttProbe | None = None
        try:
            inputs = Inputs(driver, clock)
            inputs.wait(lambda: driver.status().connected, "the driver connects over TLS")
            everest = MqttProbe(broker.tls_port, ["everest_api/1/+/+/m2e/#"], tls=context)
            everest.publish(
                f"{EVSE_API}/evse_1/e2m/session_info", json.dumps(session_info("Charging", 4200.0))
            )
            inputs.wait_value("main.evs[1].p_present_w", 4200.0)
            assert inputs.value("main.evs[1].connected") is True
        finally:
            if everest is not None:
                everest.close()
            driver.stop()


def test_a_remote_broker_needs_tls(tmp_path: Path) -> None:
    pki = make_tls_material(tmp_path / "pki")
    tls = {
        "ca_file": str(pki.ca.cert_path),
        "cert_file": str(pki.client.cert),
        "key_file": str(pki.client.key),
    }
    config = parse_everest_config(everest_table(8883, host="broker.example", tls=tls), "site.toml", catalog())
    assert config.host == "broker.example" and config.tls is not None  # accepted: it is encrypted
