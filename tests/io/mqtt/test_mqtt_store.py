"""The encrypted store-and-forward buffer on real files: what is written survives reopening, nothing
readable is on disk, every alteration or truncation is detected and reported, and the size bound
drops the oldest reports first while keeping alarms."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from plcrun.io.mqtt.store import ForwardBuffer
from plcrun.io.mqtt.store_format import KIND_ALARM, KIND_REPORT, NONCE_BYTES, SEGMENT_HEADER_BYTES

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def payload(seq: int, size: int = 100) -> bytes:
    return (f'{{"seq":{seq},"text":"report number {seq}"}}').encode().ljust(size, b" ")


def fill(buffer: ForwardBuffer, count: int, kind: int = KIND_REPORT) -> list[int]:
    written = []
    for _ in range(count):
        seq = buffer.next_seq()
        buffer.append(seq, kind, payload(seq))
        written.append(seq)
    buffer.commit()
    return written


def split_records(path: Path) -> list[tuple[int, int, int]]:
    """(offset, size, seq) of each record, parsed independently of the store's reader."""
    data = path.read_bytes()
    offset, found = SEGMENT_HEADER_BYTES, []
    while offset < len(data):
        length, seq, _kind = struct.unpack_from(">IQB", data, offset)
        size = 13 + NONCE_BYTES + length
        found.append((offset, size, seq))
        offset += size
    return found


