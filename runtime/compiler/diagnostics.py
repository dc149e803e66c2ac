"""Positioned diagnostics for Structured Text sources.

Every mistake in a ``.st`` file is reported as ``file:line:col: error[CODE]: message`` followed by the
source line and a caret under the offending token, and optionally a hint line. Diagnostics are
collected in a ``DiagnosticBag`` so one run reports as many problems as it can find.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import PlcrunError


class Pos(NamedTuple):
    """A 1-based position in a source file."""

    file: str
    line: int
    col: int


NO_POS = Pos("<builtin>", 0, 0)


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


# The catalogue of diagnostic codes; docs/diagnostics.md explains each one.
CODES: dict[str, str] = {
    # lexical and syntax (E00xx)
    "E0001": "syntax error",
    "E0002": "unterminated comment",
    "E0003": "unterminated string literal",
    "E0004": "invalid character",
    "E0005": "invalid literal",
    "E0006": "inline C code is not supported",
    "E0007": "unsupported construct",
    "E0008": "source file cannot be read",
    "E0009": "nested too deeply",
    "E0010": "invalid identifier",
    # declarations and names (E01xx)
    "E0101": "unknown identifier",
    "E0102": "duplicate declaration",
    "E0103": "unknown type",
    "E0104": "unknown member",
    "E0105": "unknown function or function block",
    "E0106": "invalid declaration",
    "E0107": "assignment to a constant or input",
    "E0108": "missing external global",
    "E0109": "invalid configuration",
    "E0110": "recursive definition",
    # types (E02xx)
    "E0201": "type mismatch",
    "E0202": "value out of range",
    "E0203": "invalid operand",
    "E0204": "not indexable",
    "E0205": "wrong number of indices",
    "E0206": "constant expression required",
    "E0207": "index out of bounds",
    "E0208": "invalid bit access",
    # calls (E03xx)
    "E0301": "unknown parameter",
    "E0302": "wrong number of arguments",
    "E0303": "not callable",
    "E0304": "invalid output binding",
    "E0305": "mixed formal and positional arguments",
    "E0306": "missing VAR_IN_OUT argument",
    # statements (E04xx)
    "E0401": "EXIT or CONTINUE outside a loop",
    "E0402": "invalid FOR loop",
    "E0403": "duplicate CASE label",
    "E0404": "invalid CASE label",
    # warnings
    "W0001": "pragma skipped",
    "W0101": "unused variable",
    "W0201": "implicit narrowing conversion",
    "W0202": "ambiguous operator precedence",
    "W0203": "comparison of REAL values for equality",
    "W0301": "function block output never read",
    "W0401": "unreachable code",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    pos: Pos
    hint: str = ""
    length: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def headline(self) -> str:
        p = self.pos
        return f"{p.file}:{p.line}:{p.col}: {self.severity.value}[{self.code}]: {self.message}"

    def render(self, source_text: str | None) -> str:
        """The headline, the source line with a caret under the token, and the hint. Of a line
        longer than ``SHOWN_CHARS``, the part around the column (``...`` where it is cut)."""
        out = [self.headline()]
        if source_text is not None and self.pos.line > 0:
            lines = source_text.splitlines()
            if self.pos.line <= len(lines):
                text, col = _shown(lines[self.pos.line - 1], self.pos.col)
                gutter = f"{self.pos.line:>5} | "
                out.append(gutter + text)
                caret = "^" + "~" * max(0, min(self.length, len(text) - col + 1) - 1)
                out.append(" " * (len(gutter) - 2) + "| " + " " * (col - 1) + caret)
        if self.hint:
            out.append(f"      = hint: {self.hint}")
        return "\n".join(out)


SHOWN_CHARS = 160  # of a source line under a diagnostic (a generated or joined line can be huge)


def _shown(line: str, col: int) -> tuple[str, int]:
    """The line as shown (tabs as one space, so columns stay) and the caret's column in it."""
    if len(line) <= SHOWN_CHARS:
        return line.expandtabs(1), col
    start = max(0, min(col - 1 - SHOWN_CHARS // 2, len(line) - SHOWN_CHARS))
    head = "..." if start else ""
    tail = "..." if start + SHOWN_CHARS < len(line) else ""
    return head + line[start : start + SHOWN_CHARS].expandtabs(1) + tail, col - start + len(head)


@dataclass
class DiagnosticBag:
    """Collects diagnostics; the phases keep going after an error where they can."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, pos: Pos, hint: str = "", length: int = 1) -> None:
        self.items.append(Diagnostic(Severity.ERROR, code, message, pos, hint, length))

    def warning(self, code: str, message: str, pos: Pos, hint: str = "", length: int = 1) -> None:
        self.items.append(Diagnostic(Severity.WARNING, code, message, pos, hint, length))

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if not d.is_error]

    def sorted(self) -> list[Diagnostic]:
        unique = {(d.pos, d.code, d.message): d for d in self.items}
        return sorted(unique.values(), key=lambda d: (d.pos.file, d.pos.line, d.pos.col, d.code))


class CompileError(PlcrunError):
    """Raised when a source has errors; carries every diagnostic and the source texts to render them."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str]) -> None:
        self.diagnostics = diagnostics
        self.sources = sources
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0].headline() if errors else "compilation failed"
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        if errors:
            self.file, self.line, self.column = errors[0].pos.file, errors[0].pos.line, errors[0].pos.col
        super().__init__(first + more)

    def render(self) -> str:
        return "\n".join(d.render(self.sources.get(d.pos.file)) for d in self.diagnostics)
