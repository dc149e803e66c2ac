"""Program parameters set from the site file (``[parameters]``) and the command line (``--set``).

A commissioning engineer sets the program's parameters where the site is described::

    [parameters]
    "main.n_evs" = 2
    "main.service" = "FCR"               # an enumeration by name (SVC_FCR; the common prefix may go)
    "main.p_contracted_w" = 10000.0
    "main.plausible_hz" = [47.0, 52.0]   # an array, from its first element
    "main.evs[1].bidirectional_allowed" = true

or ``plcrun run prog.st --set main.n_evs=2 --set main.service=FCR``. Every entry is checked against the
compiled program before anything starts: the path must name a variable (did-you-mean otherwise), the
value must fit its type and range, and the target may be neither a CONSTANT nor an input that a device
or the simulation feeds (the driver would overwrite it). The values are written before the first scan
and again after every online change (``ExecutorConfig.parameters``), after RETAIN values are restored:
the site file wins over what was retained.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ..compiler import st_types as T
from ..compiler.value_check import ValueProblem, parse_value
from ..state.program import CompiledProgram, PathError, ProgramState
from .config_errors import ConfigError
from .config_reader import did_you_mean

TABLE = "parameters"


def set_option_entries(options: Iterable[str]) -> tuple[dict[str, object], list[ConfigError]]:
    """``--set PATH=VALUE`` options as (path -> value): VALUE is read like a TOML value (``7400``,
    ``true``, ``[1, 2]``, ``"text"``) and otherwise taken as text (``FCR``, ``T#2s``)."""
    entries: dict[str, object] = {}
    problems: list[ConfigError] = []
    for option in options:
        path, sep, text = option.partition("=")
        path = path.strip()
        if not sep or not path:
            problems.append(ConfigError("--set", option, "write PATH=VALUE, e.g. --set main.n_evs=2"))
            continue
        entries[path] = _toml_value(text.strip())
    return entries, problems


def _toml_value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, object]:
    """``main.service = "FCR"`` (TOML makes a nested table of it) and ``"main.service" = "FCR"``
    both give the path ``main.service``."""
    out: dict[str, object] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


class ParameterChecker:
    """Checks parameter entries against one compiled program (a fresh state gives the ST types)."""

    def __init__(self, program: CompiledProgram, fed_inputs: Collection[str] = ()) -> None:
        self.program = program
        self.state: ProgramState = program.new_state()
        self.fed = {p.lower() for p in fed_inputs}
        self._names: list[str] | None = None

    def check(
        self, entries: Mapping[str, object], file: str, key_prefix: str
    ) -> tuple[dict[str, object], list[ConfigError]]:
        values: dict[str, object] = {}
        problems: list[ConfigError] = []
        for path, value in entries.items():
            key = f"--set {path}" if key_prefix == "--set" else f'{key_prefix}."{path}"'
            try:
                values.update(self.one(path, value))
            except ValueProblem as why:
                problems.append(ConfigError(file, key, str(why)))
        return values, problems

    def one(self, path: str, value: object) -> dict[str, object]:
        """The elementary writes of one entry (an array gives one per element); ValueProblem if wrong."""
        lowered = path.strip().lower()
        try:
            accessor = self.state.accessor(lowered)
        except PathError:
            raise ValueProblem(self._unknown(lowered)) from None
        t = T.underlying(accessor.type)
        if isinstance(t, T.ArrayType):
            return self._array(lowered, t, value)
        if isinstance(value, list):
            raise ValueProblem(f"'{lowered}' is a {accessor.type.display}, not an array")
        self._writable(lowered)
        return {lowered: self._value(value, accessor.type)}

    def _array(self, path: str, t: T.ArrayType, value: object) -> dict[str, object]:
        if len(t.dims) != 1:
            raise ValueProblem(f"'{path}' has {len(t.dims)} dimensions: set its elements one by one")
        if not isinstance(value, list):
            raise ValueProblem(f"'{path}' is an array: give a list, e.g. [1.0, 2.0]")
        low, high = t.dims[0]
        if len(value) > high - low + 1:
            raise ValueProblem(f"{len(value)} values do not fit '{path}' ({high - low + 1} elements)")
        out: dict[str, object] = {}
        for offset, item in enumerate(value):
            element = f"{path}[{low + offset}]"
            out.update(self.one(element, item))
        return out

    def _writable(self, path: str) -> None:
        desc = self.program.leaf(path)
        if desc is None:  # a structure or function block instance
            raise ValueProblem(f"'{path}' is structured: set its elements one by one")
        if desc.constant:
            raise ValueProblem(f"'{path}' is a CONSTANT: it cannot be set at start")
        if path in self.fed:
            raise ValueProblem(
                f"'{path}' is an input fed by a device or the simulation: the next sample would overwrite it"
            )

    @staticmethod
    def _value(value: object, t: T.Type) -> object:
        u = T.underlying(t)
        if isinstance(u, T.EnumType) and isinstance(value, str) and value.strip().upper() not in u.values:
            matches = [name for name in u.values if name.endswith("_" + value.strip().upper())]
            if len(matches) == 1:  # "FCR" for SVC_FCR: the common prefix may be left out
                value = matches[0]
        try:
            return parse_value(value, t)
        except ValueProblem as why:
            raise ValueProblem(f"{why} ({t.display})" if t.display not in str(why) else str(why)) from None

    def _unknown(self, path: str) -> str:
        if self._names is None:
            names = {d.path for d in self.program.variables()}
            names.update(d.path for d in self.program.variables(leaves=True) if "[" not in d.path)
            self._names = sorted(names)
        base = path.split("[", 1)[0]
        hint = did_you_mean(path, self._names) or did_you_mean(base, self._names)
        return f"unknown variable '{path}': the program has no such variable{hint}"


def check_parameters(
    program: CompiledProgram,
    sources: Iterable[tuple[str, str, Mapping[str, object]]],
    fed_inputs: Collection[str] = (),
) -> tuple[dict[str, object], list[ConfigError]]:
    """Check parameter tables, later sources winning: (file, key prefix, entries) for the site file's
    ``[parameters]`` and then the ``--set`` options. Returns the writes and every problem found."""
    checker = ParameterChecker(program, fed_inputs)
    values: dict[str, object] = {}
    problems: list[ConfigError] = []
    for file, prefix, entries in sources:
        found, wrong = checker.check(entries, file, prefix)
        values.update(found)
        problems.extend(wrong)
    return values, problems
