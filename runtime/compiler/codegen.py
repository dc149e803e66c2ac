"""Code generation: checked POUs -> Python source, one chunk per POU, lines mapped to ST lines.

A PROGRAM or FUNCTION_BLOCK becomes a class with ``__slots__`` (one slot per variable, named
``v_<name>``) and a ``_body`` method; a FUNCTION becomes a function; a STRUCT a class with an
``_assign`` method for value copies. Each emitted line remembers the ST line it came from, and
``GeneratedChunk.compile`` rewrites the Python line numbers to ST line numbers, so tracebacks and
runtime faults point at the ST source.
"""

from __future__ import annotations

from . import st_ast as A
from . import st_types as T
from .ast_queries import (
    has_continue,
)
from .ast_walk import NodeVisitor
from .builtins import wrap_code
from .codegen_calls import function_returns
from .codegen_chunk import Emitter, GeneratedChunk
from .codegen_expr import ExprGen
from .codegen_flow import FlowMixin
from .codegen_inline import inlinable_fb
from .codegen_loops import LoopMixin
from .codegen_ranges import inside, range_kept, store_range
from .codegen_values import ValueBuilder, class_name, output_store, store_code
from .declarations import Declarations
from .model import VarRef


class PouGenerator(LoopMixin, FlowMixin, NodeVisitor):
    """Generates one POU (class or function) into a chunk."""

    def __init__(self, decls: Declarations, pou: T.PouType, chunk: GeneratedChunk) -> None:
        self.decls = decls
        self.pou = pou
        self.values = ValueBuilder(decls)
        self.x = ExprGen(pou, self.values)
        self.x.ranged = range_kept(pou)
        self.out = Emitter(chunk)
        self.loops: list[tuple[str, str] | None] = []  # per enclosing loop: (alias, lvalue) of FOR aliases
        self.split_depth = 0  # nesting of FOR loops generated in a fast and a checked version
        self.count_up: tuple[int, str] | None = None  # see LoopMixin._count_up_loop
        self.hoisted: list[list[tuple[str, str]]] = []  # per enclosing FOR: (local, member) pairs
        self.stored_bool = ""  # the local the next BOOL assignment also stores into (see block)
        locals_ = {"r_"} | {
            "v_" + v.name.lower()
            for v in pou.variables.values()
            if pou.kind == "FUNCTION" or v.section == "VAR_TEMP"
        }
        self.init_flow(class_name(pou), locals_)
        self.x.module_lines = self.module_lines
        self.x.module_name = self.module_name

    # ------------------------------------------------------------ POU shells
    def generate(self) -> None:
        self.decls.scope = self.pou.name.upper()
        try:
            self._generate()
        finally:
            self.decls.scope = ""
        self.out.chunk.real_temps |= self.x.real_temps

    def _generate(self) -> None:
        decl: A.Pou = self.pou.decl
        self.out.line = decl.pos.line
        if self.pou.kind == "FUNCTION":
            self._function(decl)
        else:
            self._class(decl)

    def _members(self) -> list[T.VarInfo]:
        return [v for v in self.pou.variables.values() if v.section not in ("VAR_TEMP", "VAR_EXTERNAL")]

    def _class(self, decl: A.Pou) -> None:
        out = self.out
        members = self._members()
        slots = [f"'v_{v.name.lower()}'" for v in members] + ["'_path'"]
        out(f"class {class_name(self.pou)}:")
        out.depth += 1
        out(f"__slots__ = ({', '.join(slots)},)")
        out("def __init__(self):")
        out.depth += 1
        out("self._path = ''")
        for var in members:
            out.line = var.pos.line
            if var.section == "VAR_IN_OUT":
                out(f"self.v_{var.name.lower()} = None")  # a reference, bound at every call
            else:
                out(f"self.v_{var.name.lower()} = {self.values.initial(var.type, var.init)}")
        out.depth -= 1
        out.line = decl.pos.line
        out("def _body(self):")
        out.depth += 1
        self.start_body()
        for var in self.pou.variables.values():
            if var.section == "VAR_TEMP":
                out.line = var.pos.line
                out(f"v_{var.name.lower()} = {self.values.initial(var.type, var.init)}")
        self.block(decl.body)
        out.line = decl.end_pos.line
        out("return")
        self.finish_body()
        out.depth -= 2

    def _function(self, decl: A.Pou) -> None:
        out = self.out
        params = [v for v in self.pou.variables.values() if v.section in ("VAR_INPUT", "VAR_IN_OUT")]
        out(f"def {class_name(self.pou)}({', '.join('v_' + v.name.lower() for v in params)}):")
        out.depth += 1
        self.start_body()
        out(f"r_ = {self.values.default(self.pou.return_type or T.ERROR)}")
        for var in self.pou.variables.values():
            if var.section in ("VAR", "VAR_TEMP", "VAR_OUTPUT"):
                out.line = var.pos.line
                out(f"v_{var.name.lower()} = {self.values.initial(var.type, var.init)}")
        self.block(decl.body)
        out.line = decl.end_pos.line
        out(f"return {self._function_result()}")
        self.finish_body()
        out.depth -= 1

    def _function_result(self) -> str:
        returned = function_returns(self.pou)
        if len(returned) == 1:
            return "r_"
        names = ["r_"] + ["v_" + v.name.lower() for v in returned[1:] if v is not None]
        return "(" + ", ".join(names) + ")"

    # ------------------------------------------------------------ statements
    def block(self, stmts: list[A.Stmt]) -> None:
        start = len(self.out.chunk.lines)
        outer_locals = dict(self.x.fb_locals)  # a call's local serves this list's later statements only
        for k, s in enumerate(stmts):
            after = stmts[k + 1] if k + 1 < len(stmts) else None
            marked = isinstance(s, A.Assign) and isinstance(after, A.If) and _stored_then_tested(s, after)
            if marked:  # ``b[i] := e; IF b[i] THEN``: the IF tests the value just stored, kept in a local
                self.stored_bool = self.x.temp("b")
            self.stmt(s)
            self.stored_bool = ""
            if not marked:
                self.x.tested_bool = ""  # only the IF right after the assignment uses it
        self.x.fb_locals = outer_locals
        if len(self.out.chunk.lines) == start:
            self.out("pass")

    def flush_pre(self) -> None:
        for line in self.x.pre:
            self.out(line)
        self.x.pre.clear()

    def stmt(self, s: A.Stmt) -> None:
        self.out.line = s.pos.line
        if isinstance(s, A.If | A.Case | A.For | A.While | A.Repeat):
            self.compound(s)
        else:
            self.visit(s)

    def generic_visit(self, node: A.Node, *args: object) -> None:
        pass  # an empty or unsupported statement (the checker reported the latter) generates nothing

    def visit_Assign(self, s: A.Assign) -> None:
        self.assign(s.target, s.value)

    def visit_CallStmt(self, s: A.CallStmt) -> None:
        self.call_statement(s.call)

    def visit_If(self, s: A.If) -> None:
        self.if_statement(s)

    def visit_Case(self, s: A.Case) -> None:
        self.case(s)

    def visit_For(self, s: A.For) -> None:
        self.for_loop(s)

    def visit_While(self, s: A.While) -> None:
        self.while_loop(s)

    def visit_Repeat(self, s: A.Repeat) -> None:
        self.repeat_loop(s)

    def visit_Exit(self, s: A.Exit) -> None:
        self._write_back_innermost()
        self.out(self.exit_code("break"))

    def visit_Continue(self, s: A.Continue) -> None:
        self.out(self.exit_code("continue"))

    def visit_Return(self, s: A.Return) -> None:
        for loop in self.loops:
            if loop is not None:
                self.out(f"{loop[1]} = {loop[0]}")
        for level in self.hoisted:
            for local, source in level:
                self.out(f"{source} = {local}")
        self.out(self.return_code())

    def _return_statement(self) -> str:
        return "return " + self._function_result() if self.pou.kind == "FUNCTION" else "return"

    def _write_back_innermost(self) -> None:
        if self.loops and self.loops[-1] is not None:
            alias, target = self.loops[-1]
            self.out(f"{target} = {alias}")

    def assign(self, target: A.Expr, value: A.Expr) -> None:
        t = target.ty
        value_code = self.x.expr(value)
        u = T.underlying(t)
        if isinstance(target, A.BitAccess):
            base = self.x.lvalue(target.base)
            self.flush_pre()
            mask = 1 << target.bit
            base_type = T.underlying(target.base.ty)
            assert isinstance(base_type, T.ElementaryType)
            full = (1 << base_type.bits) - 1
            new = f"(({base}) | {mask}) if {value_code} else (({base}) & {full ^ mask})"
            if base_type.signed:
                new = wrap_code(new, base_type)
            self.out(f"{base} = {new}")
            return
        lvalue = self.x.lvalue(target)
        self.flush_pre()
        if isinstance(u, T.StructType):
            self.out(f"{lvalue}._assign({value_code})")
        elif isinstance(u, T.ArrayType):
            self.out(f"_acopy({lvalue}, {value_code})")
        else:
            span = store_range(t)
            if span is not None and inside(self.x.value_range(value), *span):
                code = value_code  # proved inside the target's range: no check, no wrap
            else:
                code = store_code(value_code, value.ty, t, value)
            rounded = _f32_argument(code)
            if rounded is not None:  # REAL rounding (or LREAL_TO_REAL) through the state's cell, no call
                self.out(f"_F32[0] = {rounded}")
                self.out(f"{lvalue} = _F32[0]")
            elif self.stored_bool and u is T.BOOL and code == value_code and ("." in lvalue or "[" in lvalue):
                self.out(f"{lvalue} = {self.stored_bool} = {code}")
                self.x.tested_bool = self.stored_bool
            else:
                self.out(f"{lvalue} = {code}")

    def call_statement(self, call: A.Call) -> None:
        if call.ref is None or call.ref[0] != "fb":
            code = self.x.call(call)
            self.flush_pre()
            self.out(code)
            return
        en = call.en
        eno = call.eno
        flag = None
        if en is not None:
            flag = self.x.temp("en")
            code = self.x.expr(en)
            self.flush_pre()
            self.out(f"{flag} = {code}")
            self.out(f"if {flag}:")
            self.out.depth += 1
        local = self._fb_call(call)
        if flag is not None:
            self.out.depth -= 1
        elif local:  # it ran unconditionally: what follows may read the instance from the local
            self.x.fb_locals[local[0]] = local[1]
        if eno is not None:
            target = self.x.lvalue(eno)
            self.flush_pre()
            self.out(f"{target} = {flag or 'True'}")

    def _fb_call(self, call: A.Call) -> tuple[str, str] | None:
        """The call's code; (instance code, local) when it put a plain instance in a local."""
        instance = self.x.lvalue(call.callee)
        local = None
        assert call.ref is not None
        callee = call.ref[1]
        inline = isinstance(callee, T.PouType) and inlinable_fb(callee)
        # a local for the instance: read once, not once per parameter (the object never changes)
        if inline or "[" in instance or "(" in instance or len(call.bound) >= 2:
            tmp = self.x.temp("fb")
            self.flush_pre()
            self.out(f"{tmp} = {instance}")
            if "[" not in instance and "(" not in instance:
                local = (instance, tmp)
            instance = tmp
        bound = call.bound
        after: list[str] = []
        for param, arg in bound:
            slot = f"{instance}.v_{param.name.lower()}"
            if param.section == "VAR_INPUT" and arg.value is not None:
                code = store_code(self.x.expr(arg.value), arg.value.ty, param.type, arg.value)
                self.flush_pre()
                structured = T.underlying(param.type)
                if isinstance(structured, T.StructType):
                    self.out(f"{slot}._assign({code})")  # inputs are copies, never references
                elif isinstance(structured, T.ArrayType):
                    self.out(f"_acopy({slot}, {code})")
                else:
                    self.out(f"{slot} = {code}")
            elif param.section == "VAR_IN_OUT" and arg.value is not None:
                source = self.x.lvalue(arg.value)
                self.flush_pre()
                self.out(f"{slot} = {source}")
                if T.is_elementary(param.type):
                    after.append(f"{source} = {slot}")
            elif param.section == "VAR_OUTPUT" and arg.target is not None:
                destination = self.x.lvalue(arg.target)
                value = f"(not {slot})" if arg.negated else slot
                after.append(output_store(destination, value, param.type, arg.target.ty))
        self.flush_pre()
        if inline:
            assert isinstance(callee, T.PouType)
            self._inline_body(callee, instance)
        else:
            self.out(f"{instance}._body()")
        for line in after:
            self.out(line)
        return local

    def _inline_body(self, pou: T.PouType, instance: str) -> None:
        """The body of a small function block (``codegen_inline.inlinable_fb``) in place of the
        call, on the same instance; its lines carry the call's ST line."""
        scratch = GeneratedChunk(pou.name, self.out.chunk.filename)
        sub = PouGenerator(self.decls, pou, scratch)
        sub.x.temp_count = self.x.temp_count
        sub.x.self_name = instance
        sub.out.depth = self.out.depth
        scope = self.decls.scope
        self.decls.scope = pou.name.upper()
        try:
            sub.block(pou.decl.body)
        finally:
            self.decls.scope = scope
        self.x.temp_count = sub.x.temp_count
        self.x.temps |= sub.x.temps
        self.x.real_temps |= sub.x.real_temps
        self.out.chunk.lines.extend((text, self.out.line) for text, _ in scratch.lines)

    def _budget(self, counter: str) -> None:
        self.out(f"{counter} -= 1")
        self.out(f"if not {counter}:")
        self.out(f"    {counter} = _rt.loop_check()")

    def while_loop(self, s: A.While) -> None:
        counter = self.x.temp("n")
        self.out(f"{counter} = _LOOP_CHUNK")
        cond = self.x.expr(s.cond)
        self.loops.append(None)
        if self.x.pre:
            self.out("while True:")
            self.out.depth += 1
            self.flush_pre()
            self.out(f"if not {cond}:")
            self.out("    break")
        else:
            self.out(f"while {cond}:")
            self.out.depth += 1
        self._budget(counter)
        self.block(s.body)
        self.out.depth -= 1
        self.loops.pop()

    def repeat_loop(self, s: A.Repeat) -> None:
        counter = self.x.temp("n")
        self.out(f"{counter} = _LOOP_CHUNK")
        self.loops.append(None)
        if has_continue(s.body):
            # CONTINUE goes to the UNTIL test: the test runs at the top of every pass but the
            # first, with whatever statements its expression needs (a call's outputs) before it
            first = self.x.temp("first")
            self.out(f"{first} = True")
            self.out("while True:")
            self.out.depth += 1
            line = self.out.line
            self.out.line = s.cond.pos.line
            self.out(f"if not {first}:")
            self.out.depth += 1
            cond = self.x.expr(s.cond)
            self.flush_pre()
            self.out(f"if {cond}:")
            self.out("    break")
            self.out.depth -= 1
            self.out.line = line
            self.out(f"{first} = False")
            self._budget(counter)
            self.block(s.body)
            self.out.depth -= 1
        else:
            self.out("while True:")
            self.out.depth += 1
            self._budget(counter)
            self.block(s.body)
            self.out.line = s.cond.pos.line
            cond = self.x.expr(s.cond)
            self.flush_pre()
            self.out(f"if {cond}:")
            self.out("    break")
            self.out.depth -= 1
        self.loops.pop()


