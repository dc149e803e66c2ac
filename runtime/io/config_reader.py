"""Typed reading of parsed TOML tables for every configuration file plcrun reads.

A ``TableReader`` wraps one table and the dotted key it sits at. Each getter checks type and range
and reports a bad entry as ``ConfigError(file, dotted key, problem)``; ``finish()`` reports every key
nobody asked for, with a did-you-mean hint, so a misspelt option is never silently ignored.

Where problems go is the reader's ``ProblemPolicy``: ``FailFast`` raises the first one (the MQTT,
EVerest, server and scenario tables), ``CollectAll`` keeps going and raises them all together at the
end (the site configuration). A getter without a default makes its key required; under
``CollectAll`` pass a fallback default (with ``required=True``) so that reading can go on.

``Wording`` holds the message templates. ``WORDING`` is the default; ``SITE_WORDING`` and
``SCENARIO_WORDING`` keep the phrasing that the site configuration and the scenario files (their
tests and docs) were written with.
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import math
import os
import re
import reprlib
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from .config_errors import ConfigError
from .credentials import CredentialError, is_credential_reference, resolve_secret_path

_T = TypeVar("_T")
_N = TypeVar("_N", int, float)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# the default of a getter whose key must be present; typed Any so that omitting it types as the value
REQUIRED: Any = _Required()


class _Absent(enum.Enum):
    ABSENT = 0


_ABSENT = _Absent.ABSENT


@dataclass(frozen=True)
class Wording:
    """Message templates. ``{value}``, ``{minimum}`` and ``{maximum}`` arrive formatted, ``{unit}`` with
    its leading space; ``between`` (both bounds given) may be None to use ``below``/``above``."""

    missing: str = "is required"
    wrong_type: str = "must be {expected}, not {got}"
    below: str = "must be at least {minimum}{unit}, got {value}{unit}"
    above: str = "must be at most {maximum}{unit}, got {value}{unit}"
    between: str | None = "must be between {minimum} and {maximum}{unit}, got {value}{unit}"
    not_positive: str = "must be above 0, got {value}"
    not_one_of: str = "must be one of {options}, got {value}"


WORDING = Wording()
SITE_WORDING = Wording(
    missing="missing (required)",
    below="{value}{unit} is below the minimum {minimum}{unit}",
    above="{value}{unit} is above the maximum {maximum}{unit}",
    between=None,
    not_one_of="{value} is not one of {options}",
)
SCENARIO_WORDING = Wording(
    missing="required key is missing",
    wrong_type="expected {expected}, got {got}",
    below="must be >= {minimum}{unit}, got {value}{unit}",
    above="must be <= {maximum}{unit}, got {value}{unit}",
    between=None,
    not_positive="must be > 0, got {value}",
    not_one_of="unknown value {value} (expected one of: {options})",
)


class ConfigProblems(ConfigError):
    """Every problem found in one file; ``problems`` lists them one by one."""

    subject = "the file"

    def __init__(self, file: str, problems: Sequence[ConfigError]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            only = self.problems[0]
            super().__init__(file, only.key, only.problem)
            return
        lines = [f"{len(self.problems)} problems in {self.subject}:"]
        lines += [f"  {p.key}: {p.problem}" if p.key else f"  {p.problem}" for p in self.problems]
        super().__init__(file, "", "\n".join(lines))


class ProblemPolicy:
    """The problems of one file and what happens to them: raised at once or collected."""

    fail_fast = True

    def __init__(self, file: str, wording: Wording = WORDING) -> None:
        self.file = file
        self.wording = wording
        self.errors: list[ConfigError] = []

    def add(self, key: str, problem: str) -> None:
        self.errors.append(ConfigError(self.file, key, problem))
        if self.fail_fast:
            self.stop()

    def stop(self) -> NoReturn:
        """Reading cannot go on (a required value is unusable): raise what was found."""
        raise self.error()

    def raise_if_any(self) -> None:
        if self.errors:
            raise self.error()

    def error(self) -> ConfigError:
        return self.errors[-1]


class FailFast(ProblemPolicy):
    """The first problem is raised as a plain ``ConfigError``."""


class CollectAll(ProblemPolicy):
    """Problems are collected; ``raise_if_any()`` raises them together as ``error_type``."""

    fail_fast = False
    error_type: type[ConfigProblems] = ConfigProblems

    def error(self) -> ConfigError:
        return self.error_type(self.file, self.errors)


def join_key(parent: str, name: str) -> str:
    """Dotted TOML key; names that are not bare keys are quoted, as TOML writes them."""
    part = name if _BARE_KEY.match(name) else '"' + name.replace('"', '\\"') + '"'
    return f"{parent}.{part}" if parent else part


def did_you_mean(word: str, candidates: list[str] | Mapping[str, object]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    matches = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    if not matches:
        return ""
    if len(matches) == 1:
        return f" (did you mean '{matches[0]}'?)"
    return " (did you mean " + ", ".join(f"'{m}'" for m in matches[:-1]) + f" or '{matches[-1]}'?)"


def type_name(value: object) -> str:
    """TOML's name for the type of ``value`` (what the engineer wrote)."""
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


