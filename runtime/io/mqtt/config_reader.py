"""Typed access to one TOML table with errors that name the file and the dotted key.

Every getter removes the key it read, so ``finish()`` can report whatever is left as an unknown key
(a misspelt option must not be silently ignored).
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any, NoReturn

from ..config_errors import ConfigError

_REQUIRED: Any = object()


def type_name(value: object) -> str:
    """TOML's name for the type of ``value`` (what the engineer wrote)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class TableReader:
    """Reads the entries of ``table`` found at the dotted path ``prefix`` in ``file``."""

    def __init__(self, table: object, file: str, prefix: str) -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(table, dict):
            raise ConfigError(file, prefix, f"must be a table, not {type_name(table)}")
        self._entries: dict[str, Any] = dict(table)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ConfigError(self.file, self.key(name), problem)

    def has(self, name: str) -> bool:
        return name in self._entries

    def _take(self, name: str, default: Any) -> Any:
        if name in self._entries:
            return self._entries.pop(name)
        if default is _REQUIRED:
            self.fail(name, "is required")
        return default

    def string(self, name: str, default: Any = _REQUIRED, *, allow_empty: bool = False) -> Any:
        value = self._take(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if not isinstance(value, str):
            self.fail(name, f"must be a string, not {type_name(value)}")
        if not allow_empty and not value.strip():
            self.fail(name, "must not be empty")
        return value

    def integer(self, name: str, default: Any = _REQUIRED, *, minimum: int, maximum: int) -> Any:
        value = self._take(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"must be an integer, not {type_name(value)}")
        if not minimum <= value <= maximum:
            self.fail(name, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def number(self, name: str, default: Any = _REQUIRED, *, minimum: float, maximum: float) -> Any:
        value = self._take(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, f"must be a number, not {type_name(value)}")
        if not math.isfinite(value) or not minimum <= value <= maximum:
            self.fail(name, f"must be between {minimum:g} and {maximum:g}, got {value}")
        return float(value)

    def boolean(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self._take(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false, not {type_name(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> Any:
        value = self.string(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if value not in choices:
            self.fail(name, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    def string_list(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self._take(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(name, "must be an array of strings")
        return tuple(value)

    def table(self, name: str) -> TableReader | None:
        """The sub-table ``name``, or None when it is absent."""
        if name not in self._entries:
            return None
        return TableReader(self._entries.pop(name), self.file, self.key(name))

    def table_list(self, name: str) -> list[TableReader]:
        """An array of tables (``[[prefix.name]]``); empty when absent."""
        value = self._take(name, [])
        if not isinstance(value, list):
            self.fail(name, f"must be an array of tables, not {type_name(value)}")
        readers = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            if not isinstance(item, dict):
                raise ConfigError(self.file, key, f"must be a table, not {type_name(item)}")
            readers.append(TableReader(item, self.file, key))
        return readers

    def sub_tables(self) -> list[tuple[str, TableReader]]:
        """All remaining entries, each of which must be a table (``[prefix.<name>]``)."""
        found = [
            (name, TableReader(value, self.file, self.key(name))) for name, value in self._entries.items()
        ]
        self._entries.clear()
        return found

    def path(self, name: str, default: Any = _REQUIRED) -> Any:
        """A file-system path; relative paths are relative to the configuration file's folder."""
        value = self.string(name, default)
        if value is default and default is not _REQUIRED:
            return value
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = Path(self.file).resolve().parent / path
        return path

    def existing_file(self, name: str, default: Any = _REQUIRED, *, private: bool = False) -> Any:
        """A readable regular file; with ``private`` it must not be accessible by group or others."""
        path = self.path(name, default)
        if path is default and default is not _REQUIRED:
            return path
        try:
            info = path.stat()
        except FileNotFoundError:
            self.fail(name, f"file {path} does not exist")
        except OSError as error:
            self.fail(name, f"cannot read {path}: {error.strerror}")
        if not stat.S_ISREG(info.st_mode):
            self.fail(name, f"{path} is not a regular file")
        if not os.access(path, os.R_OK):
            self.fail(name, f"file {path} is not readable")
        mode = stat.S_IMODE(info.st_mode)
        if private and mode & 0o077:
            self.fail(name, f"file {path} has mode {mode:04o}; a key file must be mode 0600 (chmod 600)")
        return path

    def finish(self) -> None:
        """Fail on the first entry nobody asked for."""
        for name in self._entries:
            self.fail(name, "unknown key")
