"""A session over TLS (ISO 15118-2 style: TLS 1.2, the SECC authenticated by its V2G chain) with a PKI
the test makes; the car checks the SECC's chain against the V2G root."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.io.iso15118.conftest import Rig, running_rig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with running_rig(tmp_path_factory.mktemp("iso15118-tls"), 1, leaf_expired=False, tls_slots=(1,)) as rig:
        yield rig


def test_a_session_runs_over_tls_with_the_test_pki(tls_rig: Rig) -> None:
    rig = tls_rig
    car = rig.plug(1, "--mode", "dc_bpt", "--tls", "--pki", str(rig.tmp / "pki"))
    rig.wait("the car in its charge loop over TLS", lambda: len(car.loops()) >= 2)
    assert {e["tls"] for e in car.loops()} == {"TLSv1.2"}  # the car's side of the connection
    assert rig.read("main.evs[1].connected") is True
    assert rig.read("main.evs[1].protocol") == 20
    assert not any(a.key.startswith("iso15118:") for a in rig.alarms.active())
    car.end()
