"""The process image: what drivers deliver is copied into program variables at the start of a scan
(and stays frozen during it), and output variables are handed to drivers after it.

Each driver belongs to one task (the task of the program instance its paths name; globals and
located addresses go to the highest-priority task). Inputs carry a quality and an acquisition time
that ST reads with ``QUALITY_OF``/``AGE_OF``. A *required* input that is not GOOD drives the task's
outputs to their safe values in the same scan, unless the program reads that input's quality itself.
"""

from __future__ import annotations

import logging
import math
import sys
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from ..errors import PlcrunError
from ..state.program import Accessor, CompiledProgram, PathError, ProgramState, to_json
from .driver_api import Driver, InputGroup, Quality, Sample
from .image_store import (
    BOOL,
    INT,
    LREAL,
    REAL,
    SLOW,
    Ages,
    GroupEntry,
    attribute_reader,
    fast_store,
    fit,
    unchanged_reader,
)
from .input_range import Check, misfit_check

log = logging.getLogger("plcrun.image")


class BindingError(PlcrunError, ValueError):
    """A driver names a variable the program does not have (refused before anything starts)."""


@dataclass
class InputPoint:
    path: str
    accessor: Accessor
    required: bool = False
    handled_by_program: bool = False
    quality: Quality = Quality.UNBOUND
    stamp_ns: int = 0
    value: Any = None
    misfit: Check | None = None  # why a value does not fit the variable's type (input_range.py)
    rejected: str = ""  # the last misfit reported, so a value held out of range logs once
    # the fast path of read_inputs: a value of the variable's own Python type that fits is stored
    # by ``store`` (one C-level call) without ``accessor.set``'s conversion calls (see image_store.fast_store)
    kind: int = 0
    low: int = 0
    high: int = 0
    store: Callable[[Any], Any] | None = None
    ages: Ages | None = None  # a soc_pct input: the ages its stamp feeds, at age_index
    age_index: int = -1


@dataclass
class DriverBinding:
    driver: Driver
    task: str
    inputs: dict[str, InputPoint] = field(default_factory=dict)
    outputs: dict[str, Accessor] = field(default_factory=dict)
    grouped: bool = False  # the driver delivers its inputs as groups (Driver.delivers_groups)


_SLOW, _LREAL, _REAL, _INT, _BOOL = SLOW, LREAL, REAL, INT, BOOL  # the kinds (image_store.py)
_ReadPlan = tuple[list[tuple[Driver, DriverBinding, bool]], list[InputPoint], Ages | None]
_NO_READS: _ReadPlan = ([], [], None)
_GOOD = Quality.GOOD
_GROUP_CACHE = 4096  # group entries kept; beyond that the cache starts again


def task_of_path(program: CompiledProgram, path: str) -> str:
    """The task that owns a process-image path."""
    head = path.split(".", 1)[0].split("[", 1)[0].lower()
    for inst in program.instances:
        if inst.name.lower() == head:
            return inst.task
    tasks = sorted(program.tasks, key=lambda t: (t.priority, t.interval_ns))
    return tasks[0].name


