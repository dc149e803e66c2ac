"""A straightforward tree-walking interpreter over plcrun's checked AST: the baseline of bench/scan_cost.py.

This is what a first implementation of an ST runtime would look like: every scan walks the statement
and expression nodes of the checked AST (parsed and type-checked by plcrun's own front end), keeps
variables in dicts (one dict per program/function block instance and per structure value, upper-case
names as keys, lists for arrays) and dispatches on the node class. It is not part of plcrun and only
supports what the benchmark programs need (plus the common statements), but what it supports follows
the same semantics as the compiled code: integers wrap to their width and REAL rounds to binary32 on
store, structure assignments copy, array indices are bounds-checked, PLC_TIME() is the scan's
logical time.

    interp = Interpreter.from_source(text, "prog.st")
    interp.write("main.grid_hz", 50.1)
    interp.run_scan(now_ns=0)
    interp.read("main.evs[1].setpoint_w")
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import struct
from collections.abc import Callable
from typing import Any

from plcrun.compiler import st_ast as A
from plcrun.compiler import st_types as T
from plcrun.compiler.api import library_sources
from plcrun.compiler.builtins import BuiltinRef
from plcrun.compiler.check import check_program
from plcrun.compiler.diagnostics import CompileError, DiagnosticBag
from plcrun.compiler.model import ConstRef, EnumRef, ProgramModel, VarRef
from plcrun.compiler.parser import parse_source

Env = dict[str, Any]
_F32 = struct.Struct("<f")
_PATH_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")


class InterpreterError(Exception):
    """The program uses something this small interpreter does not implement, or faults at run time."""


class _Exit(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    pass


def load_model(text: str, filename: str) -> ProgramModel:
    """Parse and check ``text`` with plcrun's front end (with the ST library), raising CompileError."""
    diag = DiagnosticBag()
    units = [parse_source(text, filename, diag)]
    library = library_sources()
    units += [parse_source(lib_text, lib_name, diag) for lib_name, lib_text in library]
    model = check_program(units, {name for name, _ in library}, filename, diag)
    if diag.has_errors:
        raise CompileError(diag.sorted(), {filename: text})
    return model