# bool before int (a bool is an int in Python), datetime before date (likewise)
_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
    (datetime, "a date-time"),
    (date, "a date"),
    (time, "a time"),
)


def _got(value: object) -> str:
    """What was found: the type, or for an array its (shortened) contents."""
    return reprlib.repr(value) if isinstance(value, list) else type_name(value)


def _show(number: float) -> str:
    """``5`` for 5.0, ``0.25`` for 0.25: a bound or value as the engineer would write it."""
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return str(number)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_number_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)


def _is_list_of(accept: Callable[[object], bool], non_empty: bool = False) -> Callable[[object], bool]:
    return lambda value: (
        isinstance(value, list) and (bool(value) or not non_empty) and all(map(accept, value))
    )


class TableReader:
    """One TOML table plus the dotted key it sits at; problems go to ``problems``."""

    def __init__(self, data: Mapping[str, Any], key: str, problems: ProblemPolicy) -> None:
        self.data = data
        self.key = key
        self.problems = problems
        self._used: set[str] = set()

    @property
    def file(self) -> str:
        return self.problems.file

    def key_of(self, name: str) -> str:
        return join_key(self.key, name)

    def problem(self, name: str, text: str) -> None:
        """Report a problem with entry ``name`` (the table itself when empty); fail-fast raises it."""
        self.problems.add(self.key_of(name) if name else self.key, text)

    def fail(self, name: str, text: str) -> NoReturn:
        """Report a problem after which this table cannot be read on."""
        self.problem(name, text)
        self.problems.stop()

    def has(self, name: str) -> bool:
        return name in self.data

    def mark_used(self, name: str) -> None:
        """The key was dealt with (e.g. reported as misplaced): ``finish`` will not call it unknown."""
        self._used.add(name)

    # -- looking entries up: each step gives the value, or _ABSENT once a problem is reported --------
    def _report(self, key: str, problem: str, default: object) -> _Absent:
        """Report ``problem``; when the key is required there is nothing to go on with: stop."""
        self.problems.add(key, problem)
        if default is REQUIRED:
            self.problems.stop()
        return _ABSENT

    def _get(
        self, name: str, default: object, required: bool, expected: str, accept: Callable[[object], bool]
    ) -> Any:
        """The entry ``name`` if present and accepted by ``accept``, else ``_ABSENT``."""
        self._used.add(name)
        if name not in self.data:
            if default is REQUIRED or required:
                return self._report(self.key_of(name), self.problems.wording.missing, default)
            return _ABSENT
        value = self.data[name]
        if not accept(value):
            return self._report(self.key_of(name), self._wrong_type(expected, _got(value)), default)
        return value

    def _wrong_type(self, expected: str, got: str) -> str:
        return self.problems.wording.wrong_type.format(expected=expected, got=got)

    def _in_range(
        self, key: str, value: _N, default: object, minimum: float | None, maximum: float | None, unit: str
    ) -> _N | _Absent:
        low = minimum is not None and value < minimum
        high = maximum is not None and value > maximum
        if not (low or high):
            return value
        wording = self.problems.wording
        template = wording.below if low else wording.above
        if minimum is not None and maximum is not None and wording.between is not None:
            template = wording.between
        shown = {"minimum": _show(minimum or 0), "maximum": _show(maximum or 0), "value": _show(value)}
        return self._report(key, template.format(unit=f" {unit}" if unit else "", **shown), default)

    def _string(
        self, name: str, default: object, required: bool, choices: Iterable[str] | None, allow_empty: bool
    ) -> str | _Absent:
        value = self._get(name, default, required, "a string", lambda v: isinstance(v, str))
        if isinstance(value, _Absent):
            return value
        text: str = value
        allowed = tuple(choices or ())
        if not allow_empty and not text.strip():
            return self._report(self.key_of(name), "must not be empty", default)
        if allowed and text not in allowed:
            options = ", ".join(repr(c) for c in allowed)
            problem = self.problems.wording.not_one_of.format(value=repr(text), options=options)
            return self._report(self.key_of(name), problem + did_you_mean(text, list(allowed)), default)
        return text

    def _number(self, name: str, default: object, required: bool, positive: bool) -> float | _Absent:
        value = self._get(name, default, required, "a number", _is_number)
        if isinstance(value, _Absent):
            return value
        number = float(value)
        if not math.isfinite(number):
            return self._report(self.key_of(name), self._wrong_type("a finite number", str(number)), default)
        if positive and number <= 0:
            problem = self.problems.wording.not_positive.format(value=_show(number))
            return self._report(self.key_of(name), problem, default)
        return number

    def _path(self, name: str, default: object, required: bool) -> Path | _Absent:
        text = self._string(name, default, required, None, False)
        if isinstance(text, _Absent):
            return text
        if is_credential_reference(text):  # the file systemd put in $CREDENTIALS_DIRECTORY
            try:
                return Path(resolve_secret_path(text))
            except CredentialError as error:
                return self._report(self.key_of(name), str(error), default)
        path = Path(text).expanduser()
        return path if path.is_absolute() else Path(self.file).resolve().parent / path

    # -- typed getters: without a default the key is required --------------------------------------
    def raw(self, name: str, default: _T = REQUIRED, *, required: bool = False) -> Any:
        """The entry as TOML gave it, unchecked."""
        value = self._get(name, default, required, "", lambda _v: True)
        return default if value is _ABSENT else value

    def string(
        self,
        name: str,
        default: _T = REQUIRED,
        *,
        required: bool = False,
        choices: Iterable[str] | None = None,
        allow_empty: bool = False,
    ) -> str | _T:
        """A string, not blank unless ``allow_empty``; one of ``choices`` when they are given."""
        value = self._string(name, default, required, choices, allow_empty)
        return default if value is _ABSENT else value

    def integer(
        self,
        name: str,
        default: _T = REQUIRED,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
        unit: str = "",
    ) -> int | _T:
        """An integer within the bounds; a float (even 3.0) or a boolean is refused."""
        value = self._get(name, default, required, "an integer", _is_integer)
        if value is _ABSENT:
            return default
        checked: int | _Absent = self._in_range(self.key_of(name), value, default, minimum, maximum, unit)
        return default if checked is _ABSENT else checked

    def number(
        self,
        name: str,
        default: _T = REQUIRED,
        *,
        required: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
    ) -> float | _T:
        """A finite number within the bounds (integers are taken); ``positive``: above 0."""
        value = self._number(name, default, required, positive)
        if value is not _ABSENT:
            value = self._in_range(self.key_of(name), value, default, minimum, maximum, "")
        return default if value is _ABSENT else value

    def boolean(self, name: str, default: _T = REQUIRED, *, required: bool = False) -> bool | _T:
        """``true`` or ``false``; 0, 1 and strings are refused."""
        value = self._get(name, default, required, "true or false", lambda v: isinstance(v, bool))
        return default if value is _ABSENT else bool(value)

    def string_list(self, name: str, default: _T = REQUIRED, *, required: bool = False) -> list[str] | _T:
        """An array of strings (it may be empty)."""
        accept = _is_list_of(lambda v: isinstance(v, str))
        value = self._get(name, default, required, "an array of strings", accept)
        return default if value is _ABSENT else list(value)

    def integer_list(
        self, name: str, default: _T = REQUIRED, *, minimum: int | None = None, maximum: int | None = None
    ) -> list[int] | _T:
        """A non-empty array of integers, each within the bounds."""
        accept = _is_list_of(_is_integer, non_empty=True)
        value = self._get(name, default, False, "a non-empty array of integers", accept)
        if value is _ABSENT:
            return default
        for item in value:
            if self._in_range(self.key_of(name), item, default, minimum, maximum, "") is _ABSENT:
                return default
        return list(value)

    def range_pair(self, name: str) -> tuple[float, float] | None:
        """Optional ``[low, high]`` with low < high."""
        value = self._get(name, None, False, "an array of two numbers [low, high]", _is_number_pair)
        if value is _ABSENT:
            return None
        low, high = float(value[0]), float(value[1])
        if not low < high:
            self.problem(name, f"low {_show(low)} must be below high {_show(high)}")
            return None
        return low, high

    def pairs(self, name: str, default: _T = REQUIRED) -> tuple[tuple[float, float], ...] | _T:
        """A non-empty array of ``[x, y]`` number pairs, e.g. ``points = [[0, 50.0], [10, 49.8]]``."""
        accept = _is_list_of(lambda _v: True, non_empty=True)
        value = self._get(name, default, False, "a non-empty array of [time, value] pairs", accept)
        if value is _ABSENT:
            return default
        for index, item in enumerate(value):
            if not _is_number_pair(item):
                key = f"{self.key_of(name)}[{index}]"
                self._report(key, self._wrong_type("a [number, number] pair", repr(item)), default)
                return default
        return tuple((float(x), float(y)) for x, y in value)

    def path(self, name: str, default: _T = REQUIRED, *, required: bool = False) -> Path | _T:
        """A file-system path; a relative one is relative to the configuration file's folder;
        ``credential:NAME`` is the systemd credential NAME (``plcrun.io.credentials``)."""
        value = self._path(name, default, required)
        return default if value is _ABSENT else value

    def existing_file(
        self, name: str, default: _T = REQUIRED, *, required: bool = False, private: bool = False
    ) -> Path | _T:
        """A readable regular file; ``private`` (key files): no access for group or others (0600)."""
        path = self._path(name, default, required)
        if path is _ABSENT:
            return default
        problem = _file_problem(path, private)
        if problem is not None:
            self._report(self.key_of(name), problem, default)
            return default
        return path

    # -- tables --------------------------------------------------------------------------------------
    def table(self, name: str) -> TableReader | None:
        """The sub-table ``name``, or None when it is absent."""
        value = self._get(name, None, False, "a table", _is_table)
        return None if value is _ABSENT else TableReader(value, self.key_of(name), self.problems)

    def table_or_empty(self, name: str, *, required: bool = False) -> TableReader:
        """The sub-table ``name``; an absent one reads as empty (its keys take their defaults)."""
        value = self._get(name, None, required, "a table", _is_table)
        return TableReader({} if value is _ABSENT else value, self.key_of(name), self.problems)

    def raw_table(self, name: str) -> dict[str, Any] | None:
        """A table handed on unchecked (it belongs to another part of plcrun)."""
        value = self._get(name, None, False, "a table", _is_table)
        return None if value is _ABSENT else value

    def tables(self, name: str) -> list[TableReader]:
        """An array of tables (``[[name]]``), keyed ``name[0]``, ``name[1]``...; absent means empty."""
        expected = f"an array of tables ([[{self.key_of(name)}]])"
        value = self._get(name, None, False, expected, lambda v: isinstance(v, list))
        items = [] if value is _ABSENT else value
        entries = [(str(index), f"{self.key_of(name)}[{index}]", item) for index, item in enumerate(items)]
        return [reader for _index, reader in self._readers(entries)]

    def sub_tables(self) -> list[tuple[str, TableReader]]:
        """Every entry not read yet, each a table (``[key.<name>]``); marks them all read."""
        names = [name for name in self.data if name not in self._used]
        self._used.update(names)
        return self._readers([(name, self.key_of(name), self.data[name]) for name in names])

    def _readers(self, entries: list[tuple[str, str, Any]]) -> list[tuple[str, TableReader]]:
        """A reader for each ``(name, key, value)`` whose value is a table; the others are reported."""
        readers = []
        for name, key, value in entries:
            if _is_table(value):
                readers.append((name, TableReader(value, key, self.problems)))
            else:
                self.problems.add(key, self._wrong_type("a table", _got(value)))
        return readers

    def items(self) -> Iterator[tuple[str, Any]]:
        """All entries (marking them read): for tables keyed by free names like devices or points."""
        for name, value in self.data.items():
            self._used.add(name)
            yield name, value

    def finish(self, allowed_hint: Iterable[str] = ()) -> None:
        """Report every key that was never read, with a did-you-mean hint."""
        known = sorted(self._used | set(allowed_hint))
        for name in self.data:
            if name not in self._used:
                hint = did_you_mean(name, [k for k in known if k != name])
                self.problem(name, f"unknown key '{name}'{hint}")


def _is_table(value: object) -> bool:
    return isinstance(value, dict)


def _file_problem(path: Path, private: bool) -> str | None:
    """Why ``path`` is not a readable regular file (or, with ``private``, not a mode 0600 key file)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"file {path} does not exist"
    except OSError as error:
        return f"cannot read {path}: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK):
        return f"file {path} is not readable"
    mode = stat.S_IMODE(info.st_mode)
    if private and mode & 0o077:
        return f"file {path} has mode {mode:04o}; a key file must be mode 0600 (chmod 600)"
    return None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.1``, ``::1``, ``[::1]``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