def generate_struct(decls: Declarations, struct: T.StructType, filename: str, line: int) -> GeneratedChunk:
    chunk = GeneratedChunk(struct.name, filename)
    decls.scope = ""  # field initial values see global constants only
    out = Emitter(chunk)
    out.line = line
    values = ValueBuilder(decls)
    fields = list(struct.fields.values())
    slots = ", ".join(f"'v_{f.name.lower()}'" for f in fields)
    out(f"class {class_name(struct)}:")
    out(f"    __slots__ = ({slots},)")
    out("    def __init__(self):")
    for f in fields:
        out(f"        self.v_{f.name.lower()} = {values.initial(f.type, f.init)}", f.pos.line)
    if not fields:
        out("        pass")
    out("    def _assign(self, o):")
    for f in fields:
        name = f"v_{f.name.lower()}"
        u = T.underlying(f.type)
        if isinstance(u, T.StructType):
            out(f"        self.{name}._assign(o.{name})")
        elif isinstance(u, T.ArrayType):
            out(f"        _acopy(self.{name}, o.{name})")
        else:
            out(f"        self.{name} = o.{name}")
    out("        return self")
    return chunk


def generate_globals(decls: Declarations, filename: str) -> GeneratedChunk:
    chunk = GeneratedChunk("globals", filename)
    decls.scope = ""
    out = Emitter(chunk)
    values = ValueBuilder(decls)
    names = [f"'v_{g.name.lower()}'" for g in decls.globals.values()] + ["'_path'"]
    out("class GLOBALS_:", 1)
    out(f"    __slots__ = ({', '.join(names)},)", 1)
    out("    def __init__(self):", 1)
    out("        self._path = ''", 1)
    for g in decls.globals.values():
        out(f"        self.v_{g.name.lower()} = {values.initial(g.type, g.init)}", g.pos.line)
    return chunk


