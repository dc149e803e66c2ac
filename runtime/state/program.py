"""The compiled program: code objects, the variable catalogue, and fresh program states.

``CompiledProgram`` is immutable and can create any number of independent ``ProgramState`` objects
(used for online change and for parallel test runs). A state owns its own namespace (classes are
re-created from the compiled code objects), its scan context, globals and program instances, and
gives path-based access to every variable: ``"main.evs[3].soc_pct"``, ``"cfg.limit_w"``, ``"%QD2"``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import CodeType
from typing import Any

from ..compiler import st_types as T
from ..compiler.codegen_values import class_name, convert_constant
from ..compiler.diagnostics import Diagnostic
from ..compiler.literals import format_duration
from ..compiler.model import InstanceModel, ProgramModel, TaskModel
from ..errors import PlcrunError
from .support import NAMESPACE, ScanContext, TaskInfo, make_f32, make_f32_cell

_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[([-0-9, ]+)\]")


class PathError(PlcrunError, KeyError):
    """A variable path that does not exist in the program."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class VariableDesc:
    """One variable of the program as the executor, I/O and dashboard see it."""

    path: str
    type_name: str
    section: str  # VAR, VAR_INPUT, VAR_OUTPUT, VAR_GLOBAL, FIELD, ...
    location: str | None
    retain: bool
    constant: bool
    elementary: bool
    safe_value: str | None  # from {attribute 'safe' := '...'}
    attributes: dict[str, str | None]
    initial: Any = None  # the initial value (JSON form) of an elementary variable


@dataclass
class Accessor:
    """Reads and writes one variable. ``holder``/``key`` say where the value lives (the object and
    its attribute name, or the list and its index: arrays, structures and FB instances are never
    re-bound) and ``convert`` turns an outside value into the stored form, so that hot paths (the
    process image) can store without the two calls of ``set``."""

    path: str
    type: T.Type
    get: Callable[[], Any]
    set: Callable[[Any], None]
    holder: Any = None
    key: str | int | None = None
    convert: Callable[[Any], Any] | None = None


log = logging.getLogger("plcrun.native")


