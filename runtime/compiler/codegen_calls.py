"""Code generation of calls inside expressions: a mixin of ``codegen_expr.ExprGen``.

- ``EN``/``ENO`` around any call;
- standard functions: QUALITY_OF/AGE_OF read the process image by a path built once per instance
  and index (a table of the module), MIN/MAX/LIMIT of plain reads are written inline, and a
  REAL -> integer/TIME conversion remembers its last argument and result per call site;
- ST functions: a one-line function is written in place of its call; a function with outputs is
  called in a statement before the expression (``pre``), which then stores its outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import builtins as B
from . import st_ast as A
from . import st_types as T
from .ast_queries import chain_indices
from .codegen_inline import inlinable_function
from .codegen_text import ARITHMETIC, CALLS, LITERAL, is_pure
from .codegen_values import ValueBuilder, class_name, output_store, store_code
from .model import VarRef


class CallMixin:
    pre: list[str]
    values: ValueBuilder
    aliases: dict[int, str]
    self_name: str
    module_lines: list[tuple[str, int]] | None
    module_name: str
    io_tables: dict[int, tuple[str, str]]
    qualities_local: str
    real_temps: set[str]

    if TYPE_CHECKING:  # provided by ExprGen

        def temp(self, stem: str = "t") -> str: ...

        def expr(self, e: A.Expr) -> str: ...

        def lvalue(self, e: A.Expr) -> str: ...

    def call(self, e: A.Call) -> str:
        """A call as an expression. ``EN := c`` runs it only when c (the result is then the result
        type's default); ``ENO => v`` sets v to whether it ran."""
        assert e.ref is not None
        kind, target = e.ref
        en = e.en
        eno = e.eno
        flag = None
        if en is not None:
            flag = self.temp("en")
            self.pre.append(f"{flag} = {self.expr(en)}")
        if kind == "desugared":
            assert e.desugared is not None
            code = self.expr(e.desugared)
        elif kind == "builtin":
            assert isinstance(target, B.BuiltinRef)
            code = self.builtin(e, target)
        elif kind == "function":
            assert isinstance(target, T.PouType)
            code = self.function_call(e, target, flag)
        else:
            raise AssertionError("function block calls are statements")
        if flag is not None and not (isinstance(target, T.PouType) and len(function_returns(target)) > 1):
            code = f"({code} if {flag} else {self.values.default(e.ty)})"
        if eno is not None:
            self.pre.append(f"{self.lvalue(eno)} = {flag or 'True'}")
        return code

    def builtin(self, e: A.Call, ref: B.BuiltinRef) -> str:
        if ref.name in ("QUALITY_OF", "AGE_OF"):
            assert e.io_target is not None
            if ref.name == "QUALITY_OF" and self.qualities_local:
                return f"{self.qualities_local}.get({self.io_path(e.io_target)}, 4)"
            if ref.name == "AGE_OF":  # ScanContext.age without its call: 0 when never stamped
                stamp, age = self.temp(), self.temp()
                path = self.io_path(e.io_target)
                return (
                    f"(0 if ({stamp} := _rt.stamps.get({path})) is None"
                    f" else ({age} if ({age} := _rt.clock_now - {stamp}) > 0 else 0))"
                )
            return B.emit_builtin(ref, [self.io_path(e.io_target)])
        values = [a.value for a in sorted_args(e) if a.value is not None]
        codes = []
        for i, value in enumerate(values):
            code = self.expr(value)
            target = ref.arg_types[i] if i < len(ref.arg_types) else None
            if target is not None and ref.name in ("MAX", "MIN", "LIMIT", "SEL", "MUX"):
                if T.is_real_like(target) and T.is_integer_like(value.ty):
                    code = f"_float({code})"
            codes.append(code)
        real = len(ref.arg_types) >= len(codes) and all(
            T.is_real_like(t) for t in ref.arg_types[: len(codes)]
        )
        if ref.name in ("MAX", "MIN") and len(codes) == 2:
            return self.min_max(ref.name, codes[0], codes[1], real)
        if _real_to_whole(ref) and len(codes) == 1 and self.module_lines is not None:
            return self.remembered(ref, codes[0], e.pos.line, values[0])
        if ref.name == "LIMIT" and is_pure(codes[0]) and is_pure(codes[2]) and not CALLS.search(codes[1]):
            return self.limit(codes[0], codes[1], codes[2], real)
        return B.emit_builtin(ref, codes)

    def remembered(self, ref: B.BuiltinRef, value: str, line: int, arg: A.Expr) -> str:
        """A REAL -> integer/TIME conversion that remembers its last argument and result (per call
        site): a parameter such as ``REAL_TO_TIME(hold_s * 1000.0)`` is converted again only when
        it changes. Equal floats give equal whole results (0.0 and -0.0 both 0); a NaN never equals
        the remembered key, so its conversion still faults where it did. The key is the parameter
        itself when the argument is ``x * c``, ``x / c``, ``x + c`` or ``x - c`` (c a literal): equal
        x give equal arguments, and -0.0 and 0.0 give arguments that convert alike. Key and result
        are two module names (``_key_...``, ``_val_...``) that ``_remember`` rebinds, the result
        first: only the state's scan thread runs the generated code, one task at a time. A key
        that is a plain read is read again where it changed instead of being kept in a local."""
        site = f"{self.module_name}_{len(self.module_lines or [])}"
        key_name, value_name = f"_key_{site}", f"_val_{site}"
        assert self.module_lines is not None
        self.module_lines.append((f"{key_name} = None", line))
        self.module_lines.append((f"{value_name} = 0", line))
        key = self.temp("k")
        key_code, argument = value, key
        operand = _keyed_operand(arg)
        if operand is not None:
            pre_mark, lines_mark = len(self.pre), len(self.module_lines)
            operand_code = self.expr(operand)
            if len(self.pre) > pre_mark or len(self.module_lines) > lines_mark:
                del self.pre[pre_mark:], self.module_lines[lines_mark:]  # not generated twice
            elif value.count(operand_code) == 1:
                key_code, argument = operand_code, value.replace(operand_code, key)
        convert = B.emit_builtin(ref, [argument])
        store = f"_remember(_NS, {key_name!r}, {value_name!r}"
        if is_pure(key_code):
            return (
                f"({value_name} if {key_name} == {key_code} else {store}, ({key} := {key_code}), {convert}))"
            )
        return f"({value_name} if {key_name} == ({key} := {key_code}) else {store}, {key}, {convert}))"

    def min_max(self, name: str, first: str, second: str, real: bool = False) -> str:
        """MAX/MIN of two values inline, each evaluated once, in order (Python's ``max(a, b)`` is a
        call that costs four times as much): MAX is b if b > a else a, MIN b if b < a else a, as the
        builtins decide (so a NaN in the first place wins, as before)."""
        a_code, a_ref = self._operand(first, keep=CALLS.search(second) is not None, real=real)
        b_code, b_ref = self._operand(second, real=real)
        test = "<" if name == "MAX" else ">"
        return f"({b_ref} if {a_code} {test} {b_code} else {a_ref})"

    def limit(self, low: str, value: str, high: str, real: bool = False) -> str:
        """LIMIT(mn, in, mx) inline when mn and mx are literals or plain variable reads (reading them
        again cannot change their value or fault): mn if in < mn else (mx if in > mx else in)."""
        tmp = self.temp()
        if real:
            self.real_temps.add(tmp)
        return f"({low} if ({tmp} := {value}) < {low} else ({high} if {tmp} > {high} else {tmp}))"

    def _operand(self, code: str, keep: bool = False, real: bool = False) -> tuple[str, str]:
        """(code that evaluates ``code`` once, code of its value afterwards): a literal or a pure
        read of the instance's own data is read again (cheaper than keeping it in a local), unless
        ``keep`` (what runs in between may write it: a function with VAR_IN_OUT)."""
        if LITERAL.fullmatch(code) or (not keep and is_pure(code) and "_G." not in code):
            return code, code
        tmp = self.temp()
        if real:
            self.real_temps.add(tmp)
        return f"({tmp} := {code})", tmp

    def io_owner(self, target: A.Expr) -> str:
        """The code of the instance path that ``target``'s process-image path starts with."""
        node = target
        while isinstance(node, A.Member | A.Index):
            node = node.base
        assert isinstance(node, A.Name) and isinstance(node.ref, VarRef)
        return "_G._path" if node.ref.scope == "global" else f"{self.self_name}._path"

    def io_path(self, target: A.Expr) -> str:
        """The process-image path of ``target`` at run time: an f-string, built once per instance
        path and index values and then looked up in a table of the module (formatting a path
        costs more than the lookup of QUALITY_OF or AGE_OF itself)."""
        parts: list[str] = []
        keys: list[str] = []
        node = target
        while isinstance(node, A.Member | A.Index):
            if isinstance(node, A.Member):
                parts.append("." + node.name.lower())
            else:
                codes = [self.expr(i) for i in node.indices]
                keys = codes + keys
                parts.append("[" + ",".join("{" + code + "}" for code in codes) + "]")
            node = node.base
        assert isinstance(node, A.Name) and isinstance(node.ref, VarRef)
        owner = "_G._path" if node.ref.scope == "global" else f"{self.self_name}._path"
        text = "f" + repr("{" + owner + "}." + node.name.lower() + "".join(reversed(parts)))
        if self.module_lines is None or not all(ARITHMETIC.fullmatch(k) for k in keys):
            return text
        # per instance path a table by index values: an int key hashes faster than a tuple
        key = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
        hoisted = self.io_tables.get(id(target))  # the instance's table, looked up before the loop
        if hoisted is not None and keys:
            local, kind = hoisted
            if kind == "offset":  # a _PathTable by element offset: the loop local itself
                index = chain_indices(target)[0]
                assert isinstance(index, A.Name) and isinstance(index.ref, VarRef)
                return f"{local}[{self.aliases[id(index.ref.var)]}]"
            if kind == "index":  # a _PathTable by index value
                return f"{local}[{key}]"
            return f"({local}.get({key}) or {local}.setdefault({key}, {text}))"
        table = f"_paths_{self.module_name}_{len(self.module_lines)}"
        if not keys:  # by instance path, made when first asked for
            made = "f" + repr("{_o}." + node.name.lower() + "".join(reversed(parts)))
            self.module_lines.append((f"{table} = _PathTable(lambda _o: {made})", target.pos.line))
            return f"{table}[{owner}]"
        self.module_lines.append((f"{table} = {{}}", target.pos.line))
        by_index = f"({table}.get({owner}) or {table}.setdefault({owner}, {{}}))"
        return f"({by_index}.get({key}) or {table}[{owner}].setdefault({key}, {text}))"

    def function_call(self, e: A.Call, pou: T.PouType, en_flag: str | None = None) -> str:
        bound = e.bound
        by_param = {id(p): a for p, a in bound}
        result = inlinable_function(pou) if en_flag is None else None
        if result is not None:
            return self._inline_function(pou, result, by_param)
        args = []
        for param in pou.variables.values():
            if param.section not in ("VAR_INPUT", "VAR_IN_OUT"):
                continue
            arg = by_param.get(id(param))
            if arg is None or arg.value is None:
                args.append(self.values.initial(param.type, param.init))
                continue
            code = self.expr(arg.value)
            if param.section == "VAR_INPUT":
                code = store_code(code, arg.value.ty, param.type, arg.value)
                if isinstance(T.underlying(param.type), T.StructType | T.ArrayType):
                    code = f"_clone({code})"  # a function gets a copy of a structured input
            args.append(code)
        call = f"{class_name(pou)}({', '.join(args)})"
        returned = function_returns(pou)
        if len(returned) == 1:
            return call
        tmp = self.temp()
        if en_flag is None:
            self.pre.append(f"{tmp} = {call}")
        else:
            defaults = [self.values.default(pou.return_type or T.ERROR)]
            defaults += [self.values.default(p.type) for p in returned[1:] if p is not None]
            self.pre.append(f"{tmp} = {call} if {en_flag} else ({', '.join(defaults)},)")
        guard = f"if {en_flag}: " if en_flag is not None else ""
        for i, returned_param in enumerate(returned[1:], start=1):
            assert returned_param is not None
            param = returned_param
            arg = by_param.get(id(param))
            if arg is None:
                continue
            destination = arg.target if param.section == "VAR_OUTPUT" else arg.value
            if destination is None:
                continue
            value = f"{tmp}[{i}]"
            if arg.negated:
                value = f"(not {value})"
            self.pre.append(guard + output_store(self.lvalue(destination), value, param.type, destination.ty))
        return f"{tmp}[0]"

    def _inline_function(self, pou: T.PouType, result: A.Expr, by_param: dict[int, A.Arg]) -> str:
        """``F(args)`` of a one-line function as its expression: each parameter stands for its
        argument; arguments that are not plain reads are evaluated first, in order, into locals."""
        prelude: list[str] = []
        outer = dict(self.aliases)
        codes: list[str] = []
        for param in pou.variables.values():
            arg = by_param.get(id(param))
            if arg is None or arg.value is None:
                codes.append(self.values.initial(param.type, param.init))
            else:
                codes.append(store_code(self.expr(arg.value), arg.value.ty, param.type, arg.value))
        # a read stands for its argument only when nothing after it can write what it reads
        calls_after = [CALLS.search("".join(codes[k + 1 :])) is not None for k in range(len(codes))]
        for param, code, call_after in zip(pou.variables.values(), codes, calls_after, strict=True):
            if not is_pure(code) or (call_after and not LITERAL.fullmatch(code)):
                tmp = self.temp()
                prelude.append(f"({tmp} := {code})")
                code = tmp
            self.aliases[id(param)] = code
        scope = self.values.decls.scope
        self.values.decls.scope = pou.name.upper()
        try:
            code = store_code(self.expr(result), result.ty, pou.return_type or T.ERROR, result)
        finally:
            self.values.decls.scope = scope
            self.aliases = outer
        if prelude:
            return f"({', '.join(prelude)}, {code})[-1]"
        return f"({code})"


def _keyed_operand(arg: A.Expr) -> A.Expr | None:
    """The operand ``x`` of ``x * c``, ``c * x``, ``x / c``, ``x + c``, ``c + x``, ``x - c`` or
    ``c - x`` (c a numeric literal): the argument is a function of x alone, and x = 0.0 and -0.0
    give arguments whose whole values are equal (``c / x`` is left out: +-infinity)."""
    if not isinstance(arg, A.Binary) or arg.op not in ("*", "/", "+", "-"):
        return None
    literals = (A.IntLit, A.RealLit)
    if isinstance(arg.right, literals) and not isinstance(arg.left, literals):
        return arg.left
    if isinstance(arg.left, literals) and arg.op != "/" and not isinstance(arg.right, literals):
        return arg.right
    return None


def _real_to_whole(ref: B.BuiltinRef) -> bool:
    """A conversion from REAL/LREAL to an integer, bit string or TIME (rounded, a call)."""
    source, target = ref.source, T.underlying(ref.result)
    return (
        source is not None
        and T.is_real_like(source)
        and isinstance(target, T.ElementaryType)
        and target.kind in ("int", "bits", "time")
    )


def function_returns(pou: T.PouType) -> list[T.VarInfo | None]:
    """What a generated function returns: its result, then outputs and elementary in-outs."""
    extra = [
        v
        for v in pou.variables.values()
        if v.section == "VAR_OUTPUT" or (v.section == "VAR_IN_OUT" and T.is_elementary(v.type))
    ]
    return [None, *extra]


def sorted_args(e: A.Call) -> list[A.Arg]:
    if all(a.name is None for a in e.args):
        return e.args
    target = e.ref[1] if e.ref is not None else None
    names = B.PARAMETER_NAMES.get(target.name if isinstance(target, B.BuiltinRef) else "", [])
    order = {n: i for i, n in enumerate(names)}
    return sorted(e.args, key=lambda a: order.get((a.name or "").upper(), 99))