class ProcessImage:
    """Driver bindings of one program state; used on the scan thread only."""

    def __init__(
        self,
        program: CompiledProgram,
        state: ProgramState,
        drivers: list[Driver],
        required: set[str] | None = None,
        safe_overrides: Mapping[str, object] | None = None,
    ) -> None:
        self.program = program
        self.state = state
        self.bindings: list[DriverBinding] = []
        self.safe_overrides = dict(safe_overrides or {})
        required = {p.lower() for p in (required or set())}
        handled = {r.lower() for r in getattr(program.model, "quality_roots", set())}
        problems: list[str] = []
        for driver in drivers:
            paths = sorted(driver.input_paths() | driver.output_paths())
            if not paths:
                continue
            binding = DriverBinding(
                driver,
                task_of_path(program, paths[0]),
                grouped=bool(getattr(driver, "delivers_groups", False)),
            )
            for path in sorted(driver.input_paths()):
                try:
                    acc = state.accessor(path)
                except PathError as error:
                    problems.append(f"driver '{driver.name}': {error}")
                    continue
                root = _root_of(path)
                kind, low, high, store = fast_store(acc)
                binding.inputs[path] = InputPoint(
                    path,
                    acc,
                    path.lower() in required,
                    root in handled,
                    misfit=misfit_check(acc.type),
                    kind=kind,
                    low=low,
                    high=high,
                    store=store,
                )
            for path in sorted(driver.output_paths()):
                try:
                    binding.outputs[path] = state.accessor(path)
                except PathError as error:
                    problems.append(f"driver '{driver.name}': {error}")
            self.bindings.append(binding)
        if problems:
            raise BindingError("; ".join(problems))
        self._ages = self._age_companions()
        # paths whose input is not GOOD (UNBOUND at first) and paths whose last value was rejected:
        # a group of GOOD values none of whose paths is in either needs no per-input bookkeeping
        self._not_good = {path for b in self.bindings for path in b.inputs}
        self._rejected: set[str] = set()
        self._groups: dict[int, GroupEntry] = {}  # by id of the driver's paths tuple
        self._cell = memoryview(bytearray(4)).cast("f")  # binary32 rounding, as the REAL coercer does
        self._task_bindings: dict[str, list[DriverBinding]] = {}
        for binding in self.bindings:
            self._task_bindings.setdefault(binding.task, []).append(binding)
        self._output_reads = {
            id(binding): _output_reader(
                binding.outputs,
                getattr(binding.driver, "outputs_by_value", False)
                and not getattr(binding.driver, "masks_undelivered", False),
            )
            for binding in self.bindings
        }
        self._inputs_by_path = {path: point for b in self.bindings for path, point in b.inputs.items()}
        # per task: (driver, output reader, whether it masks undelivered inputs) of each binding with outputs
        self._task_outputs: dict[str, list[tuple[Driver, Callable[[], dict[str, Any]], bool]]] = {}
        for binding in self.bindings:
            if binding.outputs:
                masks = bool(getattr(binding.driver, "masks_undelivered", False))
                entry = (binding.driver, self._output_reads[id(binding)], masks)
                self._task_outputs.setdefault(binding.task, []).append(entry)
        # the inputs whose bad quality forces the safe state (required, quality not read by the program)
        self._guarded: dict[str, list[InputPoint]] = {}
        for binding in self.bindings:
            guarded = [p for p in binding.inputs.values() if p.required and not p.handled_by_program]
            self._guarded.setdefault(binding.task, []).extend(guarded)
        self._located_outputs = [
            d.path
            for d in program.variables(leaves=True)
            if d.location is not None and d.location.startswith("%Q")
        ]
        self._stamps = state.rt.stamps  # the dict itself (never replaced)
        # per task, what read_inputs does every scan: (each binding's (driver, binding, grouped) in
        # order, the guarded inputs, the ages or None); methods are looked up at each read (a bench
        # may wrap them)
        self._read_plans: dict[str, _ReadPlan] = {}
        for task in {b.task for b in self.bindings} | set(self._ages):
            readers = [(b.driver, b, b.grouped) for b in self._task_bindings.get(task, ())]
            ages = self._ages.get(task)
            self._read_plans[task] = (readers, self._guarded.get(task, []), ages)

    def _age_companions(self) -> dict[str, Ages]:
        """EV session records carry the age of their SoC (``soc_age`` beside a bound ``soc_pct``):
        the image keeps it current, as FBs cannot call AGE_OF on a VAR_IN_OUT array element."""
        bound = {p for b in self.bindings for p in b.inputs}
        found: dict[str, Ages] = {}
        for binding in self.bindings:
            for path, point in binding.inputs.items():
                if not path.endswith(".soc_pct"):
                    continue
                age_path = path[: -len("soc_pct")] + "soc_age"
                if age_path in bound:
                    continue
                try:
                    age = self.state.accessor(age_path)
                except PathError:
                    continue
                ages = found.setdefault(binding.task, Ages())
                point.age_index = ages.add(point, age)
                point.ages = ages
        return found

    # ------------------------------------------------------------ per scan
    def read_inputs(self, task: str, clock_ns: int) -> bool:
        """Copy the task's new samples into variables. True when a required input is not GOOD and
        the program does not handle its quality (the caller then applies the safe state)."""
        readers, guarded, ages = self._read_plans.get(task, _NO_READS)
        for driver, binding, grouped in readers:
            if grouped:
                known, stamps, cell = self._groups, self._stamps, self._cell
                not_good, rejected = self._not_good, self._rejected
                for group in driver.read_input_groups(clock_ns):
                    # the usual group, as _store_group takes it, without the call: known, GOOD,
                    # every input GOOD and none rejected, stored by its store function (which
                    # answers False for a group without one or not one value per input)
                    paths, values, quality, stamp_ns = group
                    entry = known.get(id(paths))
                    if (
                        entry is not None
                        and entry.paths is paths
                        and quality is _GOOD
                        and not not_good
                        and not rejected
                        and entry.store(values, stamp_ns, stamps, cell)
                    ):
                        if entry.ages is not None:
                            entry.ages.stamp(entry.age_index, stamp_ns)
                        continue
                    self._store_group(binding, group)
                continue
            samples: Mapping[str, Sample] = driver.read_inputs(clock_ns)
            if not samples:
                continue
            points = binding.inputs
            store = self._store_sample
            for path, sample in samples.items():
                point = points.get(path)
                if point is not None:
                    store(point, sample.value, sample.quality, sample.timestamp_ns)
        unsafe = False
        if guarded:
            for point in guarded:
                if point.quality is not _GOOD:
                    unsafe = True
        if ages is not None:
            ages.update(clock_ns)
        return unsafe

    def _store_sample(self, point: InputPoint, value: Any, quality: Quality, stamp_ns: int) -> None:
        """One input's sample: quality (``rt.qualities`` holds int(point.quality), absent means
        UNBOUND), stamp, then the value by the fast path when it fits, else ``_store_checked``."""
        path = point.path
        if quality is not point.quality:
            point.quality = quality
            self.state.rt.qualities[path] = int(quality)
            if quality is _GOOD:
                self._not_good.discard(path)
            else:
                self._not_good.add(path)
        point.stamp_ns = self.state.rt.stamps[path] = stamp_ns
        if point.ages is not None:
            point.ages.stamp(point.age_index, stamp_ns)
        if value is None:
            return
        kind = point.kind
        if kind and point.store is not None:
            kind_of_value = type(value)
            stored: Any = value
            if kind == _REAL:
                if kind_of_value is float:
                    cell = self._cell
                    cell[0] = value
                    stored = cell[0]
                    fits = stored - stored == 0.0  # finite (inf - inf and NaN are NaN)
                else:
                    fits = False
            elif kind == _LREAL:
                fits = kind_of_value is float and value - value == 0.0
            elif kind == _INT:
                fits = kind_of_value is int and point.low <= value <= point.high
            else:
                fits = value is True or value is False
            if fits:
                point.store(stored)
                point.value = value
                if point.rejected:
                    point.rejected = ""
                    self._rejected.discard(path)
                return
        self._store_checked(point, value)

    def _store_group(self, binding: DriverBinding, group: InputGroup) -> None:
        """A driver's group of samples with one quality and stamp: when every path is bound, GOOD
        already and not rejected, and every value fits the group's one fast kind, the stores are a
        few C-level passes; otherwise each value takes ``_store_sample``."""
        paths, values, quality, stamp_ns = group
        entry = self._groups.get(id(paths))
        if entry is None or entry.paths is not paths:
            entry = self._group_entry(binding, paths)
        points = entry.points
        not_good, rejected = self._not_good, self._rejected
        store_all = entry.store
        if (
            quality is _GOOD
            and (not not_good or not_good.isdisjoint(paths))
            and (not rejected or rejected.isdisjoint(paths))
            and len(values) == len(points)
            and store_all(values, stamp_ns, self.state.rt.stamps, self._cell)
        ):
            if entry.ages is not None:
                entry.ages.stamp(entry.age_index, stamp_ns)
            return
        stored = (
            fit(entry.kind, entry.low, entry.high, values, entry.lreal)
            if quality is _GOOD
            and entry.kind
            and len(values) == len(points)
            and (not not_good or not_good.isdisjoint(paths))
            and (not rejected or rejected.isdisjoint(paths))
            else None
        )
        if stored is None:
            store = self._store_sample
            for point, value in zip(points, values, strict=False):
                if point is not None:
                    store(point, value, quality, stamp_ns)
            return
        self.state.rt.stamps.update(dict.fromkeys(paths, stamp_ns))
        deque(map(setattr, points, repeat("stamp_ns"), repeat(stamp_ns, len(points))), maxlen=0)
        if entry.ages is not None:
            entry.ages.stamp(entry.age_index, stamp_ns)
        deque(map(setattr, entry.holders, entry.keys, stored), maxlen=0)
        deque(map(setattr, points, repeat("value"), values), maxlen=0)

    def _group_entry(self, binding: DriverBinding, paths: tuple[str, ...]) -> GroupEntry:
        points = [binding.inputs.get(path) for path in paths]
        ages = next((p.ages for p in points if p is not None and p.ages is not None), None)
        entry = GroupEntry(paths, points, ages)
        if len(self._groups) >= _GROUP_CACHE:  # a driver that makes new tuples every time
            self._groups.clear()
        self._groups[id(paths)] = entry
        return entry

    def _store_checked(self, point: InputPoint, value: Any) -> None:
        """The general path: ``misfit`` first, then ``accessor.set`` (which converts)."""
        problem = point.misfit(value) if point.misfit is not None else None
        if problem is None:
            try:
                point.accessor.set(value)
                point.value = value
                if point.rejected:
                    point.rejected = ""
                    self._rejected.discard(point.path)
                return
            except (TypeError, ValueError, OverflowError) as error:
                problem = str(error)
        point.quality = Quality.BAD
        self.state.rt.qualities[point.path] = int(Quality.BAD)
        self._not_good.add(point.path)
        if problem != point.rejected:
            point.rejected = problem
            self._rejected.add(point.path)
            log.warning("input %s: value rejected (BAD): %s", point.path, problem)

    def restore_inputs(self, paths: list[str]) -> None:
        """Give released inputs back their latest driver value."""
        wanted = set(paths)
        for binding in self.bindings:
            for path, point in binding.inputs.items():
                if path in wanted and point.value is not None:
                    point.accessor.set(point.value)

    def write_outputs(self, task: str, clock_ns: int) -> None:
        for driver, read, masks in self._task_outputs.get(task, ()):
            values = read()
            if masks:
                # a reporting driver gets NaN for an input no device has delivered (not GOOD): the
                # program's initial 0 Hz must never look like a measurement
                inputs = self._inputs_by_path
                for path in values:
                    point = inputs.get(path)
                    if point is not None and point.quality is not Quality.GOOD:
                        values[path] = math.nan
            driver.write_outputs(clock_ns, values)

    def input_quality(self, path: str) -> Quality | None:
        """The quality of a driver-fed input (UNBOUND until its first sample), None if no driver feeds it."""
        point = self._inputs_by_path.get(path)
        return None if point is None else point.quality

    # ------------------------------------------------------------ safe state
    def output_paths(self, task: str | None = None) -> list[str]:
        """Paths that leave the runtime: driver outputs and %Q located variables."""
        paths: list[str] = []
        for binding in self.bindings:
            if task is None or binding.task == task:
                paths.extend(binding.outputs)
        for path in self._located_outputs:
            if task is None or task_of_path(self.program, path) == task:
                paths.append(path)
        return sorted(set(paths))

    def safe_value(self, path: str) -> object:
        if path in self.safe_overrides:
            return self.safe_overrides[path]
        acc = self.state.accessor(path)
        declared = _declared_safe(self.program, path)
        if declared is not None:
            return declared
        default = acc.get()
        if isinstance(default, bool):
            return False
        if isinstance(default, float):
            return 0.0
        if isinstance(default, int):
            return 0
        if isinstance(default, str):
            return ""
        return default

    def apply_safe_state(self, task: str | None = None) -> dict[str, object]:
        """Write safe values into the output variables and push them to the drivers at once."""
        applied: dict[str, object] = {}
        for path in self.output_paths(task):
            value = self.safe_value(path)
            try:
                self.state.accessor(path).set(value)
            except (TypeError, ValueError) as error:
                log.error("safe value %r for %s rejected: %s", value, path, error)
                continue
            applied[path] = value
        for binding in self.bindings:
            if task is not None and binding.task != task:
                continue
            mine = {p: applied[p] for p in binding.outputs if p in applied}
            if mine:
                binding.driver.apply_safe_state(mine)
        return applied

    def input_status(self) -> list[dict[str, object]]:
        """Every bound input with its quality and value, for the dashboard."""
        out: list[dict[str, object]] = []
        for binding in self.bindings:
            for point in binding.inputs.values():
                out.append(
                    {
                        "path": point.path,
                        "driver": binding.driver.name,
                        "quality": point.quality.name,
                        "stamp_ns": point.stamp_ns,
                        "required": point.required,
                        "value": to_json(point.accessor.get(), point.accessor.type),
                    }
                )
        return out


