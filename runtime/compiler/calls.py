"""Checker for calls: function block instances, user functions, and standard functions.

A mixin of ``BodyChecker``. Arguments are matched to parameters (formal ``:=``/``=>`` or
positional) and the match is stored on the call node as ``bound`` for code generation.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from . import builtins as B
from . import st_ast as A
from . import st_types as T
from .declarations import did_you_mean
from .model import VarRef
from .typing_rules import TypingError, common_type

if TYPE_CHECKING:
    from .declarations import Declarations
    from .diagnostics import DiagnosticBag


class CallChecker:
    decls: Declarations
    diag: DiagnosticBag
    pou: T.PouType | None
    calls: list[T.PouType]
    call_sites: list[tuple[T.PouType, Any]]  # every POU called (functions and FB instances) and where

    # provided by BodyChecker
    def expr(self, e: A.Expr, expected: T.Type | None = None) -> T.Type:
        raise NotImplementedError

    def lvalue(self, e: A.Expr) -> T.Type:
        raise NotImplementedError

    def lookup_var(self, name: str) -> VarRef | None:
        raise NotImplementedError

    def check_assignable(self, target_type: T.Type, value: A.Expr, value_type: T.Type, pos: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------
    def _take_en_eno(self, e: A.Call) -> None:
        """EN (execute only when TRUE) and ENO (TRUE when executed) are taken off the argument list;
        the code generator wraps the call with them."""
        e.en = None
        e.eno = None
        kept = []
        for arg in e.args:
            key = (arg.name or "").upper()
            if key == "EN" and arg.value is not None:
                t = self.expr(arg.value, T.BOOL)
                if not T.is_bool(t) and not isinstance(t, T.ErrorType):
                    self.diag.error("E0201", f"EN must be BOOL, not {t.display}", arg.value.pos)
                e.en = arg.value
            elif key == "ENO" and arg.target is not None:
                t = self.lvalue(arg.target)
                if not T.is_bool(t) and not isinstance(t, T.ErrorType):
                    self.diag.error(
                        "E0201", f"ENO is BOOL; it cannot be stored in {t.display}", arg.target.pos
                    )
                e.eno = arg.target
            else:
                kept.append(arg)
        e.args = kept

    def call(self, e: A.Call, expected: T.Type | None, statement: bool) -> T.Type:
        self._take_en_eno(e)
        callee = e.callee
        shadowing = self.lookup_var(callee.name) if isinstance(callee, A.Name) else None
        if isinstance(callee, A.Name) and (
            shadowing is None or not isinstance(shadowing.var.type, T.PouType)
        ):
            key = callee.name.upper()
            pou = self.decls.pous.get(key)
            if pou is not None:
                return self._pou_call(e, pou, statement)
            if key in B.OPERATOR_FUNCTIONS or key == "NOT":
                return self._operator_call(e, key, expected)
            if B.is_builtin(key):
                return self._builtin_call(e, key, expected)
            if key in ("ADR", "REF", "SIZEOF", "ADRINST", "BITADR", "__NEW", "__DELETE"):
                self.diag.error(
                    "E0007", f"{callee.name} is not supported: plcrun's ST has no pointers", callee.pos
                )
                self._check_args_loosely(e)
                return T.ERROR
            names = list(self.decls.pous) + list(B.REAL_FUNCTIONS) + list(B.STRING_FUNCTIONS)
            self.diag.error(
                "E0105",
                f"unknown function or function block '{callee.name}'",
                callee.pos,
                did_you_mean(key, names),
            )
            self._check_args_loosely(e)
            return T.ERROR
        instance_type = T.underlying(self.expr(callee))
        if isinstance(instance_type, T.ErrorType):
            self._check_args_loosely(e)
            return T.ERROR
        if not isinstance(instance_type, T.PouType):
            self.diag.error("E0303", f"{instance_type.display} is not callable", callee.pos)
            self._check_args_loosely(e)
            return T.ERROR
        e.ref = ("fb", instance_type)
        self.call_sites.append((instance_type, e.pos))
        self._bind_fb_args(e, instance_type)
        if not statement:
            self.diag.error(
                "E0303",
                "a function block call is a statement, not a value",
                e.pos,
                f"call it on its own line, then read its outputs ({instance_type.interface()})",
            )
            return T.ERROR
        return T.ERROR

    def _check_args_loosely(self, e: A.Call) -> None:
        for arg in e.args:
            if arg.value is not None:
                self.expr(arg.value)
            if arg.target is not None:
                self.expr(arg.target)

    def _pou_call(self, e: A.Call, pou: T.PouType, statement: bool) -> T.Type:
        if pou.kind != "FUNCTION":
            kind = "a function block type" if pou.kind == "FUNCTION_BLOCK" else "a program"
            self.diag.error(
                "E0303",
                f"'{pou.name}' is {kind}; declare an instance and call that",
                e.callee.pos,
                f"VAR my_{pou.name.lower()} : {pou.name}; END_VAR ... my_{pou.name.lower()}(...);",
            )
            self._check_args_loosely(e)
            return T.ERROR
        if self.pou is not None and pou.name.upper() == self.pou.name.upper():
            self.diag.error("E0110", f"function '{pou.name}' calls itself; recursion is not allowed", e.pos)
        e.ref = ("function", pou)
        if self.pou is None or pou is not self.pou:  # calling itself is reported above
            self.call_sites.append((pou, e.pos))
        if pou not in self.calls:
            self.calls.append(pou)
        params = [v for v in pou.variables.values() if v.section in ("VAR_INPUT", "VAR_IN_OUT", "VAR_OUTPUT")]
        positional = [v for v in params if v.section != "VAR_OUTPUT"]
        self._bind_args(e, pou, params, positional, allow_positional=True)
        return pou.return_type or T.ERROR

    def _bind_fb_args(self, e: A.Call, fb: T.PouType) -> None:
        params = [v for v in fb.variables.values() if v.section in ("VAR_INPUT", "VAR_IN_OUT", "VAR_OUTPUT")]
        positional = [v for v in params if v.section != "VAR_OUTPUT"]
        self._bind_args(e, fb, params, positional, allow_positional=True)

    def _bind_args(
        self,
        e: A.Call,
        pou: T.PouType,
        params: list[T.VarInfo],
        positional: list[T.VarInfo],
        allow_positional: bool,
    ) -> None:
        by_name = {p.key: p for p in params}
        bound: list[tuple[T.VarInfo, A.Arg]] = []
        formal = [a for a in e.args if a.name is not None]
        plain = [a for a in e.args if a.name is None]
        if formal and plain:
            self.diag.error(
                "E0305", "do not mix formal (name := value) and positional arguments", plain[0].pos
            )
        if plain:
            if len(plain) > len(positional):
                self.diag.error(
                    "E0302",
                    f"'{pou.name}' takes {len(positional)} arguments, got {len(plain)}",
                    plain[len(positional)].pos,
                    pou.interface(),
                )
            for param, arg in zip(positional, plain, strict=False):
                bound.append((param, arg))
        seen: set[str] = set()
        for arg in formal:
            assert arg.name is not None
            key = arg.name.upper()
            matched = by_name.get(key)
            if matched is None:
                hint = did_you_mean(arg.name, [p.name for p in params]) or pou.interface()
                self.diag.error("E0301", f"'{pou.name}' has no parameter '{arg.name}'", arg.pos, hint)
                self._check_args_loosely(A.Call(arg.pos, e.callee, [arg]))
                continue
            if key in seen:
                self.diag.error("E0301", f"parameter '{arg.name}' is given twice", arg.pos)
            seen.add(key)
            bound.append((matched, arg))
        for param, arg in bound:
            self._check_bound_arg(param, arg)
        given = {p.key for p, _ in bound}
        for param in params:
            if param.section == "VAR_IN_OUT" and param.key not in given:
                self.diag.error(
                    "E0306",
                    f"VAR_IN_OUT '{param.name}' of '{pou.name}' must be given",
                    e.pos,
                    pou.interface(),
                )
        e.bound = bound

    def _check_bound_arg(self, param: T.VarInfo, arg: A.Arg) -> None:
        if param.section == "VAR_OUTPUT":
            if arg.target is None:
                self.diag.error(
                    "E0304",
                    f"'{param.name}' is an output: bind it with '=>'",
                    arg.pos,
                    f"{param.name} => variable",
                )
                if arg.value is not None:
                    self.expr(arg.value)
                return
            target_type = self.lvalue(arg.target)
            if arg.negated and not T.is_bool(param.type):
                self.diag.error("E0304", "only BOOL outputs can be negated", arg.pos)
            self.check_assignable(target_type, arg.target, param.type, arg.target.pos)
            return
        if arg.target is not None:
            self.diag.error("E0304", f"'{param.name}' is not an output: use ':='", arg.pos)
            self.expr(arg.target)
            return
        assert arg.value is not None
        if param.section == "VAR_IN_OUT":
            if not isinstance(arg.value, A.Name | A.Member | A.Index):
                self.diag.error(
                    "E0304", f"VAR_IN_OUT '{param.name}' needs a variable, not an expression", arg.pos
                )
                self.expr(arg.value)
                return
            value_type = self.lvalue(arg.value)
            if not T.same_type(value_type, param.type) and not isinstance(value_type, T.ErrorType):
                self.diag.error(
                    "E0201",
                    f"VAR_IN_OUT '{param.name}' is {param.type.display}, got {value_type.display}",
                    arg.value.pos,
                )
            return
        value_type = self.expr(arg.value, param.type)
        self.check_assignable(param.type, arg.value, value_type, arg.value.pos)

    # ------------------------------------------------------------ standard functions
    def _values(self, e: A.Call, name: str) -> list[A.Expr] | None:
        """Arguments of a standard function in positional order (formal names mapped)."""
        if any(a.target is not None for a in e.args):
            self.diag.error("E0304", f"{name} has no outputs", e.pos)
            return None
        if all(a.name is None for a in e.args):
            return [a.value for a in e.args if a.value is not None]
        names = B.PARAMETER_NAMES.get(name)
        for i, arg in enumerate(e.args):
            if arg.name is None:
                self.diag.error("E0305", "do not mix formal and positional arguments", arg.pos)
                return None
            key = arg.name.upper()
            expected = names[i] if names is not None and i < len(names) else f"IN{i + 1}"
            if names is not None and key in names:
                continue
            if key not in (expected, f"IN{i}", f"IN{i + 1}") and not (key == "IN" and len(e.args) == 1):
                self.diag.error("E0301", f"{name} has no parameter '{arg.name}'", arg.pos)
                return None
        if names is not None:
            order = {n: i for i, n in enumerate(names)}
            ordered = sorted(e.args, key=lambda a: order.get((a.name or "").upper(), 99))
            return [a.value for a in ordered if a.value is not None]
        return [a.value for a in e.args if a.value is not None]

    def _operator_call(self, e: A.Call, name: str, expected: T.Type | None) -> T.Type:
        values = self._values(e, name)
        if values is None:
            return T.ERROR
        if name == "NOT":
            if len(values) != 1:
                self.diag.error("E0302", "NOT takes 1 argument", e.pos)
                return T.ERROR
            node: A.Expr = A.Unary(e.pos, "NOT", values[0])
        else:
            op, variadic = B.OPERATOR_FUNCTIONS[name]
            if len(values) < 2 or (not variadic and len(values) != 2):
                wanted = "at least 2" if variadic else "2"
                self.diag.error("E0302", f"{name} takes {wanted} arguments, got {len(values)}", e.pos)
                return T.ERROR
            if op in (">", ">=", "=", "<=", "<") and len(values) > 2:
                pairs = [A.Binary(e.pos, op, a, b, e.pos) for a, b in itertools.pairwise(values)]
                node = pairs[0]
                for pair in pairs[1:]:
                    node = A.Binary(e.pos, "AND", node, pair, e.pos)
            else:
                node = values[0]
                for value in values[1:]:
                    node = A.Binary(e.pos, op, node, value, e.pos)
        e.desugared = node
        e.ref = ("desugared", None)
        return self.expr(node, expected)

    def _builtin_call(self, e: A.Call, name: str, expected: T.Type | None) -> T.Type:
        if name in ("QUALITY_OF", "AGE_OF"):
            return self._io_query(e, name)
        values = self._values(e, name)
        if values is None:
            return T.ERROR
        types = [self.expr(v) for v in values]
        if any(isinstance(t, T.ErrorType) for t in types):
            return T.ERROR

        def need(count: int | tuple[int, int]) -> bool:
            low, high = (count, count) if isinstance(count, int) else count
            if low <= len(values) <= high:
                return True
            wanted = str(low) if low == high else (f"at least {low}" if high > 99 else f"{low} to {high}")
            self.diag.error("E0302", f"{name} takes {wanted} arguments, got {len(values)}", e.pos)
            return False

        def fail(message: str, pos: Any = None) -> T.Type:
            self.diag.error("E0201", message, pos or e.pos)
            return T.ERROR

        result: T.Type
        arg_types = list(types)
        ref = B.BuiltinRef(name, T.ERROR, arg_types)
        if name in B.REAL_FUNCTIONS or name == "ATAN2":
            if not need(2 if name == "ATAN2" else 1):
                return T.ERROR
            if not all(T.is_numeric(t) for t in types):
                return fail(f"{name} needs numeric arguments")
            result = types[0] if all(T.underlying(t) in (T.REAL, T.LREAL) for t in types[:1]) else T.LREAL
            if name == "ATAN2":
                result = T.LREAL if T.LREAL in types else T.REAL
        elif name == "ABS":
            if not need(1):
                return T.ERROR
            if not T.is_numeric(types[0]):
                return fail(f"ABS needs a number, not {types[0].display}")
            result = T.underlying(types[0])
        elif name in ("SEL", "MAX", "MIN", "LIMIT", "MUX"):
            count = {"SEL": 3, "LIMIT": 3}.get(name, (2, 999))
            if not need(count):
                return T.ERROR
            selector = types[0] if name in ("SEL", "MUX") else None
            if name == "SEL" and not T.is_bool(types[0]):
                return fail(f"SEL needs a BOOL selector, not {types[0].display}", values[0].pos)
            if name == "MUX" and not T.is_integer_like(types[0]):
                return fail(f"MUX needs an integer selector, not {types[0].display}", values[0].pos)
            operands = types[1:] if selector is not None else types
            try:
                result = common_type(operands)
            except TypingError as error:
                return fail(f"{name}: {error}")
            if isinstance(result, T.LiteralIntType | T.LiteralRealType) and expected is not None:
                result = expected if T.is_numeric(expected) else result
            if isinstance(T.underlying(result), T.ArrayType | T.StructType | T.PouType):
                return fail(f"{name} works on elementary values only")
            ref.arg_types = ([types[0]] if selector is not None else []) + [result] * len(operands)
        elif name in ("SHL", "SHR", "ROL", "ROR"):
            if not need(2):
                return T.ERROR
            if not T.is_integer_like(types[0]) or not T.is_integer_like(types[1]):
                return fail(f"{name} needs a bit string and an integer count")
            base = T.underlying(types[0])
            if isinstance(base, T.LiteralIntType):
                base = expected if isinstance(expected, T.ElementaryType) and expected.is_anyint else T.DWORD
            assert isinstance(base, T.ElementaryType)
            result = base
            ref.extra["bits"] = base.bits
        elif name == "CONCAT":
            if not need((1, 999)):
                return T.ERROR
            if not all(T.is_string(t) for t in types):
                return fail("CONCAT needs STRING arguments")
            result = T.STRING
        elif name in B.STRING_FUNCTIONS:
            kinds, result_kind = B.STRING_FUNCTIONS[name]
            if not need(len(kinds)):
                return T.ERROR
            for kind, t, v in zip(kinds, types, values, strict=True):
                ok = T.is_string(t) if kind == "S" else T.is_integer_like(t)
                if not ok:
                    return fail(
                        f"{name}: expected {'STRING' if kind == 'S' else 'an integer'}, not {t.display}",
                        v.pos,
                    )
            result = T.STRING if result_kind == "S" else T.INT
        elif name in B.SYSTEM_FUNCTIONS:
            if not need(0):
                return T.ERROR
            result = {
                "PLC_TIME": T.TIME,
                "TASK_OVERRUNS": T.UDINT,
                "TASK_RESET_OVERRUNS": T.BOOL,
                "TASK_SCAN_COUNT": T.ULINT,
                "TASK_LAST_EXEC_TIME": T.TIME,
            }[name]
        elif name == "TRUNC":
            if not need(1):
                return T.ERROR
            if not T.is_real_like(types[0]):
                return fail(f"TRUNC needs a REAL or LREAL, not {types[0].display}")
            result = T.DINT
            ref.source = types[0]
            ref.extra["how"] = "TRUNC"
        else:
            conversion = B.conversion_types(name)
            assert conversion is not None
            source, how, target = conversion
            if not need(1):
                return T.ERROR
            actual = types[0]
            if isinstance(actual, T.PouType | T.ArrayType | T.StructType):
                return fail(f"{name} cannot convert {actual.display}")
            if source is not None and not _convertible(source, actual):
                return fail(f"{name} expects {source.display}, not {actual.display}", values[0].pos)
            if how == "TRUNC" and not T.is_real_like(actual):
                return fail(f"{name} needs a REAL or LREAL, not {actual.display}")
            src = source or T.underlying(actual)
            if isinstance(src, T.LiteralIntType):
                src = T.LINT
            elif isinstance(src, T.LiteralRealType):
                src = T.LREAL
            ref.source = src
            ref.arg_types = [src]
            ref.extra["how"] = how
            result = target
        ref.result = result
        e.ref = ("builtin", ref)
        return result

    def _io_query(self, e: A.Call, name: str) -> T.Type:
        values = [a.value for a in e.args if a.value is not None]
        result = B.IO_QUALITY if name == "QUALITY_OF" else T.TIME
        if len(values) != 1 or not isinstance(values[0], A.Name | A.Member | A.Index):
            self.diag.error("E0302", f"{name} takes one variable, e.g. {name}(grid_hz)", e.pos)
            return result
        self.expr(values[0])
        root: A.Expr = values[0]
        while isinstance(root, A.Member | A.Index):
            root = root.base
        ref = root.ref if isinstance(root, A.Name | A.DirectVar) else None
        if (
            not isinstance(ref, VarRef)
            or ref.scope not in ("member", "global")
            or (ref.scope == "member" and (self.pou is None or self.pou.kind != "PROGRAM"))
        ):
            self.diag.error(
                "E0203",
                f"{name} needs a variable of a PROGRAM or a global (the variables I/O is bound to)",
                values[0].pos,
            )
            return result
        e.ref = ("builtin", B.BuiltinRef(name, result, []))
        e.io_target = values[0]
        owner = "" if ref.scope == "global" else (self.pou.name.upper() if self.pou is not None else "")
        self.decls.quality_reads.add((owner, ref.var.name.lower()))
        return result


def _convertible(source: T.Type, actual: T.Type) -> bool:
    s, a = T.underlying(source), T.underlying(actual)
    if isinstance(a, T.LiteralIntType):
        return T.is_numeric(s) or T.is_time(s) or (isinstance(s, T.ElementaryType) and s.kind == "date")
    if isinstance(a, T.LiteralRealType):
        return T.is_real_like(s)
    if isinstance(s, T.StringType):
        return isinstance(a, T.StringType)
    if isinstance(a, T.EnumType):
        return T.is_integer_like(s)
    if isinstance(s, T.ElementaryType) and isinstance(a, T.ElementaryType):
        return s.kind == a.kind or {s.kind, a.kind} <= {"int", "bits"}
    return False
