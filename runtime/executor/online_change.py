"""Online change: replace the running program at a scan boundary, keeping variable values.

Everything slow happens before the boundary, on the caller's thread: the new program is
instantiated, its driver bindings validated, and a transfer plan made. At the boundary only values
move: a variable keeps its value when its path and type (layout) are unchanged; elementary values,
structures and arrays move by reference, function block instances are copied member by member into
the new program's objects (their code may have changed). New or changed variables start from their
initial values. A different task configuration is refused: that needs a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..compiler import st_types as T
from ..state.program import CompiledProgram, ProgramState
from .config import ExecutorConfig
from .driver_api import Driver
from .process_image import BindingError, ProcessImage


@dataclass
class _Move:
    root: str  # instance name (lower case) or "" for the globals
    attr: str  # slot name, v_<name>
    old_type: T.Type
    type: T.Type


@dataclass
class OnlineChangeResult:
    accepted: bool
    reason: str = ""
    kept: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moves: list[_Move] = field(default_factory=list)

    def summary(self) -> str:
        if not self.accepted:
            return f"refused: {self.reason}"
        return f"{len(self.kept)} variables kept, {len(self.initialised)} initialised, {len(self.removed)} removed"

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "kept": self.kept,
            "initialised": self.initialised,
            "removed": self.removed,
        }

    def transfer(self, old: ProgramState, new: ProgramState) -> None:
        """Move the kept values from ``old`` to ``new`` (scan thread, at the boundary)."""
        for move in self.moves:
            source = old.globals if move.root == "" else old.instances[move.root]
            target = new.globals if move.root == "" else new.instances[move.root]
            value = getattr(source, move.attr)
            if _in_objects(move.type):
                _copy_into(value, getattr(target, move.attr), move.old_type, move.type)
            else:
                setattr(target, move.attr, value)


@dataclass
class Prepared:
    result: OnlineChangeResult
    state: ProgramState | None = None
    image: ProcessImage | None = None


def _in_objects(t: T.Type) -> bool:
    """Is a value of ``t`` held in objects of the program's own classes (FB instances, structures,
    arrays of them)? Those are copied member by member into the new state's objects, never moved:
    an FB instance carries its old code, and a native build's new module refuses the old module's
    structure objects (``Cannot convert plcrun_native_<old>.S_X to plcrun_native_<new>.S_X``)."""
    u = T.underlying(t)
    if isinstance(u, T.PouType | T.StructType):
        return True
    if isinstance(u, T.ArrayType):
        return _in_objects(u.element)
    return False


def _copy_into(old: Any, new: Any, old_type: T.Type, new_type: T.Type) -> None:
    """Copy the value ``old`` into the existing object ``new`` (FB instances or structures inside);
    members whose layout changed keep the new program's initial value."""
    u_old, u_new = T.underlying(old_type), T.underlying(new_type)
    if isinstance(u_new, T.ArrayType) and isinstance(u_old, T.ArrayType):
        inner_old = T.ArrayType(u_old.element, u_old.dims[1:]) if len(u_old.dims) > 1 else u_old.element
        inner_new = T.ArrayType(u_new.element, u_new.dims[1:]) if len(u_new.dims) > 1 else u_new.element
        for i, item in enumerate(old):
            if _in_objects(inner_new) or isinstance(T.underlying(inner_new), T.ArrayType):
                _copy_into(item, new[i], inner_old, inner_new)
            else:
                new[i] = item
        return
    old_members = _members(u_old)
    for key, var in _members(u_new).items():
        before = old_members.get(key)
        if before is None or T.describe_layout(before.type) != T.describe_layout(var.type):
            continue
        attr = "v_" + var.name.lower()
        if _in_objects(var.type):
            _copy_into(getattr(old, attr), getattr(new, attr), before.type, var.type)
        else:
            setattr(new, attr, getattr(old, attr))


def _members(t: T.Type) -> dict[str, T.VarInfo]:
    if isinstance(t, T.StructType):
        return t.fields
    if isinstance(t, T.PouType):
        return {
            k: v
            for k, v in t.variables.items()
            if v.section not in ("VAR_TEMP", "VAR_EXTERNAL", "VAR_IN_OUT")
        }
    return {}


def _task_signature(program: CompiledProgram) -> list[tuple[str, int, int]]:
    return sorted((t.name.upper(), t.interval_ns, t.priority) for t in program.tasks)


def _instance_signature(program: CompiledProgram) -> list[tuple[str, str]]:
    return sorted((i.name.upper(), i.task.upper()) for i in program.instances)


def prepare_online_change(
    old: CompiledProgram, new: CompiledProgram, drivers: list[Driver], config: ExecutorConfig
) -> Prepared:
    if _task_signature(old) != _task_signature(new):
        return Prepared(
            OnlineChangeResult(False, "the tasks changed (names, intervals or priorities): restart needed")
        )
    if _instance_signature(old) != _instance_signature(new):
        return Prepared(OnlineChangeResult(False, "the program instances changed: restart needed"))
    state = new.new_state()
    try:
        image = ProcessImage(new, state, drivers, config.required_inputs, config.safe_overrides)
    except BindingError as error:
        return Prepared(
            OnlineChangeResult(False, f"the new program does not fit the I/O configuration: {error}")
        )
    result = OnlineChangeResult(True)
    old_roots = {i.name.lower(): i.pou.variables for i in old.instances}
    old_roots[""] = old.model.globals
    new_roots = {i.name.lower(): i.pou.variables for i in new.instances}
    new_roots[""] = new.model.globals
    for root, variables in new_roots.items():
        label = root or new.model.globals_name.lower()
        previous = old_roots.get(root, {})
        for key, var in variables.items():
            if var.section in ("VAR_TEMP", "VAR_EXTERNAL"):
                continue
            path = f"{label}.{var.name.lower()}"
            before = previous.get(key)
            if before is None or before.section in ("VAR_TEMP", "VAR_EXTERNAL"):
                result.initialised.append(f"{path} (new)")
            elif T.describe_layout(before.type) != T.describe_layout(var.type):
                result.initialised.append(
                    f"{path} (type changed from {before.type.display} to {var.type.display})"
                )
            elif var.section == "VAR_IN_OUT":
                continue
            else:
                result.kept.append(path)
                result.moves.append(_Move(root, "v_" + var.name.lower(), before.type, var.type))
        for key, var in previous.items():
            if key not in variables and var.section not in ("VAR_TEMP", "VAR_EXTERNAL"):
                result.removed.append(f"{label}.{var.name.lower()}")
    return Prepared(result, state, image)
