"""Persistence of RETAIN variables, written off the scan thread, crash-safe, with layout checking.

The scan thread hands over a snapshot (``submit``: a dict path -> JSON-able value, O(1), no I/O). A
writer thread writes the latest snapshot at most every ``min_interval_s``:

1. the new file goes to ``<path>.tmp`` and is fsync'ed;
2. the current file, known to be good, becomes the backup ``<path>.bak`` (hard link + rename);
3. ``<path>.tmp`` is renamed over ``<path>`` and the directory is fsync'ed.

Every step leaves either the previous or the new file complete under ``<path>``, and the previous
good one under ``<path>.bak``. A file starts with one header line
``PLCRUN-RETAIN 1 sha256=<hex> length=<bytes>`` followed by a JSON body holding the layout hash and
the layout itself (list of [path, type]), a sequence number, the wall time and the values. ``load``
checks the header and checksum, falls back to the backup when the main file is damaged, and refuses
values written for a different layout with a message saying what changed.

A checksum finds damage, not forgery: anyone who can write the file can recompute it. With a ``key``
(32 or more bytes: ``plcrun run --retain-key-file`` or the systemd credential ``retain-key``) the
header carries ``hmac-sha256=<hex>`` instead, a MAC of the body under that key; a store with a key
accepts only files with a MAC that verifies, and a store without one refuses keyed files (it cannot
check them). Files are written mode 0600: RETAIN values are the plant's state.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PlcrunError

MAGIC = "PLCRUN-RETAIN"
FORMAT_VERSION = 1
MIN_KEY_BYTES = 32
FILE_MODE = 0o600
RetainLayout = Sequence[tuple[str, str]]
"""(variable path, IEC type name) of every RETAIN variable, e.g. ``("main.energy_kwh", "LREAL")``."""


class RetainFileError(PlcrunError):
    """A retain file that cannot be used; the message names the file and the problem."""


def layout_hash(layout: RetainLayout) -> str:
    """A stable hash of names and types (order-independent), for callers without their own."""
    text = "\n".join(f"{path}:{type_name}" for path, type_name in sorted(layout))
    return hashlib.sha256(text.encode()).hexdigest()


def describe_layout_change(old: RetainLayout, new: RetainLayout) -> list[str]:
    """Human-readable differences between two layouts, old order first, then additions."""
    old_types, new_types = dict(old), dict(new)
    changes = []
    for path, old_type in old:
        new_type = new_types.get(path)
        if new_type is None:
            changes.append(f"variable {path} removed")
        elif new_type != old_type:
            changes.append(f"variable {path} changed type from {old_type} to {new_type}")
    changes.extend(f"variable {path} added" for path, _ in new if path not in old_types)
    return changes


@dataclass(frozen=True, slots=True)
class RetainImage:
    """The decoded content of one retain file."""

    values: dict[str, object]
    layout_hash: str
    layout: list[tuple[str, str]]
    seq: int
    written_wall: float


def _digest(body: bytes, key: bytes | None) -> str:
    if key is None:
        return "sha256=" + hashlib.sha256(body).hexdigest()
    return "hmac-sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def encode_retain_file(image: RetainImage, key: bytes | None = None) -> bytes:
    body = json.dumps(
        {
            "layout_hash": image.layout_hash,
            "layout": [list(entry) for entry in image.layout],
            "seq": image.seq,
            "written": image.written_wall,
            "values": image.values,
        },
        separators=(",", ":"),
    ).encode()
    header = f"{MAGIC} {FORMAT_VERSION} {_digest(body, key)} length={len(body)}\n"
    return header.encode() + body


def decode_retain_file(data: bytes, filename: str, key: bytes | None = None) -> RetainImage:
    """Check and decode; raises ``RetainFileError`` naming ``filename`` and what is wrong. With a
    ``key`` only a file whose MAC verifies under it is accepted."""
    newline = data.find(b"\n")
    if newline < 0:
        raise RetainFileError(f"{filename}: no header line (empty or truncated file)")
    fields = data[:newline].decode("ascii", "replace").split()
    if len(fields) != 4 or fields[0] != MAGIC:
        raise RetainFileError(f"{filename}: not a plcrun retain file (header {data[:40]!r})")
    if fields[1] != str(FORMAT_VERSION):
        raise RetainFileError(f"{filename}: version {fields[1]} unsupported (expected {FORMAT_VERSION})")
    keyed = fields[2].startswith("hmac-sha256=")
    if not (keyed or fields[2].startswith("sha256=")) or not fields[3].startswith("length="):
        raise RetainFileError(f"{filename}: malformed header {data[:newline]!r}")
    if key is not None and not keyed:
        raise RetainFileError(
            f"{filename}: written without a key (its checksum can be forged) while a retain key is "
            "configured: refused"
        )
    if key is None and keyed:
        raise RetainFileError(
            f"{filename}: written with a retain key, but none is configured: cannot check it"
        )
    body = data[newline + 1 :]
    try:
        length = int(fields[3][len("length=") :])
    except ValueError:
        raise RetainFileError(f"{filename}: malformed length in header {fields[3]!r}") from None
    if len(body) != length:
        raise RetainFileError(f"{filename}: truncated: body has {len(body)} bytes, header says {length}")
    if not hmac.compare_digest(_digest(body, key).encode(), fields[2].encode()):
        if keyed:
            raise RetainFileError(
                f"{filename}: MAC mismatch (the file is corrupt, forged or from another key)"
            )
        raise RetainFileError(f"{filename}: checksum mismatch (the file is corrupt)")
    try:
        document = json.loads(body)
        layout = [(str(path), str(type_name)) for path, type_name in document["layout"]]
        image = RetainImage(
            values=dict(document["values"]),
            layout_hash=str(document["layout_hash"]),
            layout=layout,
            seq=int(document["seq"]),
            written_wall=float(document["written"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise RetainFileError(f"{filename}: checksum fine but content unusable: {error}") from None
    return image


@dataclass(frozen=True, slots=True)
class RetainLoad:
    """Result of ``RetainStore.load``.

    ``values`` is None for a cold start (no usable file, or a layout change). ``carried_over`` then
    holds the values of variables whose path and type did not change, for a caller that wants to
    keep them. ``messages`` say what happened, in order, for the log and the alarm.
    """

    values: dict[str, object] | None
    source: str  # "main", "backup" or "none"
    seq: int | None
    messages: list[str] = field(default_factory=list)
    layout_changes: list[str] = field(default_factory=list)
    carried_over: dict[str, object] = field(default_factory=dict)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RetainStore:
    """Retain file at ``path`` for a program whose retain layout is ``layout`` (hash ``layout_hash``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        layout_hash: str,
        layout: RetainLayout,
        *,
        min_interval_s: float = 1.0,
        retry_interval_s: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
        key: bytes | None = None,
    ) -> None:
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the retain key has {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
        self.key = key
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".bak")
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._backup_tmp_path = self.path.with_name(self.path.name + ".bak.tmp")
        self.layout_hash = layout_hash
        self.layout = [(str(p), str(t)) for p, t in layout]
        self.min_interval_s = min_interval_s
        self.retry_interval_s = retry_interval_s
        self._wall_clock = wall_clock
        self._cond = threading.Condition()
        self._pending: Mapping[str, object] | None = None
        self._pending_number = 0
        self._submitted = 0  # number of the latest submitted snapshot
        self._written = 0  # number of the latest snapshot on disk
        self._failures = 0
        self._flush_requested = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._main_good: bool | None = None  # None: not checked yet
        self._seq = 0
        self.writes = 0
        self.last_write_wall: float | None = None
        self.last_write_duration_s: float | None = None
        self.last_error: str | None = None

    # --- start-up ------------------------------------------------------------------------------

    def _read(self, path: Path) -> RetainImage | None:
        """The image in ``path``; None if the file does not exist; RetainFileError if unusable."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise RetainFileError(f"{path}: cannot read: {error.strerror}") from None
        return decode_retain_file(data, str(path), self.key)

    def load(self) -> RetainLoad:
        messages: list[str] = []
        image: RetainImage | None = None
        source = "none"
        try:
            image = self._read(self.path)
            self._main_good = image is not None
            if image is None:
                messages.append(f"{self.path}: no retain file")
            else:
                source = "main"
        except RetainFileError as error:
            self._main_good = False
            messages.append(str(error))
        if image is None:
            try:
                image = self._read(self.backup_path)
                if image is not None:
                    source = "backup"
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(image.written_wall))
                    messages.append(f"using the backup {self.backup_path} (sequence {image.seq}, {when})")
            except RetainFileError as error:
                messages.append(str(error))
        if image is None:
            messages.append("cold start: RETAIN variables take their initial values")
            return RetainLoad(None, "none", None, messages)
        self._seq = max(self._seq, image.seq)
        if image.layout_hash == self.layout_hash:
            return RetainLoad(dict(image.values), source, image.seq, messages)
        changes = describe_layout_change(image.layout, self.layout)
        if not changes:
            old, new = image.layout_hash[:12], self.layout_hash[:12]
            changes = [f"layout hash changed ({old} -> {new}) with the same names and types"]
        file_name = self.path if source == "main" else self.backup_path
        messages.append(
            f"{file_name}: the program's RETAIN variables changed since the file was written: "
            + "; ".join(changes)
            + "; cold start"
        )
        unchanged = set(image.layout) & set(self.layout)
        types = dict(image.layout)
        carried = {p: v for p, v in image.values.items() if (p, types.get(p)) in unchanged}
        return RetainLoad(None, source, image.seq, messages, changes, carried)

    # --- writing -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None:
            return
        self._closing = False
        self._thread = threading.Thread(target=self._writer, name="plcrun-retain", daemon=True)
        self._thread.start()

    def submit(self, values: Mapping[str, object]) -> None:
        """Hand over a snapshot from the scan thread (cheap: no copy, no I/O). The store owns
        ``values`` from now on: build a new dict for every snapshot, never mutate a submitted one."""
        with self._cond:
            self._submitted += 1
            self._pending = values
            self._pending_number = self._submitted
            self._cond.notify_all()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Write the latest snapshot now; True when it is on disk (False on error or timeout)."""
        if self._thread is None:
            with self._cond:
                values, number = self._pending, self._pending_number
                self._pending = None
            if values is not None:
                self._write_snapshot(values, number)
            return self._written >= self._submitted
        with self._cond:
            target, failures = self._submitted, self._failures
            if self._written >= target:
                return True
            self._flush_requested = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._written >= target or self._failures > failures, timeout)
            return self._written >= target

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is pending and stop the writer thread (it gives up on a write error)."""
        thread = self._thread
        if thread is None:
            self.flush(timeout)
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread.join(timeout)
        self._thread = None

    def status(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "writes": self.writes,
            "failures": self._failures,
            "sequence": self._seq,
            "last_write_wall": self.last_write_wall,
            "last_write_ms": None if self.last_write_duration_s is None else self.last_write_duration_s * 1e3,
            "pending": self._pending is not None,
            "last_error": self.last_error,
        }

    def _writer(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closing)
                values, number = self._pending, self._pending_number
                self._pending = None
                self._flush_requested = False
                if values is None:  # closing with nothing pending
                    return
            self._write_snapshot(values, number)
            if self._closing and self.last_error is not None:
                return  # give up on shutdown; last_error says why
            pause = self.min_interval_s if self.last_error is None else self.retry_interval_s
            with self._cond:
                # Rate limit: the next write waits unless flushed or closed earlier.
                self._cond.wait_for(lambda: self._closing or self._flush_requested, pause)

    def _write_snapshot(self, values: Mapping[str, object], number: int) -> None:
        started = time.perf_counter()
        self._seq += 1
        image = RetainImage(dict(values), self.layout_hash, self.layout, self._seq, self._wall_clock())
        written = False
        try:
            data = encode_retain_file(image, self.key)
        except (TypeError, ValueError):  # not retried: the same snapshot would fail again
            self.last_error = f"{self.path}: not written: {_unserialisable(values)}"
        else:
            try:
                self.write_file(data)
                written = True
                self.last_error = None
                self.writes += 1
                self.last_write_wall = image.written_wall
                self.last_write_duration_s = time.perf_counter() - started
            except OSError as error:
                self.last_error = f"{self.path}: cannot write retain file: {error.strerror or error}"
                with self._cond:
                    if self._pending is None:  # retry this snapshot later unless a newer one came
                        self._pending, self._pending_number = values, number
        with self._cond:
            if written:
                self._written = max(self._written, number)
            else:
                self._seq -= 1
                self._failures += 1
            self._cond.notify_all()

    def write_file(self, data: bytes) -> None:
        """Replace the retain file with ``data`` so that a crash at any point keeps a good copy."""
        self._write_temp(data)
        self._rotate_backup()
        self._commit()

    def _write_temp(self, data: bytes) -> None:
        fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # a leftover temporary file keeps its old mode otherwise
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rotate_backup(self) -> None:
        if self._main_good is None:  # first write without load(): is the current file worth keeping?
            try:
                self._main_good = self._read(self.path) is not None
            except RetainFileError:
                self._main_good = False
        if not self._main_good:
            return  # keep the existing backup rather than replacing it with a damaged file
        with contextlib.suppress(FileNotFoundError):
            self._backup_tmp_path.unlink()
        try:
            os.link(self.path, self._backup_tmp_path)
        except FileNotFoundError:
            return
        except OSError:  # no hard links on this file system: copy
            fd = os.open(self._backup_tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.write(fd, self.path.read_bytes())
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(self._backup_tmp_path, self.backup_path)

    def _commit(self) -> None:
        os.replace(self._tmp_path, self.path)
        _fsync_directory(self.path.parent)
        self._main_good = True


def _unserialisable(values: Mapping[str, object]) -> str:
    for path, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as error:
            return f"value of {path} is not JSON-serialisable ({type(value).__name__}: {error})"
    return "a key is not a string"
