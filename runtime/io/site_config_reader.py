"""Typed, problem-collecting access to the tables of a parsed TOML file.

Every getter checks type and range, records a problem (file, dotted key, what is wrong) instead of
raising, and returns a usable default so that checking can go on and report everything at once.
``finish()`` reports the keys nobody asked for, with a did-you-mean hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .config_errors import ConfigError
from .config_reader import did_you_mean

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def join_key(parent: str, name: str) -> str:
    """Dotted TOML key; names that are not bare keys are quoted, as TOML writes them."""
    part = name if _BARE_KEY.match(name) else '"' + name.replace('"', '\\"') + '"'
    return f"{parent}.{part}" if parent else part


class SiteConfigError(ConfigError):
    """All problems found in a site configuration; ``problems`` lists them one by one."""

    def __init__(self, file: str, problems: Sequence[ConfigError]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            only = self.problems[0]
            super().__init__(file, only.key, only.problem)
            return
        lines = [f"{len(self.problems)} problems in the site configuration:"]
        lines += [f"  {p.key}: {p.problem}" if p.key else f"  {p.problem}" for p in self.problems]
        super().__init__(file, "", "\n".join(lines))


class Problems:
    """Collects configuration problems of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ConfigError] = []

    def add(self, key: str, problem: str) -> None:
        self.errors.append(ConfigError(self.file, key, problem))

    def raise_if_any(self) -> None:
        if self.errors:
            raise SiteConfigError(self.file, self.errors)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class TableReader:
    """One TOML table plus the dotted key it sits at."""

    def __init__(self, data: Mapping[str, Any], key: str, problems: Problems) -> None:
        self.data = data
        self.key = key
        self.problems = problems
        self._used: set[str] = set()

    def key_of(self, name: str) -> str:
        return join_key(self.key, name)

    def problem(self, name: str, text: str) -> None:
        self.problems.add(self.key_of(name) if name else self.key, text)

    def has(self, name: str) -> bool:
        return name in self.data

    def mark_used(self, name: str) -> None:
        """The key was dealt with (e.g. reported as misplaced): ``finish`` will not call it unknown."""
        self._used.add(name)

    def _take(self, name: str, required: bool) -> Any:
        self._used.add(name)
        if name not in self.data:
            if required:
                self.problems.add(self.key_of(name), "missing (required)")
            return None
        return self.data[name]

    def text(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        choices: Sequence[str] | None = None,
    ) -> str | None:
        value = self._take(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(name, f"must be a string, not {_type_name(value)}")
            return default
        if choices is not None and value not in choices:
            options = ", ".join(f"'{c}'" for c in choices)
            self.problem(name, f"'{value}' is not one of {options}{did_you_mean(value, list(choices))}")
            return default
        return value

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
        unit: str = "",
    ) -> int | None:
        value = self._take(name, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"must be an integer, not {_type_name(value)}")
            return default
        checked: int | None = self._in_range(name, value, minimum, maximum, unit, default)
        return checked

    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        required: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        value = self._take(name, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(name, f"must be a number, not {_type_name(value)}")
            return default
        checked: float | None = self._in_range(name, float(value), minimum, maximum, "", default)
        return checked

    def _in_range(self, name: str, value: Any, minimum: Any, maximum: Any, unit: str, default: Any) -> Any:
        suffix = f" {unit}" if unit else ""
        if minimum is not None and value < minimum:
            self.problem(name, f"{value}{suffix} is below the minimum {minimum}{suffix}")
            return default
        if maximum is not None and value > maximum:
            self.problem(name, f"{value}{suffix} is above the maximum {maximum}{suffix}")
            return default
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._take(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(name, f"must be true or false, not {_type_name(value)}")
            return default
        return value

    def int_list(
        self, name: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> list[int] | None:
        value = self._take(name, False)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            self.problem(name, "must be a non-empty array of integers")
            return None
        for item in value:
            if (minimum is not None and item < minimum) or (maximum is not None and item > maximum):
                self.problem(name, f"{item} is outside {minimum}..{maximum}")
                return None
        return list(value)

    def str_list(self, name: str) -> list[str] | None:
        value = self._take(name, False)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(name, "must be an array of strings")
            return None
        return list(value)

    def range_pair(self, name: str) -> tuple[float, float] | None:
        """``[low, high]`` with low < high."""
        value = self._take(name, False)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            self.problem(name, "must be an array of two numbers [low, high]")
            return None
        low, high = float(value[0]), float(value[1])
        if not low < high:
            self.problem(name, f"low {low} must be below high {high}")
            return None
        return low, high

    def table(self, name: str, *, required: bool = False) -> TableReader | None:
        value = self._take(name, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(name, f"must be a table, not {_type_name(value)}")
            return None
        return TableReader(value, self.key_of(name), self.problems)

    def raw_table(self, name: str) -> dict[str, Any] | None:
        """A table handed on unchecked (it belongs to another part of plcrun)."""
        value = self._take(name, False)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(name, f"must be a table, not {_type_name(value)}")
            return None
        return value

    def items(self) -> Iterator[tuple[str, Any]]:
        """All entries (marks them used): for tables keyed by free names like devices or points."""
        for name, value in self.data.items():
            self._used.add(name)
            yield name, value

    def finish(self, allowed_hint: Sequence[str] = ()) -> None:
        """Report every key that was never read."""
        known = sorted(self._used | set(allowed_hint))
        for name in self.data:
            if name not in self._used:
                hint = did_you_mean(name, [k for k in known if k != name])
                self.problems.add(self.key_of(name), f"unknown key '{name}'{hint}")