def test_records_survive_reopening_and_sequence_continues(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    assert fill(buffer, 5) == [1, 2, 3, 4, 5]
    for seq in (1, 2):
        assert buffer.ack(seq)
    buffer.close()

    reopened = ForwardBuffer(tmp_path, KEY, 1 << 20)
    assert reopened.problems == []
    assert reopened.pending_seqs() == [3, 4, 5]
    assert [reopened.read(reopened.get(s)) for s in (3, 4, 5)] == [payload(s) for s in (3, 4, 5)]  # type: ignore[arg-type]
    assert reopened.next_seq() == 6
    for seq in (3, 4, 5):
        reopened.ack(seq)
    reopened.close()
    # everything delivered: the files are gone but the sequence never restarts
    emptied = ForwardBuffer(tmp_path, KEY, 1 << 20)
    assert emptied.pending_seqs() == [] and emptied.next_seq() == 6 and emptied.problems == []


def test_nothing_readable_on_disk_and_a_fresh_nonce_per_record(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    for _ in range(50):
        seq = buffer.next_seq()
        buffer.append(seq, KIND_REPORT, b"identical payload every time")
    buffer.close()
    (segment,) = tmp_path.glob("seg-*.log")
    data = segment.read_bytes()
    assert b"identical payload" not in data
    nonces = [data[offset + 13 : offset + 13 + NONCE_BYTES] for offset, _, _ in split_records(segment)]
    assert len(nonces) == 50 and len(set(nonces)) == 50
    assert os.stat(segment).st_mode & 0o077 == 0


def test_flipped_bit_quarantines_that_record_only(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 64 * 1024)  # 16 KiB segments: several files
    fill(buffer, 300)
    buffer.close()
    segments = sorted(tmp_path.glob("seg-*.log"))
    assert len(segments) >= 3
    victim = segments[1]
    offset, size, seq = split_records(victim)[2]
    data = bytearray(victim.read_bytes())
    damaged = bytes(data[offset : offset + size])
    data[offset + size - 20] ^= 0x80
    victim.write_bytes(bytes(data))

    reopened = ForwardBuffer(tmp_path, KEY, 64 * 1024)
    assert any(
        victim.name in p and f"seq {seq} fails authentication" in p and "the rest of the file kept" in p
        for p in reopened.problems
    )
    assert any("1 committed record(s)" in p and "missing" in p for p in reopened.problems)
    (quarantined,) = (tmp_path / "quarantine").glob(f"*{victim.stem}-at-{offset}.bin")
    assert len(quarantined.read_bytes()) == size and quarantined.read_bytes() != damaged  # the altered bytes
    assert reopened.pending_seqs() == [s for s in range(1, 301) if s != seq]  # every other record kept
    assert all(reopened.read(reopened.get(s)) == payload(s) for s in (seq - 1, seq + 1))  # type: ignore[arg-type]
    reopened.close()
    again = ForwardBuffer(tmp_path, KEY, 64 * 1024)  # the segment was rewritten without the record
    assert again.problems == [] and len(again.pending_seqs()) == 299


def test_a_damaged_length_field_costs_one_record(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    fill(buffer, 6)
    buffer.close()
    (segment,) = tmp_path.glob("seg-*.log")
    data = bytearray(segment.read_bytes())
    offset = split_records(segment)[2][0]
    struct.pack_into(">I", data, offset, 0xFFFFFF)  # record 3 claims to run past the end of the file
    segment.write_bytes(bytes(data))
    reopened = ForwardBuffer(tmp_path, KEY, 1 << 20)
    assert reopened.pending_seqs() == [1, 2, 4, 5, 6]
    assert any(
        "runs past the end of the file" in p and "the rest of the file kept" in p for p in reopened.problems
    )


def test_delivered_records_are_compacted_away(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20, compact_bytes=2048)  # 64 KiB segments
    fill(buffer, 40)  # about 6 KiB in the active segment
    (segment,) = tmp_path.glob("seg-*.log")
    for seq in range(1, 41):
        buffer.ack(seq)
    buffer.commit(persist_acks=True)
    assert segment.stat().st_size == SEGMENT_HEADER_BYTES  # all delivered: cut back to the header
    fill(buffer, 40)  # 41..80
    for seq in range(41, 71):
        buffer.ack(seq)
    buffer.commit(persist_acks=True)
    left = split_records(segment)
    assert [s for _, _, s in left] == list(range(71, 81))  # only what is pending stays on disk
    assert buffer.total_bytes == segment.stat().st_size
    buffer.close()
    reopened = ForwardBuffer(tmp_path, KEY, 1 << 20)
    assert reopened.problems == [] and reopened.pending_seqs() == list(range(71, 81))
    assert reopened.read(reopened.get(75)) == payload(75)  # type: ignore[arg-type]


def test_record_moved_to_another_sequence_number_fails(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    fill(buffer, 3)
    buffer.close()
    (segment,) = tmp_path.glob("seg-*.log")
    data = bytearray(segment.read_bytes())
    offset = split_records(segment)[2][0]
    struct.pack_into(">Q", data, offset + 4, 7)  # relabel record 3 as 7: the associated data differs
    segment.write_bytes(bytes(data))
    assert any("seq 7 fails authentication" in p for p in ForwardBuffer(tmp_path, KEY, 1 << 20).problems)


def test_truncated_tail_is_reported_and_cut(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    fill(buffer, 4)
    buffer.close()
    (segment,) = tmp_path.glob("seg-*.log")
    os.truncate(segment, segment.stat().st_size - 10)  # half of the last record is gone
    reopened = ForwardBuffer(tmp_path, KEY, 1 << 20)
    assert any("incomplete record" in p for p in reopened.problems)
    assert any("1 committed record(s) up to seq 4 are missing" in p for p in reopened.problems)
    assert reopened.pending_seqs() == [1, 2, 3]


def test_removed_whole_records_and_deleted_files_are_detected(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    fill(buffer, 4)
    buffer.close()
    (segment,) = tmp_path.glob("seg-*.log")
    os.truncate(segment, split_records(segment)[3][0])  # cut exactly at a record boundary
    assert any("missing" in p for p in ForwardBuffer(tmp_path, KEY, 1 << 20).problems)

    other = tmp_path / "other"
    buffer = ForwardBuffer(other, KEY, 1 << 20)
    fill(buffer, 2)
    buffer.close()
    for path in other.glob("seg-*.log"):
        path.unlink()
    assert any("2 committed record(s)" in p for p in ForwardBuffer(other, KEY, 1 << 20).problems)


def test_wrong_key_or_missing_state_loads_nothing(tmp_path: Path) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20)
    fill(buffer, 3)
    buffer.close()
    wrong = ForwardBuffer(tmp_path, OTHER_KEY, 1 << 20)
    assert any("state.bin" in p and "authentication" in p for p in wrong.problems)
    assert wrong.pending_seqs() == []
    assert len(list((tmp_path / "quarantine").iterdir())) == 2  # state.bin and the segment

    fresh = tmp_path / "fresh"
    buffer = ForwardBuffer(fresh, KEY, 1 << 20)
    fill(buffer, 1)
    buffer.close()
    (fresh / "state.bin").unlink()
    reopened = ForwardBuffer(fresh, KEY, 1 << 20)
    assert any("state.bin is missing" in p for p in reopened.problems) and reopened.pending_seqs() == []


def test_size_bound_drops_oldest_reports_and_keeps_alarms(tmp_path: Path) -> None:
    limit = 64 * 1024
    buffer = ForwardBuffer(tmp_path, KEY, limit, fsync="never")  # 2000 commits: spare the disk
    alarms: list[int] = []
    dropped: list[int] = []
    for index in range(2000):
        seq = buffer.next_seq()
        kind = KIND_ALARM if index % 50 == 0 else KIND_REPORT
        buffer.append(seq, kind, payload(seq))
        if kind == KIND_ALARM:
            alarms.append(seq)
        dropped += buffer.commit()
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("seg-*.log"))
    assert on_disk <= limit
    pending = buffer.pending_seqs()
    assert set(alarms) <= set(pending)  # every alarm kept
    assert dropped and buffer.dropped_records == len(dropped)
    kept_reports = [s for s in pending if s not in alarms]
    assert max(dropped) < min(kept_reports)  # the oldest reports went first
    assert set(dropped) | set(pending) == set(range(1, 2001))
    buffer.close()
    reopened = ForwardBuffer(tmp_path, KEY, limit)
    assert reopened.problems == [] and reopened.pending_seqs() == pending


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_both_fsync_policies_write_the_same_records(tmp_path: Path, fsync: str) -> None:
    buffer = ForwardBuffer(tmp_path, KEY, 1 << 20, fsync)
    fill(buffer, 10)
    # no close(): as after a crash, only what append/commit put in the files is there
    reopened = ForwardBuffer(tmp_path, KEY, 1 << 20, fsync)
    assert reopened.problems == [] and reopened.pending_seqs() == list(range(1, 11))
