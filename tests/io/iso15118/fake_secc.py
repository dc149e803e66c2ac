"""A misbehaving SECC process for the driver's tests (plain Python, no iso15118): speaks the line
protocol on ``--fd``, then sends garbage, an over-long line and a bad report, a good report, and
ends with exit code 3 after ``FAKE_SECC_LIFE_S`` seconds (or at ``quit``)."""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    evse = config["evses"][0]["id"]
    sock = socket.socket(fileno=args.fd)

    def send(doc: object) -> None:
        sock.sendall(json.dumps(doc).encode() + b"\n")

    send({"t": "hello", "version": 1, "evses": [evse]})
    send({"t": "state", "evse": evse, "up": True, "detail": "fake SECC listening"})
    sock.sendall(b"this is not json\n" + b"{" * 20000 + b"\n")
    send({"t": "ev", "evse": evse, "fields": {"soc_pct": 250.0}})
    send(
        {
            "t": "ev",
            "evse": evse,
            "fields": {"connected": True, "soc_pct": 42.0, "protocol": 20, "p_present_w": -3000.0},
        }
    )
    deadline = time.monotonic() + float(os.environ.get("FAKE_SECC_LIFE_S", "1.0"))
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if ready:
            data = sock.recv(65536)
            if not data or b'"quit"' in data:
                return
            with open(config["pki_path"], "ab") as log:  # the test reads what plcrun sent
                log.write(data)
    sys.exit(3)


if __name__ == "__main__":
    main()
