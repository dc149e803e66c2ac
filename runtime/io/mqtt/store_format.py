"""On-disk format of the encrypted store-and-forward buffer (see docs/mqtt.md, "Buffer format").

A segment file ``seg-<first seq>.log`` starts with ``MAGIC_SEGMENT`` and the 16-byte stream id, then
holds records::

    length u32 | seq u64 | kind u8 | nonce 12 bytes | AES-256-GCM ciphertext with 16-byte tag (length bytes)

The associated data of a record is ``stream id | seq | kind``: a record cannot be altered, moved to
another sequence number or copied into another buffer without failing authentication. Every record
has a fresh random 96-bit nonce. ``state.bin`` holds the buffer's counters, encrypted the same way.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import PlcrunError

MAGIC_SEGMENT = b"PLCRMQS1"
MAGIC_STATE = b"PLCRMQT1"
STREAM_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
SEGMENT_HEADER_BYTES = len(MAGIC_SEGMENT) + STREAM_BYTES
_RECORD_HEADER = struct.Struct(">IQB")
RECORD_OVERHEAD = _RECORD_HEADER.size + NONCE_BYTES
MAX_RECORD_BYTES = 16 * 1024 * 1024

KIND_REPORT = 1
KIND_ALARM = 2
KINDS = (KIND_REPORT, KIND_ALARM)


class CorruptRecord(PlcrunError):
    """A record or file that fails its format or authentication check."""


def record_aad(stream: bytes, seq: int, kind: int) -> bytes:
    return stream + struct.pack(">QB", seq, kind)


def encode_record(cipher: AESGCM, stream: bytes, seq: int, kind: int, payload: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    sealed = cipher.encrypt(nonce, payload, record_aad(stream, seq, kind))
    return _RECORD_HEADER.pack(len(sealed), seq, kind) + nonce + sealed


def decode_record(cipher: AESGCM, stream: bytes, raw: bytes) -> tuple[int, int, bytes]:
    """``(seq, kind, payload)`` of one complete record, or ``CorruptRecord``."""
    if len(raw) < RECORD_OVERHEAD + TAG_BYTES:
        raise CorruptRecord("record shorter than its header")
    length, seq, kind = _RECORD_HEADER.unpack_from(raw)
    if length != len(raw) - RECORD_OVERHEAD:
        raise CorruptRecord(f"record seq {seq}: length field does not match")
    nonce = raw[_RECORD_HEADER.size : RECORD_OVERHEAD]
    try:
        payload = cipher.decrypt(nonce, raw[RECORD_OVERHEAD:], record_aad(stream, seq, kind))
    except InvalidTag:
        raise CorruptRecord(f"record seq {seq} fails authentication (altered, moved or wrong key)") from None
    return seq, kind, payload


@dataclass(frozen=True)
class ScannedRecord:
    seq: int
    kind: int
    offset: int
    size: int


@dataclass(frozen=True)
class DamagedRange:
    """Bytes of a segment that do not form a usable record (moved to quarantine by the caller)."""

    offset: int
    size: int
    reason: str


@dataclass
class ScannedSegment:
    records: list[ScannedRecord]
    complete_bytes: int  # where the last complete record ends
    torn_bytes: int  # bytes after it that do not form a whole record (0 normally)
    damaged: list[DamagedRange]  # records that failed their checks, each skipped on its own


def segment_header(stream: bytes) -> bytes:
    return MAGIC_SEGMENT + stream


def _record_at(data: bytes, offset: int, cipher: AESGCM, stream: bytes, previous: int) -> ScannedRecord:
    """The authenticated record starting at ``offset``, or ``CorruptRecord`` saying why not."""
    if len(data) - offset < _RECORD_HEADER.size:
        raise CorruptRecord("record shorter than its header")
    length, seq, kind = _RECORD_HEADER.unpack_from(data, offset)
    if length < TAG_BYTES or length > MAX_RECORD_BYTES or kind not in KINDS:
        raise CorruptRecord(f"bad record header at offset {offset}")
    end = offset + RECORD_OVERHEAD + length
    if end > len(data):
        raise CorruptRecord(f"record at offset {offset} runs past the end of the file")
    decoded_seq, _, _ = decode_record(cipher, stream, data[offset:end])
    if decoded_seq <= previous:
        raise CorruptRecord(f"sequence number {decoded_seq} at offset {offset} does not increase")
    return ScannedRecord(seq, kind, offset, end - offset)


def _next_record(data: bytes, start: int, cipher: AESGCM, stream: bytes, previous: int) -> int | None:
    """The first offset from ``start`` where an authentic record begins (resynchronising after
    damage: header fields are checked before any decryption is tried)."""
    last = len(data) - RECORD_OVERHEAD - TAG_BYTES
    for offset in range(start, last + 1):
        length, seq, kind = _RECORD_HEADER.unpack_from(data, offset)
        if kind not in KINDS or seq <= previous or not TAG_BYTES <= length <= MAX_RECORD_BYTES:
            continue
        if offset + RECORD_OVERHEAD + length > len(data):
            continue
        try:
            _record_at(data, offset, cipher, stream, previous)
        except CorruptRecord:
            continue
        return offset
    return None


def scan_segment(path: Path, cipher: AESGCM, stream: bytes) -> ScannedSegment:
    """Read and authenticate every record of a segment file.

    Raises ``CorruptRecord`` only for a file that is not a segment of this buffer (header, stream id).
    A record that fails authentication, has fields out of range or a sequence number that does not
    increase is listed in ``damaged`` and skipped: the scan resumes at the next authentic record, so
    one damaged record costs only itself. A file that ends in the middle of a record is returned with
    ``torn_bytes > 0`` so the caller can report and cut it.
    """
    data = path.read_bytes()
    if len(data) < SEGMENT_HEADER_BYTES or data[: len(MAGIC_SEGMENT)] != MAGIC_SEGMENT:
        raise CorruptRecord("not a plcrun buffer segment (bad header)")
    if data[len(MAGIC_SEGMENT) : SEGMENT_HEADER_BYTES] != stream:
        raise CorruptRecord("segment belongs to another buffer (stream id differs)")
    records: list[ScannedRecord] = []
    damaged: list[DamagedRange] = []
    offset = SEGMENT_HEADER_BYTES
    previous = 0
    while offset < len(data):
        try:
            found = _record_at(data, offset, cipher, stream, previous)
        except CorruptRecord as error:
            resume = _next_record(data, offset + 1, cipher, stream, previous)
            if resume is None:
                if _looks_torn(data, offset):
                    break  # the last record was being written: a torn tail, not damage
                resume = len(data)
            damaged.append(DamagedRange(offset, resume - offset, str(error)))
            offset = resume
            continue
        records.append(found)
        previous = found.seq
        offset += found.size
    return ScannedSegment(records, offset, len(data) - offset, damaged)


def _looks_torn(data: bytes, offset: int) -> bool:
    """A record cut short by a crash: a plausible header whose record runs past the end."""
    if len(data) - offset < _RECORD_HEADER.size:
        return True
    length, _seq, kind = _RECORD_HEADER.unpack_from(data, offset)
    plausible = TAG_BYTES <= length <= MAX_RECORD_BYTES and kind in KINDS
    return plausible and offset + RECORD_OVERHEAD + length > len(data)


@dataclass
class StoreState:
    """The committed counters: every record up to ``acked_through`` is delivered (or dropped);
    ``pending`` records with ``acked_through < seq <= last_seq`` must be on disk."""

    stream: bytes
    last_seq: int = 0
    acked_through: int = 0
    pending: int = 0


def encode_state(cipher: AESGCM, state: StoreState) -> bytes:
    body = json.dumps(
        {
            "version": 1,
            "stream": state.stream.hex(),
            "last_seq": state.last_seq,
            "acked_through": state.acked_through,
            "pending": state.pending,
        }
    ).encode()
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC_STATE + nonce + cipher.encrypt(nonce, body, MAGIC_STATE)


def decode_state(cipher: AESGCM, raw: bytes) -> StoreState:
    if raw[: len(MAGIC_STATE)] != MAGIC_STATE:
        raise CorruptRecord("state file has a bad header")
    nonce = raw[len(MAGIC_STATE) : len(MAGIC_STATE) + NONCE_BYTES]
    try:
        body = cipher.decrypt(nonce, raw[len(MAGIC_STATE) + NONCE_BYTES :], MAGIC_STATE)
    except InvalidTag:
        raise CorruptRecord("state file fails authentication (altered or wrong key)") from None
    try:
        fields = json.loads(body)
        state = StoreState(
            bytes.fromhex(fields["stream"]), fields["last_seq"], fields["acked_through"], fields["pending"]
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptRecord(f"state file content is malformed ({error})") from None
    if len(state.stream) != STREAM_BYTES:
        raise CorruptRecord("state file has a malformed stream id")
    return state


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a regular file may take fewer bytes, e.g. disk full)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError("write made no progress")
        view = view[written:]


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes, durable: bool) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves either the old or the new content."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    if durable:
        fsync_directory(path.parent)
