"""A veth pair per charge point, the car's end inside a network namespace the test creates (root only).

The SECC listens on the host end; the car runs inside the namespace (``ip netns exec``). Both ends only
get their fe80:: link-local addresses: nothing is routed anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field


def why_not() -> str | None:
    """None when this machine can run the namespace tests, else the reason to skip."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace and a veth pair"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    probe = f"plcprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _has_link_local(iface: str, namespace: str | None) -> bool:
    cmd = ["ip", "-6", "addr", "show", "dev", iface, "scope", "link"]
    if namespace:
        cmd = ["ip", "netns", "exec", namespace, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    return "fe80::" in out and "tentative" not in out


@dataclass
class CarNet:
    """``n`` veth pairs: host ends ``hosts[i]``, car ends ``cars[i]`` inside ``namespace``."""

    n: int = 1
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    namespace: str = ""
    hosts: list[str] = field(default_factory=list)
    cars: list[str] = field(default_factory=list)

    def __enter__(self) -> CarNet:
        self.namespace = f"plcev{self.tag}"
        _ip("netns", "add", self.namespace)
        try:
            _ip("netns", "exec", self.namespace, "ip", "link", "set", "lo", "up")
            for i in range(self.n):
                host, car = f"sc{self.tag}{i}", f"ev{self.tag}{i}"
                _ip("link", "add", host, "type", "veth", "peer", "name", car)
                self.hosts.append(host)
                self.cars.append(car)
                _ip("link", "set", car, "netns", self.namespace)
                _ip("link", "set", host, "up")
                _ip("netns", "exec", self.namespace, "ip", "link", "set", car, "up")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # duplicate address detection takes a few seconds
                if all(_has_link_local(h, None) for h in self.hosts) and all(
                    _has_link_local(c, self.namespace) for c in self.cars
                ):
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError("the veth ends got no usable fe80:: address within 20 s")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "link", "del", host], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)

    def car_command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]
