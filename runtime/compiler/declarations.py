"""Checker, first half: resolve declarations into types, POU interfaces, globals and tasks.

Runs before any body is checked: user types (enumerations, structures, subranges, arrays, aliases),
POU variables with their resolved types, constant expressions (array bounds, string lengths, named
constants), and the configuration (tasks and program instances, or the default 10 ms task).
"""

from __future__ import annotations

import difflib
from typing import Any

from . import builtins as B
from . import st_ast as A
from . import st_types as T
from .diagnostics import DiagnosticBag, Pos
from .model import ConstRef, InstanceModel, TaskModel

DEFAULT_INTERVAL_NS = 10_000_000


def did_you_mean(name: str, candidates: list[str]) -> str:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.75)
    return f"did you mean '{lowered[close[0]]}'?" if close else ""


class Declarations:
    """Symbol tables built from all compilation units (user files first, then the library)."""

    def __init__(self, diagnostics: DiagnosticBag) -> None:
        self.diag = diagnostics
        self.types: dict[str, T.Type] = {"IO_QUALITY": B.IO_QUALITY}
        self.type_inits: dict[str, Any] = {}
        self.type_decls: dict[str, A.TypeDecl] = {}
        self.pous: dict[str, T.PouType] = {}
        self.globals: dict[str, T.VarInfo] = {}
        self.constants: dict[str, ConstRef] = {}  # global constants
        self.local_constants: dict[str, dict[str, ConstRef]] = {}  # POU name -> its VAR CONSTANTs
        self.scope = ""  # the POU being resolved, checked or generated ("" at global level)
        self.quality_reads: set[tuple[str, str]] = set()  # (POU name or "" for globals, variable)
        self._resolving: list[str] = []

    # ------------------------------------------------------------ collection
    def collect(self, units: list[A.CompilationUnit], library_files: set[str]) -> None:
        for unit in units:
            library = unit.filename in library_files
            for decl in unit.types:
                key = decl.name.upper()
                if key in self.type_decls or key in T.ELEMENTARY:
                    if not library:
                        self.diag.error("E0102", f"type '{decl.name}' is declared twice", decl.pos)
                    continue
                self.type_decls[key] = decl
            for pou in unit.pous:
                key = pou.name.upper()
                if key in self.pous:
                    if not library:  # a user POU of the library's name replaces the library's
                        self.diag.error("E0102", f"'{pou.name}' is declared twice", pou.pos)
                    continue
                for what, pos in pou.unsupported:
                    self.diag.error("E0007", f"{what} is not supported", pos)
                self.pous[key] = T.PouType(pou.name, pou.kind, decl=pou, library=library)

    def resolve_all(self, units: list[A.CompilationUnit], library_files: set[str] | None = None) -> None:
        for key in list(self.type_decls):
            self.named_type(key, self.type_decls[key].pos)
        # Globals before POUs (their constants size arrays): the user's file-level and configuration
        # globals first, then the library's, which a user global of the same name replaces.
        library_files = library_files or set()
        user = [u for u in units if u.filename not in library_files]
        for unit in user:
            for block in unit.global_blocks:
                self.add_globals(block)
            for config in unit.configurations[:1]:
                for block in config.var_blocks:
                    self.add_globals(block)
                for resource in config.resources:
                    for block in resource.var_blocks:
                        self.add_globals(block)
        for unit in units:
            if unit.filename in library_files:
                for block in unit.global_blocks:
                    self.add_globals(block, library=True)
        for pou in self.pous.values():
            self._resolve_pou(pou)
        self._check_containment_cycles()

    # ------------------------------------------------------------ types
    def named_type(self, name: str, pos: Pos) -> T.Type:
        key = name.upper()
        if key in T.ELEMENTARY:
            return T.ELEMENTARY[key]
        if key in T.ELEMENTARY_ALIASES:
            return T.ELEMENTARY_ALIASES[key]
        if key == "STRING":
            return T.STRING
        if key in self.types:
            return self.types[key]
        if key in self.type_decls:
            if key in self._resolving:
                self.diag.error("E0110", f"type '{name}' is defined in terms of itself", pos)
                return T.ERROR
            self._resolving.append(key)
            decl = self.type_decls[key]
            resolved = self.type_ref(decl.type_ref, decl.name)
            self._resolving.pop()
            self.types[key] = resolved
            if decl.init is not None:
                if isinstance(resolved, T.EnumType) and isinstance(decl.init, A.Name):
                    value = resolved.values.get(decl.init.name.upper())
                    if value is None:
                        self.diag.error(
                            "E0101", f"'{decl.init.name}' is not a value of {name}", decl.init.pos
                        )
                    else:
                        resolved.default = value
                else:
                    self.type_inits[key] = decl.init
            return resolved
        pou = self.pous.get(key)
        if pou is not None:
            if pou.kind == "FUNCTION_BLOCK":
                return pou
            self.diag.error("E0103", f"'{name}' is a {pou.kind.lower()}, not a type", pos)
            return T.ERROR
        candidates = list(T.ELEMENTARY) + [d.name for d in self.type_decls.values()]
        candidates += [p.name for p in self.pous.values() if p.kind == "FUNCTION_BLOCK"]
        self.diag.error("E0103", f"unknown type '{name}'", pos, did_you_mean(name, candidates))
        return T.ERROR

    def type_ref(self, ref: A.TypeRef, name: str = "") -> T.Type:
        if isinstance(ref, A.NamedTypeRef):
            return self.named_type(ref.name, ref.pos)
        if isinstance(ref, A.StringTypeRef):
            length = 80
            if ref.length is not None:
                value = self.const_int(ref.length)
                if value is None or not 1 <= value <= 65535:
                    self.diag.error(
                        "E0206", "string length must be a constant from 1 to 65535", ref.length.pos
                    )
                else:
                    length = value
            return T.StringType(length, ref.wide)
        if isinstance(ref, A.ArrayTypeRef):
            dims = []
            for low_expr, high_expr in ref.ranges:
                low, high = self.const_int(low_expr), self.const_int(high_expr)
                if low is None or high is None:
                    self.diag.error("E0206", "array bounds must be constant integers", low_expr.pos)
                    return T.ERROR
                if low > high:
                    self.diag.error("E0202", f"array range {low}..{high} is empty", low_expr.pos)
                    return T.ERROR
                dims.append((low, high))
            element = self.type_ref(ref.element)
            array = T.ArrayType(element, dims)
            if array.size > 10_000_000:
                self.diag.error("E0202", f"array of {array.size} elements is too large", ref.pos)
                return T.ERROR
            return array
        if isinstance(ref, A.SubrangeTypeRef):
            base = self.named_type(ref.base, ref.pos)
            low, high = self.const_int(ref.low), self.const_int(ref.high)
            if not (isinstance(base, T.ElementaryType) and base.kind == "int"):
                self.diag.error(
                    "E0201", f"a subrange needs an integer base type, not {base.display}", ref.pos
                )
                return T.ERROR
            if low is None or high is None or low > high or low < base.minimum or high > base.maximum:
                self.diag.error("E0202", f"invalid subrange of {base.name}", ref.low.pos)
                return T.ERROR
            return T.SubrangeType(base, low, high, name)
        if isinstance(ref, A.EnumTypeRef):
            return self._enum(ref, name)
        if isinstance(ref, A.StructTypeRef):
            struct = T.StructType(name or "<struct>", {})
            for decl in ref.fields:
                field_type = self.type_ref(decl.type_ref)
                for field_name, field_pos in decl.names:
                    if field_name.upper() in struct.fields:
                        self.diag.error("E0102", f"field '{field_name}' is declared twice", field_pos)
                        continue
                    if isinstance(field_type, T.PouType):
                        pass
                    struct.fields[field_name.upper()] = T.VarInfo(
                        field_name, field_type, "FIELD", field_pos, decl.init, owner=struct.name
                    )
            return struct
        if isinstance(ref, A.PointerTypeRef):
            what = {"POINTER": "POINTER TO", "REF_TO": "REF_TO", "REFERENCE": "REFERENCE TO"}[ref.what]
            self.diag.error(
                "E0007",
                f"{what} is not supported: pointers and references are not part of plcrun's ST",
                ref.pos,
                "pass structured data as VAR_IN_OUT instead",
            )
            return T.ERROR
        raise AssertionError(ref)

    def _enum(self, ref: A.EnumTypeRef, name: str) -> T.EnumType:
        values: dict[str, int] = {}
        spelling: dict[str, str] = {}
        next_value = 0
        for value_name, value_pos, value_expr in ref.values:
            if value_expr is not None:
                number = self.const_int(value_expr)
                if number is None:
                    self.diag.error("E0206", "enumeration values must be constant integers", value_expr.pos)
                    number = next_value
                next_value = number
            if value_name.upper() in values:
                self.diag.error("E0102", f"enumeration value '{value_name}' is declared twice", value_pos)
            values[value_name.upper()] = next_value
            spelling[value_name.upper()] = value_name
            next_value += 1
        first = next(iter(values.values()), 0)
        return T.EnumType(name or "<enum>", values, spelling, first)

    # ------------------------------------------------------------ constants
    def const_value(self, expr: Any) -> object | None:
        """Value of a constant expression (literals, named constants, arithmetic), or None."""
        if isinstance(expr, A.IntLit | A.BoolLit | A.StringLit):
            return expr.value
        if isinstance(expr, A.RealLit):
            return expr.value
        if isinstance(expr, A.TimeLit):
            return expr.nanoseconds
        if isinstance(expr, A.Paren):
            return self.const_value(expr.inner)
        if isinstance(expr, A.Name):
            key = expr.name.upper()
            const = self.local_constants.get(self.scope, {}).get(key) or self.constants.get(key)
            return const.value if const is not None else None
        if isinstance(expr, A.EnumLit):
            enum = self.types.get(expr.type_name.upper())
            if isinstance(enum, T.EnumType):
                return enum.values.get(expr.value_name.upper())
            return None
        if isinstance(expr, A.Unary):
            inner = self.const_value(expr.operand)
            if isinstance(inner, int | float) and not isinstance(inner, bool) and expr.op in "-+":
                return -inner if expr.op == "-" else inner
            if isinstance(inner, bool) and expr.op == "NOT":
                return not inner
            return None
        if isinstance(expr, A.Binary):
            chain: list[A.Binary] = []  # the left spine, folded with a loop (a chain can be long)
            node: Any = expr
            while isinstance(node, A.Binary | A.Paren):
                if isinstance(node, A.Binary):
                    chain.append(node)
                    node = node.left
                else:
                    node = node.inner
            value = self.const_value(node)
            for link in reversed(chain):
                right = self.const_value(link.right)
                if not isinstance(value, int | float) or not isinstance(right, int | float):
                    return None
                try:
                    value = _fold(link.op, value, right)
                except (ZeroDivisionError, OverflowError, ValueError):
                    return None
            return value
        return None

    def const_int(self, expr: Any) -> int | None:
        value = self.const_value(expr)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None

    # ------------------------------------------------------------ variables
    def make_vars(self, block: A.VarBlock, owner: str) -> list[T.VarInfo]:
        out = []
        for decl in block.decls:
            var_type = self.type_ref(decl.type_ref)
            init = decl.init
            if init is None and isinstance(decl.type_ref, A.NamedTypeRef):
                init = self.type_inits.get(decl.type_ref.name.upper())
            for name, pos in decl.names:
                var = T.VarInfo(
                    name,
                    var_type,
                    block.kind,
                    pos,
                    init,
                    constant=block.constant,
                    retain=block.retain,
                    location=decl.location,
                    attributes=dict(decl.attributes),
                    owner=owner,
                )
                out.append(var)
                if block.constant and init is not None:
                    value = self.const_value(init)
                    if value is not None and T.is_elementary(var_type):
                        table = (
                            self.constants
                            if owner == "GLOBAL"
                            else self.local_constants.setdefault(owner.upper(), {})
                        )
                        table.setdefault(name.upper(), ConstRef(var_type, value))
        return out

    def add_globals(self, block: A.VarBlock, library: bool = False) -> None:
        if block.kind != "VAR_GLOBAL":
            self.diag.error("E0106", f"{block.kind} is not allowed here; use VAR_GLOBAL", block.pos)
            return
        if library:  # a user global of the same name shadows the library's (its constant too)
            kept = [d for d in block.decls if not any(n.upper() in self.globals for n, _ in d.names)]
            if len(kept) != len(block.decls):
                block = A.VarBlock(block.pos, block.kind, block.constant, block.retain, kept)
        for var in self.make_vars(block, "GLOBAL"):
            if var.key in self.globals:
                self.diag.error("E0102", f"global '{var.name}' is declared twice", var.pos)
                continue
            self.globals[var.key] = var

    def _resolve_pou(self, pou: T.PouType) -> None:
        self.scope = pou.name.upper()
        try:
            self._resolve_pou_in_scope(pou)
        finally:
            self.scope = ""

    def _resolve_pou_in_scope(self, pou: T.PouType) -> None:
        decl: A.Pou = pou.decl
        if decl.return_type is not None:
            pou.return_type = self.type_ref(decl.return_type)
        elif pou.kind == "FUNCTION":
            self.diag.error("E0106", f"function '{pou.name}' needs a return type", decl.pos)
            pou.return_type = T.ERROR
        for block in decl.var_blocks:
            if block.kind in ("VAR_CONFIG", "VAR_ACCESS"):
                self.diag.error("E0007", f"{block.kind} is not supported", block.pos)
                continue
            if block.kind == "VAR_GLOBAL":
                if pou.kind != "PROGRAM":
                    self.diag.error("E0106", f"VAR_GLOBAL is not allowed in a {pou.kind.lower()}", block.pos)
                self.add_globals(block)
                continue
            if pou.kind == "FUNCTION" and block.retain:
                self.diag.error("E0106", "a FUNCTION has no memory: RETAIN is not allowed", block.pos)
            for var in self.make_vars(block, pou.name):
                self._check_var(pou, var)
                if var.key in pou.variables:
                    self.diag.error("E0102", f"variable '{var.name}' is declared twice", var.pos)
                    continue
                if pou.kind == "FUNCTION" and var.key == pou.name.upper():
                    self.diag.error("E0102", f"'{var.name}' is the function's own name", var.pos)
                    continue
                pou.variables[var.key] = var

    def _check_var(self, pou: T.PouType, var: T.VarInfo) -> None:
        if var.location is not None and pou.kind != "PROGRAM":
            self.diag.error(
                "E0106",
                f"located variable '{var.name}' (AT {var.location}) is only allowed in a PROGRAM or VAR_GLOBAL",
                var.pos,
            )
        if isinstance(var.type, T.PouType) and pou.kind == "FUNCTION" and var.section != "VAR_IN_OUT":
            self.diag.error("E0106", "a FUNCTION cannot contain function block instances", var.pos)

    def _check_containment_cycles(self) -> None:
        def contains(t: T.Type, target: str, seen: set[str]) -> bool:
            if isinstance(t, T.ArrayType):
                return contains(t.element, target, seen)
            if isinstance(t, T.StructType):
                return any(contains(f.type, target, seen) for f in t.fields.values())
            if isinstance(t, T.PouType):
                key = t.name.upper()
                if key == target:
                    return True
                if key in seen:
                    return False
                seen.add(key)
                return any(
                    contains(v.type, target, seen)
                    for v in t.variables.values()
                    if v.section not in _REFERENCES
                )
            return False

        for key, pou in self.pous.items():
            if pou.kind != "FUNCTION_BLOCK":
                continue
            for var in pou.variables.values():
                if var.section not in _REFERENCES and contains(var.type, key, set()):
                    self.diag.error(
                        "E0110", f"function block '{pou.name}' contains an instance of itself", var.pos
                    )
                    var.type = T.ERROR

    # ------------------------------------------------------------ configuration
    def configure(
        self, units: list[A.CompilationUnit], main_file: str
    ) -> tuple[str, list[TaskModel], list[InstanceModel]]:
        configs = [c for u in units for c in u.configurations]
        if len(configs) > 1:
            self.diag.error(
                "E0109",
                "only one CONFIGURATION can run; split the others into separate files",
                configs[1].pos,
            )
        if not configs:
            programs = [p for p in self.pous.values() if p.kind == "PROGRAM" and not p.library]
            default = TaskModel("DEFAULT", DEFAULT_INTERVAL_NS, 0, Pos(main_file, 1, 1))
            defaults = [InstanceModel(p.name, p, "DEFAULT", p.decl.pos) for p in programs]
            return "globals", [default] if defaults else [], defaults
        config = configs[0]  # its globals were declared by resolve_all
        tasks: dict[str, TaskModel] = {}
        instances: list[InstanceModel] = []
        for resource in config.resources:
            for task_decl in resource.tasks:
                declared = self._task(task_decl)
                if declared is None:
                    continue
                task = declared
                if task.name.upper() in tasks:
                    self.diag.error("E0102", f"task '{task.name}' is declared twice", task_decl.pos)
                    continue
                tasks[task.name.upper()] = task
            for prog in resource.programs:
                instance = self._instance(prog, tasks)
                if instance is None:
                    continue
                if any(i.name.upper() == instance.name.upper() for i in instances):
                    self.diag.error(
                        "E0102", f"program instance '{prog.instance}' is declared twice", prog.pos
                    )
                    continue
                instances.append(instance)
        return config.name, list(tasks.values()), instances

    def _task(self, decl: A.TaskDecl) -> TaskModel | None:
        for key, (pos, _) in decl.params.items():
            if key not in ("INTERVAL", "PRIORITY", "SINGLE"):
                self.diag.error(
                    "E0109", f"unknown task parameter '{key}'", pos, "tasks take INTERVAL and PRIORITY"
                )
        if "SINGLE" in decl.params:
            self.diag.error(
                "E0007",
                "event tasks (SINGLE) are not supported",
                decl.params["SINGLE"][0],
                "give the task an INTERVAL",
            )
            return None
        if "INTERVAL" not in decl.params:
            self.diag.error(
                "E0109", f"task '{decl.name}' needs an INTERVAL", decl.pos, "e.g. INTERVAL := T#10ms"
            )
            return None
        interval_expr = decl.params["INTERVAL"][1]
        interval = self.const_value(interval_expr)
        if not isinstance(interval_expr, A.TimeLit) or not isinstance(interval, int) or interval <= 0:
            self.diag.error(
                "E0109",
                "INTERVAL must be a positive TIME literal",
                interval_expr.pos,
                "e.g. INTERVAL := T#10ms",
            )
            return None
        if interval < 1_000_000:
            self.diag.error("E0109", "INTERVAL must be at least 1 ms", interval_expr.pos)
            return None
        priority = 0
        if "PRIORITY" in decl.params:
            value = self.const_int(decl.params["PRIORITY"][1])
            if value is None or value < 0:
                self.diag.error(
                    "E0109", "PRIORITY must be a non-negative integer", decl.params["PRIORITY"][0]
                )
            else:
                priority = value
        return TaskModel(decl.name, interval, priority, decl.pos)

    def _instance(self, prog: A.ProgramConfig, tasks: dict[str, TaskModel]) -> InstanceModel | None:
        pou = self.pous.get(prog.type_name.upper())
        if pou is None or pou.kind != "PROGRAM":
            names = [p.name for p in self.pous.values() if p.kind == "PROGRAM"]
            what = "unknown program" if pou is None else f"'{prog.type_name}' is not a PROGRAM:"
            self.diag.error(
                "E0109", f"{what} '{prog.type_name}'", prog.type_pos, did_you_mean(prog.type_name, names)
            )
            return None
        if prog.task is None:
            self.diag.error(
                "E0109", f"program instance '{prog.instance}' needs a task", prog.pos, "add WITH <task>"
            )
            return None
        task = tasks.get(prog.task.upper())
        if task is None:
            self.diag.error(
                "E0109",
                f"unknown task '{prog.task}'",
                prog.task_pos or prog.pos,
                did_you_mean(prog.task, [t.name for t in tasks.values()]),
            )
            return None
        if prog.args:
            self.diag.error(
                "E0007",
                "program parameters in a configuration are not supported",
                prog.pos,
                "use VAR_EXTERNAL",
            )
        return InstanceModel(prog.instance, pou, task.name, prog.pos)


_FOLD_LIMIT = 2**128
# Sections that refer to an instance living elsewhere rather than containing one.
_REFERENCES = ("VAR_IN_OUT", "VAR_EXTERNAL")


def _fold(op: str, left: float, right: float) -> object | None:
    if isinstance(left, int) and isinstance(right, int) and max(abs(left), abs(right)) > _FOLD_LIMIT:
        raise OverflowError  # far beyond any ST type: not folded (keeps folding cheap and printable)
    both_int = isinstance(left, int) and isinstance(right, int)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        if both_int:
            q = abs(int(left)) // abs(int(right))
            return q if (left < 0) == (right < 0) else -q
        return left / right
    if op == "MOD" and both_int:
        q = abs(int(left)) // abs(int(right))
        q = q if (left < 0) == (right < 0) else -q
        return int(left) - int(right) * q
    if op == "**":
        return float(float(left) ** right)
    return None
