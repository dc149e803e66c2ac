"""The encrypted store-and-forward buffer: every report and alarm is written here before it is published
and removed only after the broker acknowledged it (PUBACK), so neither a broker outage nor a crash of
the gateway loses a record that was written.

Write path (worker thread only): ``next_seq`` → ``append`` (one ``os.write`` per record, so a killed
process leaves whole records in the page cache) → ``commit`` (group commit: fsync per policy, enforce
the size bound, then write the counters in ``state.bin`` atomically). Records are AES-256-GCM sealed
(see ``store_format``). Opening the buffer authenticates every record and checks the counters; a
record that fails is copied to ``quarantine/`` on its own and its segment rewritten without it (the
other records of the segment stay pending); a file that is not a segment of this buffer, or a
``state.bin`` that fails, is moved there whole. Everything quarantined is listed in ``problems`` —
never loaded silently.

Compaction: delivered records do not stay on disk until their segment fills. Once the counters that
mark them delivered are persisted, a segment whose delivered bytes reach ``compact_bytes`` and
outweigh its pending ones is rewritten with only the pending records (the active segment, when
everything in it is delivered, is simply cut back to its header).

Size bound: when the files exceed ``max_bytes``, the oldest segment holding reports is rewritten without
its reports (alarms stay); only when alarms alone exceed the bound are the oldest alarms dropped.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .store_format import (
    KIND_ALARM,
    KIND_REPORT,
    SEGMENT_HEADER_BYTES,
    STREAM_BYTES,
    CorruptRecord,
    DamagedRange,
    StoreState,
    decode_record,
    decode_state,
    encode_record,
    encode_state,
    fsync_directory,
    scan_segment,
    segment_header,
    write_all,
    write_file_atomically,
)

log = logging.getLogger("plcrun.mqtt.buffer")

STATE_FILE = "state.bin"
QUARANTINE_DIR = "quarantine"
COMPACT_BYTES = 64 * 1024
_CACHE_LIMIT_BYTES = 4 * 1024 * 1024
_quarantine_counter = itertools.count()


@dataclass(eq=False)
class _Segment:
    path: Path
    size: int
    records: dict[int, PendingRecord] = field(default_factory=dict)  # live records, in seq order
    read_fd: int | None = None

    def close(self) -> None:
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None


@dataclass(eq=False)
class PendingRecord:
    """A record written but not yet acknowledged by the broker."""

    seq: int
    kind: int
    segment: _Segment
    offset: int
    size: int
    payload: bytes | None = None  # plaintext kept in memory while the cache has room


class ForwardBuffer:
    """One buffer directory. Not thread-safe: the backhaul's worker thread is its only user."""

    def __init__(
        self,
        directory: Path,
        key: bytes,
        max_bytes: int,
        fsync: str = "always",
        compact_bytes: int = COMPACT_BYTES,
    ) -> None:
        self.directory = directory
        self.compact_bytes = compact_bytes
        self.max_bytes = max_bytes
        self.durable = fsync == "always"
        self.segment_bytes = min(max(max_bytes // 16, 16 * 1024), 4 * 1024 * 1024)
        self.problems: list[str] = []
        self.dropped_records = 0
        self._cipher = AESGCM(key)
        self._segments: list[_Segment] = []
        self._pending: dict[int, PendingRecord] = {}
        self._active: _Segment | None = None
        self._active_fd: int | None = None
        self._total_bytes = 0
        self._cache_bytes = 0
        self._records_dirty = False
        self._state_dirty = False
        self._next_seq = 1
        self._state = StoreState(os.urandom(STREAM_BYTES))
        self._open()

    # ---- opening and verification ----------------------------------------------------------------

    def _problem(self, text: str) -> None:
        log.error("store-and-forward buffer %s: %s", self.directory, text)
        self.problems.append(text)

    def _quarantine_target(self, name: str) -> Path:
        target_dir = self.directory / QUARANTINE_DIR
        target_dir.mkdir(mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return target_dir / f"{stamp}-{next(_quarantine_counter)}-{name}"

    def _quarantine(self, path: Path, reason: str) -> None:
        target = self._quarantine_target(path.name)
        os.replace(path, target)
        self._problem(f"{path.name}: {reason}; moved to {target}")

    def _quarantine_range(self, path: Path, data: bytes, damage: DamagedRange) -> None:
        """Copy one damaged record's bytes to quarantine (the segment is rewritten without them)."""
        target = self._quarantine_target(f"{path.stem}-at-{damage.offset}.bin")
        write_file_atomically(target, data[damage.offset : damage.offset + damage.size], self.durable)
        self._problem(
            f"{path.name}: {damage.reason} ({damage.size} bytes at offset {damage.offset}); "
            f"that record moved to {target}, the rest of the file kept"
        )

    def _open(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()  # an interrupted atomic replace; the original file is intact
        segment_paths = sorted(self.directory.glob("seg-*.log"))
        state_path = self.directory / STATE_FILE
        state: StoreState | None = None
        if state_path.exists():
            try:
                state = decode_state(self._cipher, state_path.read_bytes())
            except CorruptRecord as error:
                self._quarantine(state_path, str(error))
        elif segment_paths:
            self._problem(f"{STATE_FILE} is missing while {len(segment_paths)} segment file(s) exist")
        if state is None:
            for path in segment_paths:
                self._quarantine(path, "cannot be verified without a valid state file")
            self._write_state()
            return
        self._state = state
        self._load_segments(segment_paths)

    def _load_segments(self, paths: list[Path]) -> None:
        state = self._state
        previous_seq = 0
        torn: list[tuple[_Segment, int, int]] = []
        damaged: list[_Segment] = []
        for path in paths:
            try:
                scanned = scan_segment(path, self._cipher, state.stream)
                if scanned.records and scanned.records[0].seq <= previous_seq:
                    raise CorruptRecord("sequence numbers overlap the previous segment")
            except CorruptRecord as error:
                self._quarantine(path, str(error))
                continue
            if scanned.damaged:
                data = path.read_bytes()
                for damage in scanned.damaged:
                    self._quarantine_range(path, data, damage)
            segment = _Segment(path, scanned.complete_bytes + scanned.torn_bytes)
            for found in scanned.records:
                previous_seq = found.seq
                if found.seq > state.acked_through:
                    record = PendingRecord(found.seq, found.kind, segment, found.offset, found.size)
                    segment.records[found.seq] = record
                    self._pending[found.seq] = record
            if scanned.torn_bytes:
                torn.append((segment, scanned.complete_bytes, scanned.torn_bytes))
            self._segments.append(segment)
            self._total_bytes += segment.size
            if scanned.damaged:
                damaged.append(segment)
        committed = sum(1 for seq in self._pending if seq <= state.last_seq)
        if committed < state.pending:
            self._problem(
                f"{state.pending - committed} committed record(s) up to seq {state.last_seq} are missing "
                "(buffer files truncated or deleted)"
            )
        for segment, keep, cut in torn:
            self._problem(
                f"{segment.path.name} ends with {cut} byte(s) of an incomplete record: truncated there"
            )
            os.truncate(segment.path, keep)
            self._total_bytes -= segment.size - keep
            segment.size = keep
        for segment in damaged:
            if segment.records:
                self._rewrite(segment)  # without the damaged bytes, so the next open is clean
            else:
                segment.close()
                segment.path.unlink()
                self._segments.remove(segment)
                self._total_bytes -= segment.size
        state.last_seq = max(state.last_seq, previous_seq)
        self._next_seq = state.last_seq + 1
        if self._segments and self._segments[-1].size < self.segment_bytes:
            self._active = self._segments[-1]
            self._active_fd = os.open(self._active.path, os.O_WRONLY | os.O_APPEND)
        if self.problems or committed > state.pending:
            self._write_state()
        self._delete_delivered_segments()
        log.info(
            "buffer %s opened: %d pending record(s), next seq %d",
            self.directory,
            len(self._pending),
            self._next_seq,
        )

    # ---- writing ---------------------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return self._state.stream.hex()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def total_bytes(self) -> int:
        return self._total_bytes

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def next_seq(self) -> int:
        """The sequence number the next ``append`` must use."""
        return self._next_seq

    def _new_segment(self, first_seq: int) -> None:
        self._close_active()
        path = self.directory / f"seg-{first_seq:020d}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        write_all(fd, segment_header(self._state.stream))
        if self.durable:
            os.fsync(fd)
            fsync_directory(self.directory)
        segment = _Segment(path, SEGMENT_HEADER_BYTES)
        self._segments.append(segment)
        self._total_bytes += segment.size
        self._active, self._active_fd = segment, fd

    def _close_active(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active, self._active_fd = None, None

    def append(self, seq: int, kind: int, payload: bytes) -> None:
        """Seal and write one record. It counts as written once this returns (the bytes are in the
        kernel); ``commit`` makes it durable against power loss and updates the counters."""
        if seq != self._next_seq:
            raise ValueError(f"append expected seq {self._next_seq}, got {seq}")
        if kind not in (KIND_REPORT, KIND_ALARM):
            raise ValueError(f"unknown record kind {kind}")
        if self._active is None or self._active.size >= self.segment_bytes:
            self._new_segment(seq)
        active, fd = self._active, self._active_fd
        assert active is not None and fd is not None
        raw = encode_record(self._cipher, self._state.stream, seq, kind, payload)
        write_all(fd, raw)
        record = PendingRecord(seq, kind, active, active.size, len(raw))
        if self._cache_bytes + len(payload) <= _CACHE_LIMIT_BYTES:
            record.payload = payload
            self._cache_bytes += len(payload)
        active.records[seq] = record
        active.size += len(raw)
        self._total_bytes += len(raw)
        self._pending[seq] = record
        self._next_seq = seq + 1
        self._records_dirty = True

    def commit(self, persist_acks: bool = False) -> list[int]:
        """Make appended records durable, apply the size bound, persist the counters.

        Acknowledgements alone are persisted only with ``persist_acks`` (the caller rate-limits
        that: an unpersisted ack costs at most a duplicate after a crash). Returns the sequence
        numbers dropped to respect ``max_bytes`` (oldest reports first)."""
        if self._records_dirty and self.durable and self._active_fd is not None:
            os.fsync(self._active_fd)
        rewrites, dropped = self._plan_drops()
        if self._records_dirty or dropped or (persist_acks and self._state_dirty):
            self._write_state()
        for segment in rewrites:
            self._rewrite(segment)
        if not self._state_dirty:  # every forgotten record is on record as forgotten
            self._delete_delivered_segments()
            self._compact()
        self._records_dirty = False
        return dropped

    def _compact(self) -> None:
        """Rewrite segments whose delivered records take ``compact_bytes`` or more and outweigh the
        pending ones; cut an active segment with nothing pending back to its header."""
        for segment in list(self._segments):
            live = sum(record.size for record in segment.records.values())
            dead = segment.size - SEGMENT_HEADER_BYTES - live
            if dead < self.compact_bytes or dead < live:
                continue
            if segment is self._active and not segment.records and self._active_fd is not None:
                os.ftruncate(self._active_fd, SEGMENT_HEADER_BYTES)  # delivered: a crash may keep them
                segment.close()
                segment.size = SEGMENT_HEADER_BYTES
                self._total_bytes -= dead
                continue
            if segment is self._active:
                self._close_active()
            self._rewrite(segment)

    def _write_state(self) -> None:
        state = self._state
        state.last_seq = self._next_seq - 1
        state.pending = len(self._pending)
        state.acked_through = next(iter(self._pending)) - 1 if self._pending else state.last_seq
        write_file_atomically(self.directory / STATE_FILE, encode_state(self._cipher, state), self.durable)
        self._state_dirty = False

    # ---- acknowledgement, reading, dropping ------------------------------------------------------

    def get(self, seq: int) -> PendingRecord | None:
        return self._pending.get(seq)

    def pending_seqs(self) -> list[int]:
        return list(self._pending)

    def _forget(self, record: PendingRecord) -> None:
        del self._pending[record.seq]
        del record.segment.records[record.seq]
        if record.payload is not None:
            self._cache_bytes -= len(record.payload)
            record.payload = None
        self._state_dirty = True

    def ack(self, seq: int) -> bool:
        """The broker has the record: forget it (counters are persisted by the next ``commit``)."""
        record = self._pending.get(seq)
        if record is None:
            return False
        self._forget(record)
        return True

    def read(self, record: PendingRecord) -> bytes:
        """The record's payload, from memory or authenticated again from disk (``CorruptRecord``)."""
        if record.payload is not None:
            return record.payload
        segment = record.segment
        if segment.read_fd is None:
            segment.read_fd = os.open(segment.path, os.O_RDONLY)
        raw = os.pread(segment.read_fd, record.size, record.offset)
        seq, kind, payload = decode_record(self._cipher, self._state.stream, raw)
        if (seq, kind) != (record.seq, record.kind):
            raise CorruptRecord(
                f"record at offset {record.offset} of {segment.path.name} is not seq {record.seq}"
            )
        return payload

    def discard(self, record: PendingRecord) -> None:
        """Give up on a record that can no longer be read (reported by the caller)."""
        if record.seq in self._pending:
            self._forget(record)

    def _plan_drops(self) -> tuple[list[_Segment], list[int]]:
        dropped: list[int] = []
        rewrites: list[_Segment] = []
        projected = self._total_bytes
        for kinds in ((KIND_REPORT,), (KIND_REPORT, KIND_ALARM)):
            for segment in self._segments:
                if projected <= self.max_bytes:
                    break
                victims = [r for r in segment.records.values() if r.kind in kinds]
                if not victims:
                    continue
                if segment is self._active:
                    self._close_active()
                for record in victims:
                    self._forget(record)
                    dropped.append(record.seq)
                kept = sum(r.size for r in segment.records.values())
                projected -= segment.size - SEGMENT_HEADER_BYTES - kept
                if segment not in rewrites:
                    rewrites.append(segment)
        if dropped:
            self.dropped_records += len(dropped)
            log.warning(
                "buffer over %d bytes: dropped %d record(s), seq %d..%d (oldest reports first)",
                self.max_bytes,
                len(dropped),
                min(dropped),
                max(dropped),
            )
        return rewrites, dropped

    def _rewrite(self, segment: _Segment) -> None:
        """Replace the segment file by one holding only its live records (bytes copied unchanged)."""
        if not segment.records:
            return  # deleted by _delete_delivered_segments
        if segment.read_fd is None:
            segment.read_fd = os.open(segment.path, os.O_RDONLY)
        parts = [segment_header(self._state.stream)]
        offset = SEGMENT_HEADER_BYTES
        moves: list[tuple[PendingRecord, int]] = []
        for record in segment.records.values():
            parts.append(os.pread(segment.read_fd, record.size, record.offset))
            moves.append((record, offset))
            offset += record.size
        write_file_atomically(segment.path, b"".join(parts), self.durable)
        segment.close()
        for record, new_offset in moves:
            record.offset = new_offset
        self._total_bytes -= segment.size - offset
        segment.size = offset

    def _delete_delivered_segments(self) -> None:
        """Delete segment files without live records (their counters are already persisted)."""
        if self._active is not None and not self._active.records and self._active.size >= self.segment_bytes:
            self._close_active()
        keep: list[_Segment] = []
        deleted = False
        for segment in self._segments:
            if segment.records or segment is self._active:
                keep.append(segment)
                continue
            segment.close()
            segment.path.unlink(missing_ok=True)
            self._total_bytes -= segment.size
            deleted = True
        self._segments = keep
        if deleted and self.durable:
            fsync_directory(self.directory)

    def close(self) -> None:
        """Persist the counters and close every file."""
        self.commit(persist_acks=True)
        self._close_active()
        for segment in self._segments:
            segment.close()
