"""Sessions over TLS with a PKI the test makes: TLS 1.2 (ISO 15118-2 style: the car checks the SECC's
chain against the V2G root) and TLS 1.3 with mutual authentication as ISO 15118-20 asks (the SECC also
checks the car's OEM chain)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from tests.io.iso15118.conftest import Rig, running_rig
from tests.io.iso15118.v2g_pki import make_pki

ROOT_FILE = "iso15118_2/certs/v2gRootCACert.pem"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with running_rig(tmp_path_factory.mktemp("iso15118-tls"), 1, leaf_expired=False, tls_slots=(1,)) as rig:
        yield rig


def test_a_session_runs_over_tls_with_the_test_pki(tls_rig: Rig) -> None:
    rig = tls_rig
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--pki", str(rig.tmp / "pki"))
    rig.wait(
        "the car in its charge loop over TLS, in the record",
        lambda: len(car.loops()) >= 2 and rig.read("main.evs[1].protocol") == 20,
    )
    assert {e["tls"] for e in car.loops()} == {"TLSv1.2"}  # the car's side of the connection
    assert not any(a.key.startswith("iso15118:") for a in rig.alarms.active())
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
    deadline = time.monotonic() + 15.0  # its SDP answers come, its TLS handshakes fail
    while time.monotonic() < deadline:
        assert rig.read("main.evs[1].connected") is False
        assert car.loops() == []
        time.sleep(0.1)
    car.end()
