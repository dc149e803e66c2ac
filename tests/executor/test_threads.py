"""Threads the runtime starts get small stacks (a compile thread a large one), and a guarded callback
that raises is logged and counted while its thread lives on. Stack sizes are read back from the C
library (``pthread_getattr_np``), not from Python's setting."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading

import pytest
from plcrun.executor.threads import (
    COMPILE_STACK_BYTES,
    SMALL_STACK_BYTES,
    CallbackGuard,
    start_thread,
    use_small_stacks,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pthread_getattr_np is glibc")


def own_stack_size() -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.pthread_self.restype = ctypes.c_ulong
    attr = ctypes.create_string_buffer(128)  # pthread_attr_t is 56 bytes on x86-64, 64 on aarch64
    assert libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr) == 0
    size = ctypes.c_size_t()
    assert libc.pthread_attr_getstacksize(attr, ctypes.byref(size)) == 0
    libc.pthread_attr_destroy(attr)
    return size.value


def stack_of(start: object) -> int:
    found: list[int] = []
    thread = start(lambda: found.append(own_stack_size()))  # type: ignore[operator]
    thread.join()
    return found[0]


def test_threads_get_small_stacks_and_a_compile_thread_a_large_one() -> None:
    previous = use_small_stacks()
    try:
        small = stack_of(lambda target: start_thread(target, "t-small"))
        library = stack_of(lambda target: _plain_thread(target))  # a library's own thread, e.g. paho's
        large = stack_of(lambda target: start_thread(target, "t-compile", stack_bytes=COMPILE_STACK_BYTES))
        after = stack_of(lambda target: start_thread(target, "t-after"))
    finally:
        threading.stack_size(previous)
    assert small == library == after == SMALL_STACK_BYTES
    assert large == COMPILE_STACK_BYTES


def _plain_thread(target: object) -> threading.Thread:
    thread = threading.Thread(target=target)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_guarded_callback_that_raises_is_logged_counted_and_reported(caplog) -> None:  # type: ignore[no-untyped-def]
    errors: list[str] = []
    guard = CallbackGuard("test link", on_error=lambda what, error: errors.append(f"{what}: {error}"))
    calls: list[int] = []

    def on_message(n: int) -> None:
        calls.append(n)
        if n == 2:
            raise RecursionError("maximum recursion depth exceeded")

    guarded = guard(on_message)
    with caplog.at_level(logging.ERROR, logger="plcrun.threads"):
        thread = start_thread(lambda: [guarded(n) for n in range(4)], "t-guarded")
        thread.join()
    assert calls == [0, 1, 2, 3]  # the thread went on after the failure
    assert guard.failures == 1 and errors == ["on_message: maximum recursion depth exceeded"]
    assert guard.last_error == "on_message: RecursionError: maximum recursion depth exceeded"
    assert "test link: on_message raised (the thread goes on)" in caplog.text


class RecordingGate:
    def __init__(self) -> None:
        self.held = False
        self.entries = 0

    def enter(self) -> None:
        assert not self.held
        self.held = True
        self.entries += 1

    def leave(self) -> None:
        assert self.held
        self.held = False


def test_a_gated_loop_runs_its_callbacks_inside_the_gate_and_waits_outside() -> None:
    import asyncio
    import selectors
    import socket

    from plcrun.executor.threads import GatedSelector

    gate = RecordingGate()
    loop = asyncio.SelectorEventLoop(GatedSelector(selectors.DefaultSelector(), gate))
    seen: list[bool] = []

    async def main() -> None:
        reader_sock, writer_sock = socket.socketpair()
        reader, _writer = await asyncio.open_connection(sock=reader_sock)
        for chunk in (b"a", b"b", b"c"):
            loop.call_later(0.01, writer_sock.send, chunk)
            seen.append(gate.held)  # our code runs with the gate held
            assert await reader.read(1) == chunk
            seen.append(gate.held)
        writer_sock.close()
        _writer.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen == [True] * 6
    assert gate.entries >= 4 and not gate.held  # entered after every wait, left when the loop closed


@pytest.mark.slow
def test_the_threads_of_a_running_site_have_small_stacks() -> None:
    """The simulated site with its dashboard, run as ``plcrun run`` runs it, in a child process: every
    thread the runtime started reports a 512 KiB stack."""
    import json
    import subprocess
    from pathlib import Path

    child = Path(__file__).with_name("stack_probe_child.py")
    result = subprocess.run(
        [sys.executable, str(child)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stacks = json.loads(result.stdout)
    assert {"plcrun-dashboard", "plcrun-status", "plcrun-watchdog"} <= set(stacks)
    assert set(stacks.values()) == {SMALL_STACK_BYTES}, stacks