class ProgramState:
    """Live state of one instantiation: globals, program instances, scan context."""

    def __init__(self, program: CompiledProgram) -> None:
        self.program = program
        self.rt = ScanContext()
        native = program.native
        self.native = native is not None and native.claim(self)
        if native is not None and not self.native:
            log.warning(
                "native build %s is held by another live program state: this one runs interpreted",
                native.module.__name__,
            )
        namespace: dict[str, Any]
        if self.native:  # the module's globals are this state's namespace while it owns the module
            namespace = native.module.__dict__
        else:
            namespace = {"__builtins__": {"__build_class__": __build_class__}, "__name__": "st"}
            namespace.update(NAMESPACE)
        namespace["_rt"] = self.rt
        namespace["_NS"] = namespace  # for _memo_name, which rebinds a call site's remembered pair
        cell = make_f32_cell()
        namespace["_f32"] = make_f32(cell)
        namespace["_F32"] = cell
        if not self.native:
            for code in program.code:
                exec(code, namespace)
        self.namespace = namespace
        self.globals = namespace["GLOBALS_"]()
        self.globals._path = program.model.globals_name.lower()
        namespace["_G"] = self.globals
        self.instances: dict[str, Any] = {}
        for inst in program.model.instances:
            obj = namespace[class_name(inst.pou)]()
            obj._path = inst.name.lower()
            self.instances[inst.name.lower()] = obj
        self.task_infos = {t.name: TaskInfo(t.name) for t in program.model.tasks}
        self._accessors: dict[str, Accessor] = {}

    def release(self) -> None:
        """After an online change swapped this state out: a native module it owned lets go of its
        scan context and globals (a loaded module stays for good, and would keep them alive)."""
        if self.native:
            for name in ("_rt", "_G", "_NS", "_F32"):
                self.namespace[name] = None
            self.native = False

    def reset_instances(self, names: list[str]) -> None:
        """Fresh program instances (initial values) for ``names``; path accessors are rebuilt."""
        for inst in self.program.model.instances:
            if inst.name in names:
                obj = self.namespace[class_name(inst.pou)]()
                obj._path = inst.name.lower()
                self.instances[inst.name.lower()] = obj
        self._accessors.clear()

    def task_runners(self, task: str) -> list[tuple[str, Callable[[], None]]]:
        """The scan functions of the program instances of ``task``, in declaration order."""
        return [
            (inst.name, self.instances[inst.name.lower()]._body)
            for inst in self.program.model.instances
            if inst.task == task
        ]

    def run_task_scan(self, task: str, now_ns: int) -> None:
        """Run one scan of every program instance of ``task`` (no I/O, no timing)."""
        info = self.task_infos[task]
        self.rt.begin_scan(now_ns, info)
        for _, body in self.task_runners(task):
            body()
        info.scans += 1

    # ------------------------------------------------------------ paths
    def _root(self, head: str) -> tuple[Any, dict[str, T.VarInfo]]:
        key = head.lower()
        if key in self.instances:
            for inst in self.program.model.instances:
                if inst.name.lower() == key:
                    return self.instances[key], inst.pou.variables
        if key == self.program.model.globals_name.lower():
            return self.globals, self.program.model.globals
        raise PathError(f"no program instance or configuration named '{head}'")

    def accessor(self, path: str) -> Accessor:
        cached = self._accessors.get(path)
        if cached is not None:
            return cached
        if path.startswith("%"):
            resolved = self.program.located.get(path.upper())
            if resolved is None:
                raise PathError(f"no variable is located at {path}")
            acc = self.accessor(resolved)
            self._accessors[path] = acc
            return acc
        steps = [(m.group(1), m.group(2)) for m in _STEP.finditer(path)]
        if not steps or steps[0][0] is None or "".join(m.group(0) for m in _STEP.finditer(path)) != path:
            raise PathError(f"malformed variable path '{path}'")
        obj, members = self._root(steps[0][0])
        current_type: T.Type | None = None
        getters: list[Callable[[Any], Any]] = []
        final_set: Callable[[Any, Any], None] | None = None
        final_key: str | int | None = None
        for name, index in steps[1:]:
            if name is not None:
                scope = members if current_type is None else _members_of(current_type, path)
                var = scope.get(name.upper())
                if var is None or var.section in ("VAR_TEMP", "VAR_EXTERNAL"):
                    raise PathError(f"'{path}': no variable '{name}'")
                attr = sys.intern("v_" + var.name.lower())  # interned: the type lookup caches it
                getters.append(_attr_getter(attr))
                final_set = _attr_setter(attr)
                final_key = attr
                current_type = var.type
            else:
                array = T.underlying(current_type) if current_type is not None else None
                if not isinstance(array, T.ArrayType):
                    raise PathError(f"'{path}': not an array")
                numbers = [int(p) for p in index.split(",")]
                if len(numbers) != len(array.dims):
                    raise PathError(f"'{path}': needs {len(array.dims)} indices")
                for number, (low, high) in zip(numbers, array.dims, strict=True):
                    if not low <= number <= high:
                        raise PathError(f"'{path}': index {number} is outside {low}..{high}")
                offsets = [n - lo for n, (lo, _) in zip(numbers, array.dims, strict=True)]
                for offset in offsets[:-1]:
                    getters.append(_item_getter(offset))
                last = offsets[-1]
                getters.append(_item_getter(last))

                def set_item(o: Any, v: Any, k: int = last) -> None:
                    o[k] = v

                final_set = set_item
                final_key = last
                current_type = array.element
        if current_type is None or final_set is None:
            raise PathError(f"'{path}' names a program instance, not a variable")
        # Arrays, structures and FB instances are never re-bound (assignments copy into them), so
        # the object holding the value can be found once, here.
        holder = obj
        for g in getters[:-1]:
            holder = g(holder)
        last_get = getters[-1]
        var_type = current_type
        setter = final_set
        convert = coercer(var_type)

        def get() -> Any:
            return last_get(holder)

        def set_value(value: Any) -> None:
            setter(holder, convert(value))

        acc = Accessor(path, var_type, get, set_value, holder, final_key, convert)
        self._accessors[path] = acc
        return acc

    def read(self, path: str) -> Any:
        acc = self.accessor(path)
        return to_json(acc.get(), acc.type)

    def write(self, path: str, value: Any) -> None:
        acc = self.accessor(path)
        if not T.is_elementary(acc.type) and not isinstance(T.underlying(acc.type), T.EnumType):
            raise PathError(f"'{path}' is structured; write its elements one by one")
        acc.set(value)

    def snapshot(self) -> dict[str, Any]:
        """Every program instance's variables (and the globals) as JSON-able values."""
        out: dict[str, Any] = {}
        for inst in self.program.model.instances:
            obj = self.instances[inst.name.lower()]
            out[inst.name] = _object_json(obj, inst.pou.variables)
        if self.program.model.globals:
            out[self.program.model.globals_name] = _object_json(self.globals, self.program.model.globals)
        return out


def _attr_getter(attr: str) -> Callable[[Any], Any]:
    return lambda obj: getattr(obj, attr)


def _attr_setter(attr: str) -> Callable[[Any, Any], None]:
    return lambda obj, value: setattr(obj, attr, value)


