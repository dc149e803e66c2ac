"""A TCP peer for the firewall test, run inside the test's network namespaces.

``serve PORT...``: accept on every port (IPv4 and IPv6) and hold the connections; prints ``ready``.
``connect HOST PORT COUNT SOURCE``: open COUNT connections from SOURCE (an address, or
``address%interface`` for IPv6 link-local), hold them, print one JSON list of
connected/refused/timeout.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys


def serve(ports: list[int]) -> None:
    selector = selectors.DefaultSelector()
    for port in ports:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("::", port))
        server.listen(64)
        selector.register(server, selectors.EVENT_READ)
    print("ready", flush=True)
    held = []
    while True:
        for key, _ in selector.select():
            connection, _ = key.fileobj.accept()  # type: ignore[union-attr]
            held.append(connection)


def connect(host: str, port: int, count: int, source: str) -> None:
    results, held = [], []
    for _ in range(count):
        info = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)[0]
        client = socket.socket(info[0], socket.SOCK_STREAM)
        client.settimeout(1.0)  # a dropped SYN never answers; a local answer takes < 1 ms
        client.bind(socket.getaddrinfo(source, 0, info[0], socket.SOCK_STREAM)[0][4])
        try:
            client.connect(info[4])
            results.append("connected")
            held.append(client)
        except ConnectionRefusedError:
            results.append("refused")
        except TimeoutError:
            results.append("timeout")
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        connect(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
