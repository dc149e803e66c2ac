"""Sessions over TLS with a PKI the test makes: TLS 1.2 (ISO 15118-2 style: the car checks the SECC's
chain against the V2G root) and TLS 1.3 with mutual authentication as ISO 15118-20 asks (the SECC also
checks the car's OEM chain). A handshake that fails at run time (a car that does not trust the SECC, a
car whose chain the SECC cannot trust or that expired) is the alarm ``iso15118:<evse>:tls-handshake``
with the reason, cleared by the next handshake that succeeds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.io.iso15118.conftest import Rig, running_rig
from tests.io.iso15118.v2g_pki import CONTRACT_ID, make_pki

ROOT_FILE = "iso15118_2/certs/v2gRootCACert.pem"
OEM_ROOT_FILE = "iso15118_2/certs/oemRootCACert.pem"
MO_ROOT_FILE = "iso15118_2/certs/moRootCACert.pem"
HANDSHAKE = "iso15118:cp1:tls-handshake"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("iso15118-tls")
    with running_rig(tmp, 1, leaf_expired=False, tls_slots=(1,), pnc=True) as rig:
        yield rig


def handshake_alarm(rig: Rig, words: str) -> str:
    """Wait for the handshake alarm whose text has ``words``; the car got no session meanwhile."""

    def raised() -> bool:
        return any(a.key == HANDSHAKE and words in a.message for a in rig.alarms.active())

    rig.wait(f"the TLS handshake alarm saying {words!r}", raised, timeout_s=60)
    (text,) = [a.message for a in rig.alarms.active() if a.key == HANDSHAKE]
    assert words in text, text
    assert rig.read("main.evs[1].connected") is False
    return text


def test_a_car_that_does_not_trust_the_secc_is_a_handshake_alarm(tls_rig: Rig) -> None:
    rig = tls_rig
    stranger = make_pki(rig.tmp / "stranger-pki")  # the car trusts another V2G root
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--pki", str(stranger))
    # (the package's EV, on asyncio, closes the connection without sending its TLS alert)
    text = handshake_alarm(rig, "the car left the handshake unfinished")
    assert text.startswith(f"TLS handshake with a car on {rig.net.hosts[0]} failed")
    assert car.loops() == []
    car.end()


def test_a_session_runs_over_tls_with_the_test_pki(tls_rig: Rig) -> None:
    rig = tls_rig
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--pki", str(rig.tmp / "pki"))
    rig.wait(
        "the car in its charge loop over TLS, in the record",
        lambda: len(car.loops()) >= 2 and rig.read("main.evs[1].protocol") == 20,
    )
    assert {e["tls"] for e in car.loops()} == {"TLSv1.2"}  # the car's side of the connection
    # Plug & Charge: the car's contract chain (from the test PKI's mobility operator) was accepted
    assert rig.read("main.evs[1].auth_mode") == 2
    # a handshake that succeeds clears an earlier failure's alarm
    rig.wait(
        "no ISO 15118 alarm", lambda: not any(a.key.startswith("iso15118:") for a in rig.alarms.active())
    )
    car.end()


def test_plug_and_charge_refuses_an_expired_contract_with_an_alarm(tls_rig: Rig) -> None:
    rig = tls_rig
    rig.wait("the previous session to end", lambda: rig.read("main.evs[1].connected") is False)
    lapsed = make_pki(rig.tmp / "lapsed-contract-pki", contract_expired=True)
    shutil.copy(rig.tmp / "pki" / ROOT_FILE, lapsed / ROOT_FILE)  # it trusts the SECC
    # the SECC trusts this car's mobility operator (it reads its PKI at each authorization): only the
    # contract itself is wrong. The last test of this rig: the rig's PKI is changed.
    shutil.copy(lapsed / MO_ROOT_FILE, rig.tmp / "pki" / MO_ROOT_FILE)
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--pki", str(lapsed))
    rig.wait(
        "the authorization alarm",
        lambda: any(a.key == "iso15118:cp1:authorization" for a in rig.alarms.active()),
        timeout_s=60,
    )
    (text,) = [a.message for a in rig.alarms.active() if a.key == "iso15118:cp1:authorization"]
    assert text.startswith(f"Plug & Charge refused on {rig.net.hosts[0]}: contract {CONTRACT_ID}"), text
    assert "expired on" in text
    rig.wait("the refused session to end", lambda: rig.read("main.evs[1].connected") is False)
    assert car.loops() == []  # no energy without authorization
    car.end()


@pytest.fixture(scope="module")
def tls13_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("iso15118-tls13")
    with running_rig(tmp, 1, leaf_expired=False, tls_slots=(1,), tls_1_3=True) as rig:
        yield rig


def test_a_session_runs_over_tls_1_3_with_mutual_authentication(tls13_rig: Rig) -> None:
    rig = tls13_rig
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--tls13", "--pki", str(rig.tmp / "pki"))
    rig.wait(
        "the car in its charge loop over TLS 1.3, in the record",
        lambda: len(car.loops()) >= 2 and rig.read("main.evs[1].protocol") == 20,
    )
    assert {e["tls"] for e in car.loops()} == {"TLSv1.3"}
    car.end()


def test_tls_1_3_refuses_a_car_whose_certificate_it_cannot_trust(tls13_rig: Rig) -> None:
    rig = tls13_rig
    rig.wait("the previous session to end", lambda: rig.read("main.evs[1].connected") is False)
    # a car that trusts our V2G root but whose OEM chain is from another PKI
    foreign = make_pki(rig.tmp / "foreign-pki")
    shutil.copy(rig.tmp / "pki" / ROOT_FILE, foreign / ROOT_FILE)
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--tls13", "--pki", str(foreign))
    # (OpenSSL finds an issuer of the same name in our OEM chain, whose signature does not match)
    text = handshake_alarm(rig, "the car's certificate chain was refused: ")
    assert "signature failure" in text or "unable to get local issuer" in text, text
    assert car.loops() == []
    car.end()


def test_tls_1_3_refuses_a_car_whose_certificate_expired(tls13_rig: Rig) -> None:
    rig = tls13_rig
    expired = make_pki(rig.tmp / "expired-oem-pki", oem_expired=True)
    shutil.copy(rig.tmp / "pki" / ROOT_FILE, expired / ROOT_FILE)
    # the SECC now trusts that car maker's root (it reads its PKI at each connection): only the car's
    # leaf is wrong. The last test of this rig: the rig's PKI is changed.
    shutil.copy(expired / OEM_ROOT_FILE, rig.tmp / "pki" / OEM_ROOT_FILE)
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--tls13", "--pki", str(expired))
    handshake_alarm(rig, "the car's certificate chain was refused: certificate has expired")
    assert car.loops() == []
    car.end()