def _item_getter(index: int) -> Callable[[Any], Any]:
    return lambda obj: obj[index]


def _members_of(t: T.Type, path: str) -> dict[str, T.VarInfo]:
    u = T.underlying(t)
    if isinstance(u, T.StructType):
        return u.fields
    if isinstance(u, T.PouType):
        hidden = ("VAR_TEMP", "VAR_EXTERNAL", "VAR_IN_OUT")
        return {k: v for k, v in u.variables.items() if v.section not in hidden}
    raise PathError(f"'{path}': {t.display} has no members")


def _object_json(obj: Any, variables: dict[str, T.VarInfo]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var in variables.values():
        if var.section in ("VAR_TEMP", "VAR_EXTERNAL", "VAR_IN_OUT"):
            continue
        out[var.name] = to_json(getattr(obj, "v_" + var.name.lower()), var.type)
    return out


def to_json(value: Any, t: T.Type) -> Any:
    """A stored value as JSON: enums by name, TIME as an IEC literal, structures as objects."""
    u = T.underlying(t)
    if isinstance(u, T.EnumType):
        return u.value_name(value)
    if isinstance(u, T.ArrayType):
        if len(u.dims) > 1:
            inner = T.ArrayType(u.element, u.dims[1:])
            return [to_json(v, inner) for v in value]
        return [to_json(v, u.element) for v in value]
    if isinstance(u, T.StructType):
        return _object_json(value, u.fields)
    if isinstance(u, T.PouType):
        return _object_json(value, u.variables)
    if isinstance(u, T.ElementaryType) and u.kind == "time":
        return format_duration(value)
    if isinstance(value, float) and value != value:
        return None
    return value


def coercer(t: T.Type) -> Callable[[Any], Any]:
    """A converter for values from outside into how ``t`` stores them, specialised for speed."""
    u = T.underlying(t)
    if u is T.LREAL:
        return _to_lreal
    if u is T.REAL:
        cell = memoryview(bytearray(4)).cast("f")

        def to_real(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return coerce(value, t)  # type: ignore[no-any-return]
            cell[0] = value
            return cell[0]

        return to_real
    if u is T.BOOL:
        return lambda value: value if value is True or value is False else coerce(value, t)
    rng = T.int_range(t)
    if rng is not None:
        low, high = rng

        def to_int(value: Any) -> Any:
            if type(value) is int and low <= value <= high:
                return value
            return coerce(value, t)

        return to_int
    return lambda value: coerce(value, t)


def _to_lreal(value: Any) -> float:
    if type(value) is float:
        return value
    return float(value)


def coerce(value: Any, t: T.Type) -> Any:
    """A value from outside (JSON, a driver, the dashboard) converted to how ``t`` stores it."""
    u = T.underlying(t)
    if isinstance(u, T.EnumType):
        if isinstance(value, str):
            number = u.values.get(value.upper())
            if number is None:
                raise ValueError(f"'{value}' is not a value of {u.name}")
            return number
        return int(value)
    if u is T.BOOL:
        if isinstance(value, str):
            return value.strip().upper() in ("TRUE", "1")
        return bool(value)
    if isinstance(u, T.StringType):
        return str(value)[: u.length]
    if T.is_real_like(u):
        return convert_constant(float(value), u)
    if isinstance(u, T.ElementaryType) and u.kind in ("time", "date") and isinstance(value, str):
        from ..compiler.literals import parse_duration

        return parse_duration(value if "#" in value else "T#" + value)
    if isinstance(value, float):
        value = round(value)
    number = int(value)
    if isinstance(t, T.SubrangeType) and not t.low <= number <= t.high:
        raise ValueError(f"{number} is outside {t.low}..{t.high}")
    return convert_constant(number, u)


class CompiledProgram:
    """A checked and compiled ST program, ready to be instantiated by the executor."""

    def __init__(
        self,
        model: ProgramModel,
        code: list[CodeType],
        python_source: str,
        diagnostics: list[Diagnostic],
    ) -> None:
        self.model = model
        self.code = code
        self.python_source = python_source
        self.diagnostics = diagnostics
        self.sources = model.sources
        self._leaf_index: dict[str, VariableDesc] | None = None
        self._fresh: ProgramState | None = None  # a never-run state, for initial values
        self._descriptions: dict[tuple[bool, bool], list[VariableDesc]] = {}
        self.line_table: list[tuple[str, int]] = []  # the ST file and line of each python_source line
        self.native: Any = None  # a NativeModule (compiler/native.py) when the program runs natively
        # generated class/function -> its temporaries that only hold floats (the native build's C doubles)
        self.real_temps: dict[str, set[str]] = {}
        self.located: dict[str, str] = {}
        for desc in self.variables():
            if desc.location is not None:
                self.located[desc.location] = desc.path

    @property
    def tasks(self) -> list[TaskModel]:
        return self.model.tasks

    @property
    def instances(self) -> list[InstanceModel]:
        return self.model.instances

    @property
    def main_file(self) -> str:
        return self.model.main_file

    def new_state(self) -> ProgramState:
        return ProgramState(self)

    def _roots(self) -> Iterator[tuple[str, dict[str, T.VarInfo]]]:
        for inst in self.model.instances:
            yield inst.name.lower(), inst.pou.variables
        if self.model.globals:
            yield self.model.globals_name.lower(), self.model.globals

    def variables(self, leaves: bool = False, initial: bool = False) -> list[VariableDesc]:
        """Top-level variables (or, with ``leaves``, every elementary element) with their paths;
        ``initial`` adds the initial values of the elementary ones."""
        key = (leaves, initial)
        cached = self._descriptions.get(key)
        if cached is not None:
            return list(cached)
        out: list[VariableDesc] = []
        for root, variables in self._roots():
            for var in variables.values():
                if var.section in ("VAR_TEMP", "VAR_EXTERNAL"):
                    continue
                path = f"{root}.{var.name.lower()}"
                if leaves:
                    out.extend(_leaves(path, var, var.type))
                else:
                    out.append(_desc(path, var, var.type))
        if initial:
            fresh = self._initial_state()
            out = [
                replace(d, initial=to_json(fresh.accessor(d.path).get(), fresh.accessor(d.path).type))
                if d.elementary
                else d
                for d in out
            ]
        self._descriptions[key] = out
        return list(out)

    def _initial_state(self) -> ProgramState:
        if self._fresh is None:
            self._fresh = self.new_state()
        return self._fresh

    def leaf(self, path: str) -> VariableDesc | None:
        """The description of one elementary variable path (or located address), cached."""
        if self._leaf_index is None:
            self._leaf_index = {d.path: d for d in self.variables(leaves=True)}
        if path.startswith("%"):
            resolved = self.located.get(path.upper())
            return None if resolved is None else self._leaf_index.get(resolved)
        return self._leaf_index.get(path.lower())

    def catalog(self) -> dict[str, str]:
        """Every bindable elementary path (and located address) -> its IEC type name."""
        out: dict[str, str] = {}
        for desc in self.variables(leaves=True):
            out[desc.path] = desc.type_name
        for desc in self.variables():
            if desc.location is not None:
                out[desc.location] = desc.type_name
        return out

    def retain_layout(self) -> list[tuple[str, str]]:
        return [(d.path, d.type_name) for d in self.variables(leaves=True) if d.retain]

    def layout_hash(self, layout: list[tuple[str, str]]) -> str:
        text = "\n".join(f"{p}:{t}" for p, t in layout)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _desc(path: str, var: T.VarInfo, t: T.Type, retain: bool | None = None) -> VariableDesc:
    elementary = T.is_elementary(t) or isinstance(T.underlying(t), T.EnumType)
    return VariableDesc(
        path=path,
        type_name=T.describe_layout(t) if not elementary else t.display,
        section=var.section,
        location=var.location,
        retain=var.retain if retain is None else retain,
        constant=var.constant,
        elementary=elementary,
        safe_value=var.attributes.get("safe"),
        attributes=var.attributes,
    )


def _leaves(path: str, var: T.VarInfo, t: T.Type, retain: bool | None = None) -> Iterator[VariableDesc]:
    u = T.underlying(t)
    inherited = var.retain if retain is None else retain
    if isinstance(u, T.ArrayType):
        yield from _array_leaves(path, var, u, 0, inherited)
    elif isinstance(u, T.StructType | T.PouType):
        members = u.fields if isinstance(u, T.StructType) else u.variables
        for member in members.values():
            if member.section in ("VAR_TEMP", "VAR_EXTERNAL", "VAR_IN_OUT"):
                continue
            sub_retain = inherited or member.retain
            yield from _leaves(f"{path}.{member.name.lower()}", member, member.type, sub_retain)
    else:
        yield _desc(path, var, t, inherited)


def _array_leaves(
    path: str, var: T.VarInfo, t: T.ArrayType, dim: int, retain: bool
) -> Iterator[VariableDesc]:
    ranges = [range(lo, hi + 1) for lo, hi in t.dims]

    def walk(prefix: list[int], level: int) -> Iterator[list[int]]:
        if level == len(ranges):
            yield prefix
            return
        for i in ranges[level]:
            yield from walk([*prefix, i], level + 1)

    for index in walk([], 0):
        yield from _leaves(f"{path}[{','.join(map(str, index))}]", var, t.element, retain)
