"""The root of every exception plcrun raises on purpose (lark's ``LarkError`` is the model).

``PlcrunError`` carries where the problem is, as far as the raiser knows it: the ``file``, a dotted
configuration ``key`` and a ``line``/``column`` in the file. ``cli.main`` catches ``PlcrunError`` and
prints ``render()`` (one line, or positioned diagnostics for ST mistakes) with ``exit_code``; any
other exception reaching the command line is a bug and keeps its traceback.

Subclasses stay where they are raised (``CompileError`` in the compiler, ``ConfigError`` in I/O, ...)
and may also derive from a built-in exception (``ValueError``, ``KeyError``) that callers already
catch. ``ScanAborted`` is deliberately not one of them: it is a control signal (like
``KeyboardInterrupt``) that ST code must not be able to mask, so it derives from ``BaseException``.

This module imports nothing of plcrun: every layer, the compiler included, may derive from it.
"""

from __future__ import annotations

__all__ = ["EXIT_ERRORS", "EXIT_USAGE", "PlcrunError", "UsageError"]

EXIT_ERRORS = 1
EXIT_USAGE = 2


class PlcrunError(Exception):
    """Something plcrun expected could go wrong (bad input, unreachable peer, faulted program)."""

    file: str | None = None
    key: str | None = None  # dotted key in a configuration file, e.g. "mqtt.report.variables[0].path"
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    exit_code: int = EXIT_ERRORS

    def where(self) -> str:
        """``file:line:col``, ``file: key`` or ``file`` (empty when nothing is known)."""
        if self.file is None:
            return ""
        if self.line is not None:
            column = f":{self.column}" if self.column is not None else ""
            return f"{self.file}:{self.line}{column}"
        return f"{self.file}: {self.key}" if self.key else self.file

    def render(self) -> str:
        """What the command line prints (the message already names the context it has)."""
        return f"plcrun: {self}"


class UsageError(PlcrunError):
    """A problem with how plcrun was called: a missing file, a bad option (exit code 2)."""

    exit_code = EXIT_USAGE
