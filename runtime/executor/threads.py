"""Threads the runtime starts: small stacks, and callbacks from foreign threads that cannot die.

Stacks: a thread's stack is reserved at its default size (8 MiB on Linux) and becomes resident in
full when memory is locked (``mlockall(MCL_FUTURE)``, rt_setup.py): 100 idle dashboard connections
took 770 MiB. ``use_small_stacks`` makes ``SMALL_STACK_BYTES`` the process-wide default for every
thread started afterwards, ours and our libraries' (paho's network thread, the asyncio loops).
Work that recurses deeply in C (compiling a program: the parser and code generator) runs on a
short-lived thread with ``COMPILE_STACK_BYTES`` (``start_thread(..., stack_bytes=...)``).

Callbacks: paho, asyncio and socketserver call our code on their own threads; anything such a
callback raises ends that thread for good (paho's network thread: no more messages, no
acknowledgements, while the client still looks connected). ``guarded`` wraps a callback so that
an exception is logged with its traceback, counted, and handed to ``on_error``, and the thread
lives on.

Gated event loops: ``GatedSelector`` wraps an asyncio loop's selector so that the loop thread holds
a ``Gate`` (``slack_gate.SlackGate``) while it runs Python (callbacks, protocols, parsing) and leaves
it while it waits in ``select``: a network flood is then worked off in the scan's slack instead of
taking the interpreter when the scan thread wakes up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import selectors
import threading
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol

log = logging.getLogger("plcrun.threads")

SMALL_STACK_BYTES = 512 * 1024
COMPILE_STACK_BYTES = 64 * 1024 * 1024
_stack_lock = threading.Lock()

P = ParamSpec("P")


def use_small_stacks(size: int = SMALL_STACK_BYTES) -> int:
    """Make ``size`` the stack size of threads started from now on; returns the previous one
    (0: the platform default)."""
    with _stack_lock:
        return threading.stack_size(size)


def start_thread(
    target: Callable[[], object], name: str, *, stack_bytes: int | None = None, daemon: bool = True
) -> threading.Thread:
    """Start a daemon thread; ``stack_bytes`` overrides the process default for this one thread."""
    thread = threading.Thread(target=target, name=name, daemon=daemon)
    if stack_bytes is None:
        thread.start()
        return thread
    with _stack_lock:  # the size is read when the thread starts
        previous = threading.stack_size(stack_bytes)
        try:
            thread.start()
        finally:
            threading.stack_size(previous)
    return thread


class CallbackGuard:
    """Counts the exceptions its guarded callbacks caught (``failures``) and keeps the last one."""

    def __init__(self, owner: str, on_error: Callable[[str, BaseException], None] | None = None) -> None:
        self.owner = owner
        self.failures = 0
        self.last_error = ""
        self._on_error = on_error

    def __call__(self, callback: Callable[P, None], what: str | None = None) -> Callable[P, None]:
        label: str = what or str(getattr(callback, "__name__", "callback"))

        @functools.wraps(callback)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                callback(*args, **kwargs)
            except Exception as error:
                self.failures += 1
                self.last_error = f"{label}: {type(error).__name__}: {_short(error)}"
                log.exception("%s: %s raised (the thread goes on)", self.owner, label)
                if self._on_error is not None:
                    try:
                        self._on_error(label, error)
                    except Exception:
                        log.exception("%s: the error handler of %s raised", self.owner, label)

        return run


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "..."


class Gate(Protocol):
    def enter(self) -> None: ...

    def leave(self) -> None: ...


class GatedSelector(selectors.BaseSelector):
    """A selector that leaves ``gate`` while waiting and enters it when events are ready; use it as
    ``asyncio.SelectorEventLoop(GatedSelector(selectors.DefaultSelector(), gate))``."""

    def __init__(self, inner: selectors.BaseSelector, gate: Gate, max_events: int = 16) -> None:
        self._inner = inner
        self._gate = gate
        self._held = False
        # Hand the loop a few ready sockets at a time (the others stay ready for the next select):
        # short turns in the gate, so a flood is worked off in many small pieces between scans.
        self._max_events = max_events

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._held:
            self._held = False
            self._gate.leave()
        try:
            events = self._inner.select(timeout)
        finally:
            self._gate.enter()
            self._held = True
        return events[: self._max_events]

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        if self._held:
            self._held = False
            self._gate.leave()
        self._inner.close()


def new_event_loop(gate: Gate | None) -> asyncio.AbstractEventLoop:
    """An asyncio loop for a network thread: its Python work waits for the scan's slack when ``gate``
    is given (a ``GatedSelector`` around the default selector), a plain loop otherwise."""
    if gate is None:
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(GatedSelector(selectors.DefaultSelector(), gate))
