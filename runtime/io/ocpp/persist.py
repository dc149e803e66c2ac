"""What the OCPP station keeps on disk, all in the store directory and sealed with its AES-256 key:

- the transaction-event queue: the MQTT backhaul's encrypted store-and-forward buffer
  (``plcrun.io.mqtt.store.ForwardBuffer``), one record per TransactionEvent, written before it is
  sent and removed only after the CSMS answered it, so a CSMS outage or a kill -9 loses none; records
  keep their order and carry their ``seqNo`` inside the payload;
- ``station.bin``: open transactions, meter registers, installed charging profiles and the writable
  variables (AES-GCM sealed JSON, replaced atomically).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..mqtt.config import BufferConfig
from ..mqtt.store import ForwardBuffer
from ..mqtt.store_format import KIND_ALARM, CorruptRecord, write_file_atomically

log = logging.getLogger("plcrun.ocpp.store")

STATE_FILE = "station.bin"
_AAD = b"plcrun-ocpp-station-v1"
KIND_TRANSACTION = KIND_ALARM  # the buffer's "keep longest" class: transaction events are never shed first


class StationStore:
    """Queue and state of one station. Not thread-safe: the network thread is its only user."""

    def __init__(self, config: BufferConfig) -> None:
        self.directory = config.directory
        self.durable = config.fsync == "always"
        self._cipher = AESGCM(config.key)
        self.queue = ForwardBuffer(config.directory / "queue", config.key, config.max_bytes, config.fsync)
        self.problems = list(self.queue.problems)

    # ---- queue ----
    def enqueue(self, action: str, payload: dict[str, Any]) -> int:
        seq = self.queue.next_seq()
        body = json.dumps({"action": action, "payload": payload}, separators=(",", ":")).encode()
        self.queue.append(seq, KIND_TRANSACTION, body)
        dropped = self.queue.commit()
        if dropped:
            log.error("OCPP queue over its size bound: %d event(s) dropped", len(dropped))
        return seq

    def pending(self) -> list[int]:
        return self.queue.pending_seqs()

    def read(self, seq: int) -> tuple[str, dict[str, Any]] | None:
        record = self.queue.get(seq)
        if record is None:
            return None
        try:
            data = json.loads(self.queue.read(record))
            return str(data["action"]), dict(data["payload"])
        except (CorruptRecord, ValueError, KeyError, TypeError) as error:
            log.error("OCPP queue record %d unreadable (%s): discarded", seq, error)
            self.queue.discard(record)
            return None

    def delivered(self, seq: int) -> None:
        """The CSMS answered: forget the record, durably (a crash now cannot resend it)."""
        if self.queue.ack(seq):
            self.queue.commit(persist_acks=True)

    # ---- state ----
    def load_state(self) -> dict[str, Any]:
        path = self.directory / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(self._cipher.decrypt(raw[:12], raw[12:], _AAD))
            return data if isinstance(data, dict) else {}
        except (InvalidTag, ValueError) as error:
            self.problems.append(f"{path}: cannot be authenticated ({error or 'bad tag'}); starting afresh")
            os.replace(path, path.with_suffix(".bad"))
            return {}

    def save_state(self, state: dict[str, Any]) -> None:
        nonce = os.urandom(12)
        sealed = nonce + self._cipher.encrypt(nonce, json.dumps(state).encode(), _AAD)
        write_file_atomically(Path(self.directory) / STATE_FILE, sealed, self.durable)

    def close(self) -> None:
        self.queue.close()