def _f32_argument(code: str) -> str | None:
    """``x`` when ``code`` is the whole call ``_f32(x)``, else None."""
    if not (code.startswith("_f32(") and code.endswith(")")) or "'" in code or '"' in code:
        return None  # (a string literal could hold a parenthesis: not worth parsing)
    depth = 0
    for position, char in enumerate(code):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and position != len(code) - 1:
                return None  # the call's parenthesis closes before the end: _f32(a) + f(b)
    return code[5:-1]


def _same_access(a: A.Expr, b: A.Expr) -> bool:
    """``a`` and ``b`` name the same variable or element: names, members, and indices that are
    literals or names (nothing whose value an evaluation could change)."""
    while isinstance(b, A.Paren):
        b = b.inner
    if isinstance(a, A.Name) and isinstance(b, A.Name):
        return isinstance(a.ref, VarRef) and isinstance(b.ref, VarRef) and a.ref.var is b.ref.var
    if isinstance(a, A.Member) and isinstance(b, A.Member):
        return a.name.lower() == b.name.lower() and _same_access(a.base, b.base)
    if isinstance(a, A.Index) and isinstance(b, A.Index) and len(a.indices) == len(b.indices):
        for i, j in zip(a.indices, b.indices, strict=True):
            if isinstance(i, A.IntLit) and isinstance(j, A.IntLit):
                if i.value != j.value:
                    return False
            elif not (isinstance(i, A.Name) and isinstance(j, A.Name) and _same_access(i, j)):
                return False
        return _same_access(a.base, b.base)
    return False


def _stored_then_tested(s: A.Assign, after: A.If) -> bool:
    """A BOOL variable or element assigned and then tested by the next statement's IF."""
    target = s.target
    return (
        isinstance(target, A.Name | A.Member | A.Index)
        and T.underlying(target.ty) is T.BOOL
        and T.underlying(s.value.ty) is T.BOOL
        and bool(after.branches)
        and _same_access(target, after.branches[0][0])
    )
