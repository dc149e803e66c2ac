"""The SECC process as plcrun sees it: started with its own Python (the SECC environment), one unix
socket pair between us, JSON lines both ways (``wire.py``), restarted after ``restart_s`` when it
ends on its own.

``SeccProcess(config, on_message, on_down)``: ``start()``, ``send(message)`` (never blocks: the line is
queued for the writer thread), ``stop()``. ``on_message(message)`` runs on the reader thread with a
message already checked by ``check_from_secc``; ``on_down(reason)`` when the process ends.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Iso15118Config
from .wire import MAX_LINE, check_from_secc, decode, encode

log = logging.getLogger("plcrun.iso15118")
# not a package: its modules import the iso15118 package, which plcrun's environment does not have
WORKER = Path(__file__).with_name("secc_process") / "worker.py"


# The EXI codec's JVM on a small gateway: one GC thread, the quick compiler only (measured: the full
# tiered JIT competes with the charge loop for the CPU in its first minute), and a young generation
# large enough for the codec's ~7 MB of garbage per message: with -Xmx128m it collected every ~5
# messages (~28 ms each, while the SECC's event loop waits); with 160 MB every ~20 (bench/README.md).
JAVA_OPTIONS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -Xss512k -Xmn160m -Xmx256m"


def secc_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["JAVA_TOOL_OPTIONS"] = (env.get("JAVA_TOOL_OPTIONS", "") + " " + JAVA_OPTIONS).strip()
    return env


class SeccProcess:
    def __init__(
        self,
        config: Iso15118Config,
        on_message: Callable[[dict[str, Any]], None],
        on_down: Callable[[str], None],
        on_garbage: Callable[[str], None],
        worker: Path = WORKER,
    ) -> None:
        self.config = config
        self.worker = worker
        self._on_message = on_message
        self._on_down = on_down
        self._on_garbage = on_garbage
        self._evses = frozenset(evse.id for evse in config.evses)
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._config_file = ""
        self.starts = 0

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        fd, self._config_file = tempfile.mkstemp(prefix="plcrun-secc-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self.config.worker_config(), f)
        supervisor = threading.Thread(target=self._supervise, name="plcrun-secc-supervisor", daemon=True)
        writer = threading.Thread(target=self._write_loop, name="plcrun-secc-writer", daemon=True)
        self._threads = [supervisor, writer]
        supervisor.start()
        writer.start()

    def stop(self) -> None:
        """Say quit, give the process 3 s to finish its lines, then end it."""
        self._stopping.set()
        self.send({"t": "quit"})
        self._wake.set()
        for thread in self._threads:
            thread.join(5)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3)
        if self._config_file:
            Path(self._config_file).unlink(missing_ok=True)

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def send(self, message: dict[str, Any]) -> bool:
        try:
            line = encode(message)
        except ValueError:
            return False
        with self._lock:
            self._pending.append(line)
        self._wake.set()
        return True

    # ------------------------------------------------------------ threads
    def _spawn(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [
            self.config.python,
            str(self.worker),
            "--fd",
            str(theirs.fileno()),
            "--config",
            self._config_file,
        ]
        # the SECC's own logs go to our stderr; stdout too (the package prints there)
        self._proc = subprocess.Popen(
            argv,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=2,
            close_fds=True,
            env=secc_environment(),
        )
        theirs.close()
        self.starts += 1
        return ours

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                sock = self._spawn()
            except OSError as exc:
                self._on_down(f"cannot start the SECC process {self.config.python}: {exc}")
                self._stopping.wait(self.config.restart_s)
                continue
            with self._lock:
                self._sock = sock
                self._pending = [line for line in self._pending if b'"quit"' in line]
            self._read(sock)
            with self._lock:
                self._sock = None
            sock.close()
            proc = self._proc
            code = proc.wait() if proc is not None else None
            if self._stopping.is_set():
                return
            self._on_down(
                f"the SECC process ended (exit code {code}); restarting in {self.config.restart_s:g} s"
            )
            self._stopping.wait(self.config.restart_s)

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    if len(buffer) > MAX_LINE:
                        self._on_garbage(f"a line longer than {MAX_LINE} bytes: dropped")
                        buffer = b""
                    break
                line, buffer = buffer[: end + 1], buffer[end + 1 :]
                doc, why = decode(line)
                message, why = check_from_secc(doc, self._evses) if doc is not None else (None, why)
                if message is None:
                    self._on_garbage(why)
                    continue
                try:
                    self._on_message(message)
                except Exception:  # a bug in our handler must not end the reader
                    log.exception("handling %s from the SECC process", message.get("t"))

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                sock = self._sock
                lines = self._pending if sock is not None else []
                if sock is not None:
                    self._pending = []
            for line in lines:
                try:
                    assert sock is not None
                    sock.sendall(line)
                except OSError:
                    break  # the process went away; the supervisor restarts it
            if self._stopping.is_set():
                return