def _output_reader(outputs: dict[str, Accessor], by_value: bool = False) -> Callable[[], dict[str, Any]]:
    """Reads a binding's outputs into a new {path: value}: when every one is an attribute of the
    object holding it (structure members, program variables), by one function made for them
    (``image_store.attribute_reader``).
    ``by_value`` (a driver with ``outputs_by_value``): values equal to the last ones give the last
    mapping again instead of a new one (it was never changed after it was handed over), by one
    function made for them (``image_store.unchanged_reader``) where it can be."""
    paths = list(outputs)
    holders = [acc.holder for acc in outputs.values()]
    keys = [acc.key for acc in outputs.values()]
    if all(type(key) is str for key in keys) and None not in holders:
        names = [sys.intern(str(key)) for key in keys]
        if by_value:
            made = unchanged_reader(holders, names, paths)
            if made is not None:
                return made
        read_all = attribute_reader(holders, names)
        if not by_value:
            return lambda: dict(zip(paths, read_all(), strict=True))
        last: list[Any] = [None, {}]  # the last values and the mapping made of them

        def read() -> dict[str, Any]:
            values = read_all()
            if values == last[0]:
                mapping: dict[str, Any] = last[1]
                return mapping
            last[0], last[1] = values, dict(zip(paths, values, strict=True))
            return last[1]  # type: ignore[no-any-return]

        return read
    accessors = list(outputs.items())
    return lambda: {path: acc.get() for path, acc in accessors}


def _root_of(path: str) -> str:
    head, _, rest = path.partition(".")
    var = rest.split(".", 1)[0].split("[", 1)[0]
    return f"{head}.{var}".lower()


def _declared_safe(program: CompiledProgram, path: str) -> object | None:
    """The value of ``{attribute 'safe' := '...'}`` on the variable (or its top-level variable)."""
    desc = program.leaf(path)
    if desc is None or desc.safe_value is None:
        return None
    text = desc.safe_value.strip()
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
