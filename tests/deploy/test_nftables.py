"""The firewall template deploy/nftables/plcrun.nft: ``nft -c -f`` accepts it (as shipped and with
other interface names), refuses a broken copy, and it holds only documentation, loopback and
link-local addresses. As root it is also loaded into a gateway namespace that the test creates,
with a management host and a vehicle behind veth pairs: the dashboard takes 8 connections per
management host and resets the 9th; other sources, closed ports and the vehicle side get nothing,
while the vehicle reaches the SECC's TLS port over IPv6 link-local."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nftables" / "plcrun.nft"
PEER = Path(__file__).parent / "fw_peer.py"
NFT = shutil.which("nft")
IP = shutil.which("ip")
DOCUMENTATION = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


def nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if NFT is None:
        pytest.skip("nft is not installed (.ci/run installs nftables)")
    path = tmp_path / "candidate.nft"
    path.write_text(text)
    result = subprocess.run([NFT, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    if "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN (netlink) on this machine")
    return result


def with_parameters(**values: str) -> str:
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^define {name} = .*$", f"define {name} = {value}", text, flags=re.M)
        assert count == 1, name
    return text


def test_template_checks(tmp_path: Path) -> None:
    result = nft_check(TEMPLATE.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    other = with_parameters(
        VEHICLE_IF='"eth2"', BACKHAUL_IF='"wwan0"', SITE_IF='"eth1"', OCPP_TLS_PORT="8443"
    )
    assert nft_check(other, tmp_path).returncode == 0
    broken = TEMPLATE.read_text().replace("policy drop;", "policy dorp;", 1)
    result = nft_check(broken, tmp_path)
    assert result.returncode != 0 and "dorp" in result.stderr


def test_only_the_configured_ports_and_example_addresses() -> None:
    text = TEMPLATE.read_text()
    defines = dict(re.findall(r"^define (\w+) = (.*)$", text, flags=re.M))
    assert defines["MQTT_TLS_PORT"] == "8883" and defines["METER_PORT"] == "502"
    assert {"VEHICLE_IF", "BACKHAUL_IF", "SITE_IF", "MGMT_NET4", "MGMT_NET6", "SECC_TLS_PORT"} <= set(defines)
    assert "udp dport 15118" in text and "ct count over 8" in text and "ct count over 4" in text
    assert re.findall(r"policy (\w+);", text) == ["drop", "drop", "drop"]
    for literal in re.findall(
        r"(?<![\w:.])(\d+\.\d+\.\d+\.\d+(?:/\d+)?|[0-9a-f]{1,4}:[0-9a-f:]*:[0-9a-f:/]*)", text
    ):
        network = ipaddress.ip_network(literal, strict=False)
        allowed = network.is_loopback or network.is_link_local or network.is_multicast
        allowed = allowed or any(network.subnet_of(d) for d in DOCUMENTATION if d.version == network.version)  # type: ignore[arg-type]
        assert allowed, f"{literal} is neither a documentation, loopback nor link-local address"


# ---- the template in the kernel, between namespaces the test creates --------------------------------


def ip(*args: str) -> None:
    assert IP is not None
    subprocess.run([IP, *args], check=True, capture_output=True, text=True)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Three namespaces: the gateway (template loaded), a management host on wan0 (198.51.100.2, and
    203.0.113.7 outside the management network) and a vehicle on veh0 (IPv6 link-local)."""
    if os.geteuid() != 0 or IP is None or NFT is None:
        pytest.skip("needs root, ip and nft to create network namespaces")
    tag = uuid.uuid4().hex[:6]
    names = {"gw": f"plcfw-gw-{tag}", "mgmt": f"plcfw-mg-{tag}", "car": f"plcfw-ev-{tag}"}
    created: list[str] = []
    try:
        for name in names.values():
            ip("netns", "add", name)
            created.append(name)
        for end, peer, gw_name in (("m", "mgmt", "wan0"), ("v", "car", "veh0")):
            ip("link", "add", f"{end}g{tag}", "type", "veth", "peer", "name", f"{end}p{tag}")
            ip("link", "set", f"{end}g{tag}", "netns", names["gw"])
            ip("link", "set", f"{end}p{tag}", "netns", names[peer])
            ip("-n", names["gw"], "link", "set", f"{end}g{tag}", "name", gw_name)
        gw, mg, car = names["gw"], names["mgmt"], names["car"]
        ip("-n", gw, "addr", "add", "198.51.100.1/24", "dev", "wan0")
        ip("-n", gw, "addr", "add", "fe80::1/64", "dev", "veh0", "nodad")
        ip("-n", mg, "addr", "add", "198.51.100.2/24", "dev", f"mp{tag}")
        ip("-n", mg, "addr", "add", "203.0.113.7/32", "dev", f"mp{tag}")
        ip("-n", car, "addr", "add", "fe80::2/64", "dev", f"vp{tag}", "nodad")
        for ns, link in ((gw, "wan0"), (gw, "veh0"), (gw, "lo"), (mg, f"mp{tag}"), (car, f"vp{tag}")):
            ip("-n", ns, "link", "set", link, "up")
        ip("-n", gw, "route", "add", "203.0.113.7/32", "dev", "wan0")
        subprocess.run(
            ["ip", "netns", "exec", gw, NFT, "-f", str(TEMPLATE)], check=True, capture_output=True, text=True
        )
        server = subprocess.Popen(
            ["ip", "netns", "exec", gw, sys.executable, str(PEER), "serve", "8080", "64109"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        try:
            yield {**names, "car_link": f"vp{tag}"}
        finally:
            server.kill()
            server.wait(10)
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def connect(namespace: str, host: str, port: int, count: int, source: str) -> list[str]:
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            str(PEER),
            "connect",
            host,
            str(port),
            str(count),
            source,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome: list[str] = json.loads(result.stdout)
    return outcome


def test_the_template_in_the_kernel(gateway: dict[str, str]) -> None:
    mgmt, car = gateway["mgmt"], gateway["car"]
    # dashboard: 8 connections per management host, the 9th and 10th reset
    assert connect(mgmt, "198.51.100.1", 8080, 10, "198.51.100.2") == ["connected"] * 8 + ["refused"] * 2
    # a host outside the management network and a port plcrun does not use: dropped
    assert connect(mgmt, "198.51.100.1", 8080, 1, "203.0.113.7") == ["timeout"]
    assert connect(mgmt, "198.51.100.1", 64109, 1, "198.51.100.2") == ["timeout"]
    # the vehicle reaches the SECC's TLS port over link-local, and not the dashboard
    link = gateway["car_link"]
    assert connect(car, f"fe80::1%{link}", 64109, 1, f"fe80::2%{link}") == ["connected"]
    assert connect(car, f"fe80::1%{link}", 8080, 1, f"fe80::2%{link}") == ["timeout"]
