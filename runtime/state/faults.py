"""Turn an exception raised by generated code into a runtime fault that names the ST file and line."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from .support import ScanAborted, STFault


@dataclass(frozen=True)
class RuntimeFault:
    file: str
    line: int
    message: str
    source_line: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: runtime fault: {self.message}"


_MESSAGES = {
    ZeroDivisionError: "division by zero",
    IndexError: "array index out of bounds",
    OverflowError: "numeric overflow",
    RecursionError: "calls nested too deeply",
}


_LINE_TABLES: dict[str, list[tuple[str, int]]] = {}


def register_line_table(filename: str, table: list[tuple[str, int]]) -> None:
    """Frames of ``filename`` (a native build's source) map line n to ``table[n - 1]``: an ST file and line."""
    _LINE_TABLES[filename] = table


def describe_fault(error: BaseException, st_files: set[str] | dict[str, str]) -> RuntimeFault:
    """The innermost frame of ``error``'s traceback that belongs to an ST file, and a plain message."""
    file, line = "<unknown>", 0
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename in st_files:
            file, line = frame.filename, frame.lineno or 0
        elif (table := _LINE_TABLES.get(frame.filename)) and 0 < (frame.lineno or 0) <= len(table):
            st_file, st_line = table[(frame.lineno or 0) - 1]
            if st_file in st_files and st_line > 0:
                file, line = st_file, st_line
    if isinstance(error, STFault | ScanAborted):
        message = str(error)
    else:
        message = next((text for kind, text in _MESSAGES.items() if isinstance(error, kind)), None) or (
            f"{type(error).__name__}: {error}"
        )
    source_line = ""
    if isinstance(st_files, dict) and file in st_files and line > 0:
        lines = st_files[file].splitlines()
        if line <= len(lines):
            source_line = lines[line - 1].strip()
    return RuntimeFault(file, line, message, source_line)
