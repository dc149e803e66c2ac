"""Typed reading of parsed TOML tables with errors that name the file, the dotted key and the problem.

The scenario loader reads every table through a ``TableReader``: each accessor checks type and range,
remembers which keys were used, and ``finish()`` rejects keys nobody asked for (typos).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NoReturn

from ..config_errors import ConfigError

_MISSING = object()


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class TableReader:
    """One TOML table plus where it came from; accessors raise ``ConfigError`` on bad values."""

    def __init__(self, data: Mapping[str, object], file: str, key: str = "") -> None:
        self.data = data
        self.file = file
        self.key = key
        self._used: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ConfigError(self.file, self.path(name), problem)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: object = _MISSING) -> object:
        self._used.add(name)
        if name not in self.data:
            if default is _MISSING:
                self.fail(name, "required key is missing")
            return default
        return self.data[name]

    def number(
        self,
        name: str,
        default: float | object = _MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float:
        if name not in self.data and isinstance(default, int | float):
            self._used.add(name)
            return float(default)
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, f"expected a number, got {_describe(value)}")
        number = float(value)
        if not math.isfinite(number):
            self.fail(name, f"expected a finite number, got {number}")
        if positive and number <= 0:
            self.fail(name, f"must be > 0, got {number:g}")
        if minimum is not None and number < minimum:
            self.fail(name, f"must be >= {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            self.fail(name, f"must be <= {maximum:g}, got {number:g}")
        return number

    def optional_number(
        self, name: str, *, minimum: float | None = None, maximum: float | None = None, positive: bool = False
    ) -> float | None:
        if name not in self.data:
            self._used.add(name)
            return None
        return self.number(name, minimum=minimum, maximum=maximum, positive=positive)

    def integer(self, name: str, default: int | object = _MISSING, *, minimum: int | None = None) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"expected an integer, got {_describe(value)}")
        if minimum is not None and value < minimum:
            self.fail(name, f"must be >= {minimum}, got {value}")
        return value

    def boolean(self, name: str, default: bool | object = _MISSING) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            self.fail(name, f"expected true or false, got {_describe(value)}")
        return value

    def string(self, name: str, default: str | object = _MISSING, *, choices: Iterable[str] = ()) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str):
            self.fail(name, f"expected a string, got {_describe(value)}")
        allowed = tuple(choices)
        if allowed and value not in allowed:
            self.fail(name, f"unknown value {value!r} (expected one of: {', '.join(allowed)})")
        return value

    def optional_string(self, name: str, *, choices: Iterable[str] = ()) -> str | None:
        if name not in self.data:
            self._used.add(name)
            return None
        return self.string(name, choices=choices)

    def pairs(self, name: str) -> tuple[tuple[float, float], ...]:
        """An array of ``[x, y]`` number pairs, e.g. ``points = [[0, 50.0], [10, 49.8]]``."""
        value = self.raw(name)
        if not isinstance(value, list) or not value:
            self.fail(name, "expected a non-empty array of [time_s, value] pairs")
        result: list[tuple[float, float]] = []
        for index, item in enumerate(value):
            ok = isinstance(item, list) and len(item) == 2
            ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in item)
            if not ok:
                self.fail(f"{name}[{index}]", f"expected a [number, number] pair, got {item!r}")
            result.append((float(item[0]), float(item[1])))
        return tuple(result)

    def table(self, name: str, *, required: bool = False) -> TableReader:
        value = self.raw(name, _MISSING if required else {})
        if not isinstance(value, dict):
            self.fail(name, f"expected a table, got {_describe(value)}")
        return TableReader(value, self.file, self.path(name))

    def tables(self, name: str) -> list[TableReader]:
        """An array of tables (``[[name]]``); missing means empty."""
        value = self.raw(name, [])
        if not isinstance(value, list):
            self.fail(name, f"expected an array of tables ([[{self.path(name)}]]), got {_describe(value)}")
        readers = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.fail(f"{name}[{index}]", f"expected a table, got {_describe(item)}")
            readers.append(TableReader(item, self.file, f"{self.path(name)}[{index}]"))
        return readers

    def finish(self) -> None:
        """Reject keys that no accessor asked for (most often a typo)."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            known = ", ".join(sorted(self._used)) or "none"
            self.fail(unknown[0], f"unknown key (known keys here: {known})")
