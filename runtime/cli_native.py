"""``--native`` for ``plcrun run`` and ``plcrun sim``: the build made or taken from the cache, with
what the user is told (docs/native-build.md)."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

from .compiler.native import enable_native
from .state.program import CompiledProgram


@contextlib.contextmanager
def hangups_ignored() -> Iterator[None]:
    """SIGHUP (reload) ignored with a word while the native build runs (30-50 s): its default action
    would end the process before the session's own handler is installed."""

    def hangup(signum: int, frame: FrameType | None) -> None:
        print(
            "plcrun: SIGHUP ignored: the native build is running; send it again once running", file=sys.stderr
        )

    previous = signal.signal(signal.SIGHUP, hangup)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def use_native(program: CompiledProgram, *, say_loaded: bool = False) -> None:
    """``--native``: build (or take from the cache) the program's native build; else say why."""
    reason = enable_native(program)
    if reason:
        print(f"plcrun: native build not used ({reason}); running interpreted", file=sys.stderr)
    elif say_loaded:
        print(f"plcrun: native build {program.native.module.__name__} loaded", file=sys.stderr)