class Interpreter:
    """Runs the program instances of a checked program by walking their ASTs."""

    def __init__(self, model: ProgramModel) -> None:
        self.model = model
        self._statements: dict[type, Callable[[Any, Env], None]] = {
            A.Assign: self.exec_assign,
            A.CallStmt: self.exec_call_stmt,
            A.If: self.exec_if,
            A.For: self.exec_for,
            A.While: self.exec_while,
            A.Repeat: self.exec_repeat,
            A.Case: self.exec_case,
            A.Empty: lambda s, env: None,
            A.Exit: self.exec_exit,
            A.Continue: self.exec_continue,
            A.Return: self.exec_return,
        }
        self._expressions: dict[type, Callable[[Any, Env], Any]] = {
            A.IntLit: lambda e, env: float(e.value) if T.is_real_like(e.ty) else e.value,
            A.RealLit: lambda e, env: e.value,
            A.BoolLit: lambda e, env: e.value,
            A.StringLit: lambda e, env: e.value,
            A.TimeLit: lambda e, env: e.nanoseconds,
            A.DateLit: lambda e, env: e.value,
            A.Name: self.eval_name,
            A.Member: self.eval_member,
            A.Index: self.eval_index,
            A.Paren: lambda e, env: self.eval(e.inner, env),
            A.Unary: self.eval_unary,
            A.Binary: self.eval_binary,
            A.Call: self.eval_call,
        }
        self.now = 0
        self.globals: Env = {}
        for var in model.globals.values():
            self.globals[var.key] = self.initial(var.type, var.init)
        self.instances: dict[str, Env] = {}
        for inst in model.instances:
            self.instances[inst.name.lower()] = self.new_instance(inst.pou)

    @classmethod
    def from_source(cls, text: str, filename: str) -> Interpreter:
        return cls(load_model(text, filename))

    # ------------------------------------------------------------ values
    def initial(self, t: T.Type, init: Any) -> Any:
        u = T.underlying(t)
        if init is None:
            return self.default(u)
        if isinstance(init, A.ArrayInit):
            assert isinstance(u, T.ArrayType)
            flat: list[Any] = []
            for element in init.elements:
                if isinstance(element, A.RepeatedInit):
                    flat += [self.initial(u.element, element.value) for _ in range(element.count)]
                else:
                    flat.append(self.initial(u.element, element))
            flat += [self.default(u.element) for _ in range(u.size - len(flat))]
            return self._shape(flat, [hi - lo + 1 for lo, hi in u.dims])
        if isinstance(init, A.StructInit):
            value = self.default(u)
            members = u.fields if isinstance(u, T.StructType) else u.variables  # type: ignore[union-attr]
            for name, _, field_init in init.fields:
                value[name.upper()] = self.initial(members[name.upper()].type, field_init)
            return value
        return self.store_value(t, self.eval(init, {}))

    def _shape(self, flat: list[Any], sizes: list[int]) -> list[Any]:
        if len(sizes) == 1:
            return flat
        step = len(flat) // sizes[0]
        return [self._shape(flat[i * step : (i + 1) * step], sizes[1:]) for i in range(sizes[0])]

    def default(self, t: T.Type) -> Any:
        u = T.underlying(t)
        if isinstance(u, T.ElementaryType):
            return {"bool": False, "real": 0.0}.get(u.kind, 0)
        if isinstance(u, T.StringType):
            return ""
        if isinstance(u, T.EnumType):
            return u.default
        if isinstance(u, T.StructType):
            return {key: self.initial(f.type, f.init) for key, f in u.fields.items()}
        if isinstance(u, T.ArrayType):
            sizes = [hi - lo + 1 for lo, hi in u.dims]
            return self._shape([self.default(u.element) for _ in range(u.size)], sizes)
        if isinstance(u, T.PouType):
            return self.new_instance(u)
        raise InterpreterError(f"no default value for {t.display}")

    def new_instance(self, pou: T.PouType) -> Env:
        return {
            v.key: self.initial(v.type, v.init)
            for v in pou.variables.values()
            if v.section not in ("VAR_EXTERNAL", "VAR_TEMP")
        }

    def store_value(self, t: T.Type, value: Any) -> Any:
        """A value converted to how a variable of type ``t`` holds it (wrap, binary32, copy)."""
        u = T.underlying(t)
        if isinstance(u, T.ElementaryType):
            if u.kind == "real":
                value = float(value)
                return _F32.unpack(_F32.pack(value))[0] if u is T.REAL and math.isfinite(value) else value
            if u.kind == "bool":
                return bool(value)
            if u.kind in ("int", "bits", "time", "date"):
                low, high = T.int_range(u) or (0, 0)
                span = high - low + 1
                return (int(value) - low) % span + low
            return value
        if isinstance(value, dict | list):
            return copy.deepcopy(value)
        return value

    # ------------------------------------------------------------ scans
    def run_scan(self, now_ns: int) -> None:
        """One scan of every program instance (in declaration order) at logical time ``now_ns``."""
        self.now = now_ns
        for inst in self.model.instances:
            self.run_body(inst.pou, self.instances[inst.name.lower()])

    def run_body(self, pou: T.PouType, env: Env) -> None:
        for var in pou.variables.values():
            if var.section == "VAR_TEMP":
                env[var.key] = self.initial(var.type, var.init)
        with contextlib.suppress(_Return):
            self.exec_block(pou.decl.body, env)

    def exec_block(self, body: list[A.Stmt], env: Env) -> None:
        for s in body:
            handler = self._statements.get(type(s))
            if handler is None:
                raise InterpreterError(f"{s.pos.file}:{s.pos.line}: {type(s).__name__} is not supported")
            handler(s, env)

    # ------------------------------------------------------------ statements
    def exec_assign(self, s: A.Assign, env: Env) -> None:
        container, key = self.lvalue(s.target, env)
        container[key] = self.store_value(s.target.ty, self.eval(s.value, env))

    def exec_call_stmt(self, s: A.CallStmt, env: Env) -> None:
        call = s.call
        kind, target = call.ref
        if kind != "fb":
            self.eval_call(call, env)
            return
        instance = self.eval(call.callee, env)
        for param, arg in getattr(call, "bound", []):
            if param.section == "VAR_INPUT":
                instance[param.key] = self.store_value(param.type, self.eval(arg.value, env))
            elif param.section == "VAR_IN_OUT":
                raise InterpreterError("VAR_IN_OUT is not supported")
        self.run_body(target, instance)
        for param, arg in getattr(call, "bound", []):
            if param.section == "VAR_OUTPUT" and arg.target is not None:
                value = instance[param.key]
                container, key = self.lvalue(arg.target, env)
                container[key] = self.store_value(arg.target.ty, (not value) if arg.negated else value)

    def exec_if(self, s: A.If, env: Env) -> None:
        for cond, body in s.branches:
            if self.eval(cond, env):
                self.exec_block(body, env)
                return
        if s.else_body is not None:
            self.exec_block(s.else_body, env)

    def exec_for(self, s: A.For, env: Env) -> None:
        container, key = self.lvalue(s.var, env)
        var_type = s.var.ty
        end = self.eval(s.end, env)
        step = self.eval(s.step, env) if s.step is not None else 1
        if step == 0:
            raise InterpreterError(f"{s.pos.file}:{s.pos.line}: FOR step is 0")
        container[key] = self.store_value(var_type, self.eval(s.start, env))
        while (container[key] <= end) if step > 0 else (container[key] >= end):
            try:
                self.exec_block(s.body, env)
            except _Exit:
                return
            except _Continue:
                pass
            container[key] = self.store_value(var_type, container[key] + step)

    def exec_while(self, s: A.While, env: Env) -> None:
        while self.eval(s.cond, env):
            try:
                self.exec_block(s.body, env)
            except _Exit:
                return
            except _Continue:
                pass

    def exec_repeat(self, s: A.Repeat, env: Env) -> None:
        while True:
            try:
                self.exec_block(s.body, env)
            except _Exit:
                return
            except _Continue:
                pass
            if self.eval(s.cond, env):
                return

    def exec_case(self, s: A.Case, env: Env) -> None:
        selector = self.eval(s.selector, env)
        for labels, body in s.elements:
            for label in labels:
                if isinstance(label, A.CaseRange):
                    hit = self.eval(label.low, env) <= selector <= self.eval(label.high, env)
                else:
                    hit = self.eval(label, env) == selector
                if hit:
                    self.exec_block(body, env)
                    return
        if s.else_body is not None:
            self.exec_block(s.else_body, env)

    def exec_exit(self, s: A.Exit, env: Env) -> None:
        raise _Exit

    def exec_continue(self, s: A.Continue, env: Env) -> None:
        raise _Continue

    def exec_return(self, s: A.Return, env: Env) -> None:
        raise _Return

    # ------------------------------------------------------------ expressions
    def eval(self, e: A.Expr, env: Env) -> Any:
        handler = self._expressions.get(type(e))
        if handler is None:
            raise InterpreterError(f"{e.pos.file}:{e.pos.line}: {type(e).__name__} is not supported")
        return handler(e, env)

    def eval_name(self, e: A.Name, env: Env) -> Any:
        ref = e.ref
        if isinstance(ref, VarRef):
            if ref.scope == "global":
                return self.globals[ref.var.key]
            return env[ref.var.key]
        if isinstance(ref, EnumRef | ConstRef):
            return ref.value
        raise InterpreterError(f"{e.pos.file}:{e.pos.line}: cannot evaluate '{e.name}'")

    def eval_member(self, e: A.Member, env: Env) -> Any:
        return self.eval(e.base, env)[e.name.upper()]

    def eval_index(self, e: A.Index, env: Env) -> Any:
        value = self.eval(e.base, env)
        array = T.underlying(e.base.ty)
        assert isinstance(array, T.ArrayType)
        for index_expr, (low, high) in zip(e.indices, array.dims, strict=True):
            index = self.eval(index_expr, env)
            if not low <= index <= high:
                raise InterpreterError(f"{e.pos.file}:{e.pos.line}: index {index} is outside {low}..{high}")
            value = value[index - low]
        return value

    def lvalue(self, e: A.Expr, env: Env) -> tuple[Any, Any]:
        """The container (dict or list) and key that an assignment to ``e`` writes."""
        if isinstance(e, A.Name):
            ref = e.ref
            if isinstance(ref, VarRef):
                return (self.globals if ref.scope == "global" else env), ref.var.key
        elif isinstance(e, A.Member):
            return self.eval(e.base, env), e.name.upper()
        elif isinstance(e, A.Index):
            array = T.underlying(e.base.ty)
            assert isinstance(array, T.ArrayType)
            container = self.eval(e.base, env)
            offsets = []
            for index_expr, (low, high) in zip(e.indices, array.dims, strict=True):
                index = self.eval(index_expr, env)
                if not low <= index <= high:
                    raise InterpreterError(
                        f"{e.pos.file}:{e.pos.line}: index {index} is outside {low}..{high}"
                    )
                offsets.append(index - low)
            for offset in offsets[:-1]:
                container = container[offset]
            return container, offsets[-1]
        elif isinstance(e, A.Paren):
            return self.lvalue(e.inner, env)
        raise InterpreterError(f"{e.pos.file}:{e.pos.line}: cannot assign to {type(e).__name__}")

    def eval_unary(self, e: A.Unary, env: Env) -> Any:
        value = self.eval(e.operand, env)
        if e.op == "-":
            return -value
        if e.op == "+":
            return value
        if T.is_bool(e.ty):
            return not value
        bits = T.underlying(e.ty).bits  # type: ignore[attr-defined]
        return ~value & ((1 << bits) - 1)

    def eval_binary(self, e: A.Binary, env: Env) -> Any:
        op = e.op
        if op == "AND" and T.is_bool(e.ty):
            return bool(self.eval(e.left, env)) and bool(self.eval(e.right, env))
        if op == "OR" and T.is_bool(e.ty):
            return bool(self.eval(e.left, env)) or bool(self.eval(e.right, env))
        left = self.eval(e.left, env)
        right = self.eval(e.right, env)
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            if right == 0:
                raise InterpreterError(f"{e.pos.file}:{e.pos.line}: division by zero")
            if T.is_real_like(e.ty):
                return left / right
            quotient = abs(left) // abs(right)
            return quotient if (left >= 0) == (right >= 0) else -quotient
        if op == "MOD":
            if right == 0:
                raise InterpreterError(f"{e.pos.file}:{e.pos.line}: MOD by zero")
            quotient = abs(left) // abs(right)
            return left - right * (quotient if (left >= 0) == (right >= 0) else -quotient)
        if op == "**":
            return float(left) ** float(right)
        if op == "=":
            return left == right
        if op == "<>":
            return left != right
        if op == "<":
            return left < right
        if op == ">":
            return left > right
        if op == "<=":
            return left <= right
        if op == ">=":
            return left >= right
        if op == "AND":
            return left & right
        if op == "OR":
            return left | right
        if op == "XOR":
            return (left != right) if T.is_bool(e.ty) else left ^ right
        raise InterpreterError(f"{e.pos.file}:{e.pos.line}: operator {op} is not supported")

    def eval_call(self, e: A.Call, env: Env) -> Any:
        kind, target = e.ref
        if kind == "desugared":
            assert e.desugared is not None
            return self.eval(e.desugared, env)
        if kind == "builtin":
            return self.call_builtin(e, target, env)
        if kind == "function":
            return self.call_function(e, target, env)
        raise InterpreterError(f"{e.pos.file}:{e.pos.line}: a function block call is not a value")

    def call_function(self, e: A.Call, pou: T.PouType, env: Env) -> Any:
        frame: Env = {}
        for var in pou.variables.values():
            frame[var.key] = self.initial(var.type, var.init)
        frame[pou.name.upper()] = self.default(pou.return_type or T.LREAL)
        bound = getattr(e, "bound", [])
        for param, arg in bound:
            if param.section == "VAR_INPUT":
                frame[param.key] = self.store_value(param.type, self.eval(arg.value, env))
            elif param.section == "VAR_IN_OUT":
                raise InterpreterError("VAR_IN_OUT is not supported")
        with contextlib.suppress(_Return):
            self.exec_block(pou.decl.body, frame)
        for param, arg in bound:
            if param.section == "VAR_OUTPUT" and arg.target is not None:
                container, key = self.lvalue(arg.target, env)
                container[key] = self.store_value(arg.target.ty, frame[param.key])
        return frame[pou.name.upper()]

    def call_builtin(self, e: A.Call, ref: BuiltinRef, env: Env) -> Any:
        name = ref.name
        if name == "PLC_TIME":
            return self.now
        args = [self.eval(a.value, env) for a in e.args if a.value is not None]
        if name == "LIMIT":
            low, value, high = args
            return low if value < low else (high if value > high else value)
        if name == "MIN":
            return min(args)
        if name == "MAX":
            return max(args)
        if name == "ABS":
            return abs(args[0])
        if name == "SQRT":
            return math.sqrt(args[0])
        if name == "SEL":
            return args[2] if args[0] else args[1]
        raise InterpreterError(f"{e.pos.file}:{e.pos.line}: standard function {name} is not supported")

    # ------------------------------------------------------------ paths
    def _locate(self, path: str) -> tuple[Any, Any]:
        steps = [(m.group(1), m.group(2)) for m in _PATH_STEP.finditer(path)]
        head = steps[0][0].lower()
        container: Any = self.instances.get(head, self.globals)
        start = 1 if head in self.instances else 0
        types: dict[str, T.VarInfo] = {}
        for inst in self.model.instances:
            if inst.name.lower() == head:
                types = inst.pou.variables
        if start == 0:
            types = self.model.globals
        current: T.Type | None = None
        keys: list[Any] = []
        for name, index in steps[start:]:
            if name is not None:
                if current is not None:
                    u = T.underlying(current)
                    types = u.fields if isinstance(u, T.StructType) else u.variables  # type: ignore[attr-defined]
                current = types[name.upper()].type
                keys.append(name.upper())
            else:
                array = T.underlying(current)  # type: ignore[arg-type]
                assert isinstance(array, T.ArrayType)
                keys.append(int(index) - array.dims[0][0])
                current = array.element
        for key in keys[:-1]:
            container = container[key]
        return container, (keys[-1], current)

    def read(self, path: str) -> Any:
        container, (key, _) = self._locate(path)
        return container[key]

    def write(self, path: str, value: Any) -> None:
        container, (key, var_type) = self._locate(path)
        container[key] = self.store_value(var_type, value)
