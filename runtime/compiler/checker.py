"""Checker, second half: type-check statements and expressions of every POU body.

Annotates the AST in place: ``Expr.ty`` on every expression, ``Name.ref`` (VarRef, EnumRef,
ConstRef), ``Call.ref`` (the POU or BuiltinRef called) and ``Call.bound`` (arguments matched to
parameters). Reports every problem it finds and keeps going with an error type.
"""

from __future__ import annotations

from typing import Any

from . import builtins as B
from . import st_ast as A
from . import st_types as T
from .ast_walk import NodeVisitor
from .calls import CallChecker
from .declarations import Declarations, did_you_mean
from .diagnostics import DiagnosticBag
from .model import ConstRef, EnumRef, VarRef
from .typing_rules import COMPARISONS, TypingError, assignable, binary_type


class BodyChecker(CallChecker, NodeVisitor):
    """Checks one POU body (or the initial values of globals when ``pou`` is None)."""

    def __init__(self, decls: Declarations, pou: T.PouType | None, diag: DiagnosticBag) -> None:
        self.decls = decls
        self.pou = pou
        self.diag = diag
        decls.scope = pou.name.upper() if pou is not None else ""  # for the POU's local constants
        self.loop_depth = 0
        self.library = pou.library if pou is not None else False
        self.result_var: T.VarInfo | None = None
        if pou is not None and pou.kind == "FUNCTION":
            self.result_var = T.VarInfo(
                pou.name, pou.return_type or T.ERROR, "RESULT", pou.decl.pos, owner=pou.name
            )
            pou.result_var = self.result_var
        self.calls: list[T.PouType] = []
        self.call_sites: list[tuple[T.PouType, Any]] = []

    # ------------------------------------------------------------ names
    def scope_of(self, var: T.VarInfo) -> str:
        if self.pou is None or var.section == "VAR_GLOBAL":
            return "global"
        if self.pou.kind == "FUNCTION" or var.section == "VAR_TEMP":
            return "local"
        return "member"

    def lookup_var(self, name: str) -> VarRef | None:
        key = name.upper()
        if self.pou is not None:
            if self.result_var is not None and key == self.pou.name.upper():
                return VarRef(self.result_var, "result")
            var = self.pou.variables.get(key)
            if var is not None:
                if var.section == "VAR_EXTERNAL":
                    return self._external(var)
                return VarRef(var, self.scope_of(var))
        glob = self.decls.globals.get(key)
        if glob is not None:
            return VarRef(glob, "global")
        return None

    def _external(self, var: T.VarInfo) -> VarRef:
        glob = self.decls.globals.get(var.key)
        if glob is None:
            if not var.reported:
                self.diag.error("E0108", f"VAR_EXTERNAL '{var.name}' has no matching VAR_GLOBAL", var.pos)
                var.reported = True
            return VarRef(var, "member")
        if not T.same_type(glob.type, var.type) and not var.reported:
            self.diag.error(
                "E0201",
                f"VAR_EXTERNAL '{var.name}' is {var.type.display} but the global is {glob.type.display}",
                var.pos,
            )
            var.reported = True
        return VarRef(glob, "global")

    def visible_names(self) -> list[str]:
        names = [v.name for v in self.decls.globals.values()]
        if self.pou is not None:
            names += [v.name for v in self.pou.variables.values()]
        return names

    def name(self, e: A.Name, expected: T.Type | None) -> T.Type:
        ref = self.lookup_var(e.name)
        if ref is not None:
            ref.var.used = True
            e.ref = ref
            return ref.var.type
        key = e.name.upper()
        if isinstance(expected, T.EnumType) and key in expected.values:
            e.ref = EnumRef(expected, expected.values[key])
            return expected
        matches = [t for t in self.decls.types.values() if isinstance(t, T.EnumType) and key in t.values]
        if len(matches) == 1:
            e.ref = EnumRef(matches[0], matches[0].values[key])
            return matches[0]
        if len(matches) > 1:
            owners = ", ".join(f"{t.name}#{e.name}" for t in matches)
            self.diag.error("E0101", f"'{e.name}' is ambiguous", e.pos, f"write one of {owners}")
            return T.ERROR
        if key in self.decls.pous or B.is_builtin(key):
            self.diag.error("E0203", f"'{e.name}' is a function or function block, not a value", e.pos)
            return T.ERROR
        self.diag.error(
            "E0101",
            f"unknown identifier '{e.name}'",
            e.pos,
            did_you_mean(e.name, self.visible_names()),
            len(e.name),
        )
        return T.ERROR

    # ------------------------------------------------------------ expressions
    def expr(self, e: A.Expr, expected: T.Type | None = None) -> T.Type:
        t = self._expr(e, expected)
        e.ty = t
        return t

    def _expr(self, e: A.Expr, expected: T.Type | None) -> T.Type:
        t: T.Type = self.visit(e, expected)
        return t

    def generic_visit(self, node: A.Node, *args: Any) -> Any:
        raise AssertionError(f"the checker has no rule for {type(node).__name__}")

    # one visit_<Node> per expression (returns its type) and per statement
    def visit_IntLit(self, e: A.IntLit, expected: T.Type | None) -> T.Type:
        return self._typed_literal(e, T.ANY_INT_LIT)

    def visit_RealLit(self, e: A.RealLit, expected: T.Type | None) -> T.Type:
        return self._typed_literal(e, T.ANY_REAL_LIT)

    def visit_BoolLit(self, e: A.BoolLit, expected: T.Type | None) -> T.Type:
        return T.BOOL

    def visit_StringLit(self, e: A.StringLit, expected: T.Type | None) -> T.Type:
        return T.StringType(max(1, len(e.value)), e.wide)

    def visit_TimeLit(self, e: A.TimeLit, expected: T.Type | None) -> T.Type:
        return T.LTIME if e.type_name == "LTIME" else T.TIME

    def visit_DateLit(self, e: A.DateLit, expected: T.Type | None) -> T.Type:
        return T.ELEMENTARY[e.type_name]

    def visit_EnumLit(self, e: A.EnumLit, expected: T.Type | None) -> T.Type:
        return self._enum_literal(e)

    def visit_Name(self, e: A.Name, expected: T.Type | None) -> T.Type:
        return self.name(e, expected)

    def visit_Paren(self, e: A.Paren, expected: T.Type | None) -> T.Type:
        return self.expr(e.inner, expected)

    def visit_Member(self, e: A.Member, expected: T.Type | None) -> T.Type:
        return self.member(e)

    def visit_Index(self, e: A.Index, expected: T.Type | None) -> T.Type:
        return self.index(e)

    def visit_BitAccess(self, e: A.BitAccess, expected: T.Type | None) -> T.Type:
        return self.bit_access(e)

    def visit_DirectVar(self, e: A.DirectVar, expected: T.Type | None) -> T.Type:
        return self.direct_var(e)

    def visit_Deref(self, e: A.Deref, expected: T.Type | None) -> T.Type:
        self.diag.error("E0007", "pointer dereference '^' is not supported", e.pos)
        return T.ERROR

    def visit_Unary(self, e: A.Unary, expected: T.Type | None) -> T.Type:
        return self.unary(e, expected)

    def visit_Binary(self, e: A.Binary, expected: T.Type | None) -> T.Type:
        return self.binary(e, expected)

    def visit_Call(self, e: A.Call, expected: T.Type | None) -> T.Type:
        return self.call(e, expected, statement=False)

    def _typed_literal(self, e: A.IntLit | A.RealLit, default: T.Type) -> T.Type:
        if e.type_name is None:
            return default
        t = self.decls.named_type(e.type_name, e.pos)
        if isinstance(e, A.IntLit):
            if T.is_bool(t) and e.value in (0, 1):
                return T.BOOL
            if T.is_real_like(t):
                return t
            rng = T.int_range(t)
            if rng is None or not T.is_integer_like(t):
                self.diag.error("E0005", f"{e.type_name}#{e.value} is not a valid literal", e.pos)
                return T.ERROR
            if not rng[0] <= e.value <= rng[1]:
                self.diag.error("E0202", f"{e.value} does not fit in {t.display} ({rng[0]}..{rng[1]})", e.pos)
            return t
        if not T.is_real_like(t):
            self.diag.error("E0005", f"{e.type_name}#{e.text} is not a valid literal", e.pos)
            return T.ERROR
        return t

    def _enum_literal(self, e: A.EnumLit) -> T.Type:
        t = self.decls.named_type(e.type_name, e.pos)
        if isinstance(t, T.ErrorType):
            return t
        if not isinstance(t, T.EnumType):
            self.diag.error("E0201", f"'{e.type_name}' is not an enumeration", e.pos)
            return T.ERROR
        if e.value_name.upper() not in t.values:
            names = [t.spelling.get(k, k) for k in t.values]
            self.diag.error(
                "E0101",
                f"'{e.value_name}' is not a value of {t.name}",
                e.pos,
                did_you_mean(e.value_name, names),
            )
            return T.ERROR
        return t

    def member(self, e: A.Member) -> T.Type:
        base = T.underlying(self.expr(e.base))
        pos = e.name_pos or e.pos
        if isinstance(base, T.ErrorType):
            return T.ERROR
        key = e.name.upper()
        if isinstance(base, T.StructType):
            field = base.fields.get(key)
            if field is None:
                hint = did_you_mean(e.name, [f.name for f in base.fields.values()])
                self.diag.error("E0104", f"{base.name} has no field '{e.name}'", pos, hint)
                return T.ERROR
            e.ref = field
            return field.type
        if isinstance(base, T.PouType):
            var = base.variables.get(key)
            if var is None or var.section not in ("VAR_INPUT", "VAR_OUTPUT", "VAR_IN_OUT"):
                what = "no parameter" if var is None else "no public member"
                self.diag.error("E0104", f"{base.name} has {what} '{e.name}'", pos, base.interface())
                return T.ERROR
            e.ref = var
            return var.type
        self.diag.error("E0104", f"{base.display} has no members; '.{e.name}' is not allowed", pos)
        return T.ERROR

    def index(self, e: A.Index) -> T.Type:
        base = T.underlying(self.expr(e.base))
        for index in e.indices:
            it = self.expr(index)
            if not T.is_integer_like(it) and not isinstance(it, T.ErrorType):
                self.diag.error("E0201", f"array index must be an integer, not {it.display}", index.pos)
        if isinstance(base, T.ErrorType):
            return T.ERROR
        if not isinstance(base, T.ArrayType):
            self.diag.error("E0204", f"{base.display} is not an array", e.pos)
            return T.ERROR
        if len(e.indices) != len(base.dims):
            self.diag.error(
                "E0205",
                f"{base.display} needs {len(base.dims)} indices, got {len(e.indices)}",
                e.indices[0].pos,
            )
            return T.ERROR
        for index, (low, high) in zip(e.indices, base.dims, strict=True):
            value = self.decls.const_int(index)
            if value is not None and not low <= value <= high:
                self.diag.error("E0207", f"index {value} is outside {low}..{high}", index.pos)
        return base.element

    def bit_access(self, e: A.BitAccess) -> T.Type:
        base = T.underlying(self.expr(e.base))
        if isinstance(base, T.ErrorType):
            return T.BOOL
        if not (isinstance(base, T.ElementaryType) and base.is_anyint):
            self.diag.error("E0208", f"bit access needs a bit string or integer, not {base.display}", e.pos)
            return T.BOOL
        if e.bit >= base.bits:
            self.diag.error("E0208", f"{base.name} has bits 0..{base.bits - 1}, not {e.bit}", e.pos)
        return T.BOOL

    def direct_var(self, e: A.DirectVar) -> T.Type:
        candidates = list(self.decls.globals.values())
        if self.pou is not None:
            candidates += list(self.pou.variables.values())
        for var in candidates:
            if var.location == e.address:
                e.ref = VarRef(var, self.scope_of(var))
                var.used = True
                return var.type
        self.diag.error(
            "E0101",
            f"no variable is declared AT {e.address}",
            e.pos,
            f"declare one: name AT {e.address} : <type>;",
        )
        return T.ERROR

    def unary(self, e: A.Unary, expected: T.Type | None) -> T.Type:
        t = self.expr(e.operand, expected)
        if isinstance(t, T.ErrorType):
            return t
        if e.op == "NOT":
            if T.is_bool(t) or T.is_integer_like(t):
                return t
            self.diag.error("E0203", f"NOT needs BOOL or a bit string, not {t.display}", e.pos)
            return T.ERROR
        u = T.underlying(t)
        if T.is_numeric(t) or (isinstance(u, T.ElementaryType) and u.kind == "time"):
            return u
        self.diag.error("E0203", f"unary {e.op} needs a number, not {t.display}", e.pos)
        return T.ERROR

    def binary(self, e: A.Binary, expected: T.Type | None) -> T.Type:
        """A chain ``a + b - c ...`` is a tree as deep as it is long: its left spine is walked with a
        loop (innermost operator first), so only the right operands recurse."""
        chain: list[tuple[A.Binary | A.Paren, T.Type | None]] = []
        node: A.Expr = e
        node_expected = expected
        while isinstance(node, A.Binary) or (isinstance(node, A.Paren) and isinstance(node.inner, A.Binary)):
            chain.append((node, node_expected))
            if isinstance(node, A.Paren):
                node = node.inner
            else:
                node_expected = node_expected if node.op not in COMPARISONS else None
                node = node.left
        t = self.expr(node, node_expected)
        for link, link_expected in reversed(chain):
            if isinstance(link, A.Binary):
                t = self._binary_step(link, link_expected, t)
            link.ty = t
        return t

    def _binary_step(self, e: A.Binary, expected: T.Type | None, left: T.Type) -> T.Type:
        if e.op == "**" and isinstance(e.left, A.Unary) and e.left.op == "-":
            self.diag.warning(
                "W0202",
                "'-x ** y' is read as '(-x) ** y'",
                e.left.pos,
                "add parentheses to say which you mean: (-x) ** y or -(x ** y)",
            )
        operand_expected = expected if e.op not in COMPARISONS else None
        right = self.expr(e.right, left if isinstance(left, T.EnumType) else operand_expected)
        if isinstance(right, T.EnumType) and isinstance(left, T.ErrorType) and isinstance(e.left, A.Name):
            left = self.expr(e.left, right)
        try:
            result = binary_type(e.op, left, right)
        except TypingError as error:
            self.diag.error("E0203", str(error), e.op_pos or e.pos)
            return T.ERROR
        if e.op in ("=", "<>") and (T.is_real_like(left) or T.is_real_like(right)) and not self.library:
            if not _is_literal(e.left) or not _is_literal(e.right):
                self.diag.warning(
                    "W0203",
                    "comparing REAL values with '=' or '<>' is fragile",
                    e.op_pos or e.pos,
                    "compare with a tolerance: ABS(a - b) < eps",
                )
        if e.op in ("/", "MOD") and self.decls.const_value(e.right) == 0:
            self.diag.error("E0202", "division by zero", e.right.pos)
        return result

    # ------------------------------------------------------------ assignment
    def check_assignable(self, target_type: T.Type, value: A.Expr, value_type: T.Type, pos: Any) -> None:
        if T.is_bool(target_type) and isinstance(value_type, T.LiteralIntType):
            if self.decls.const_value(value) in (0, 1):
                return  # 0 and 1 are BOOL literals too
        verdict = assignable(target_type, value_type)
        if verdict == "ok":
            self._literal_fits(target_type, value)
            return
        if verdict == "narrowing":
            if isinstance(T.underlying(target_type), T.ElementaryType) and isinstance(
                target_type, T.SubrangeType
            ):
                return
            if not self.library:
                self.diag.warning(
                    "W0201",
                    f"implicit narrowing from {value_type.display} to {target_type.display}",
                    pos,
                    f"write {value_type.display}_TO_{target_type.display}(...) to make it explicit",
                )
            return
        self.diag.error("E0201", verdict, pos)

    def _literal_fits(self, target: T.Type, value: A.Expr) -> None:
        rng = T.int_range(target)
        if rng is None or not T.is_integer_like(target):
            return
        constant = self.decls.const_value(value)
        if isinstance(constant, int) and not isinstance(constant, bool) and not rng[0] <= constant <= rng[1]:
            self.diag.error(
                "E0202", f"{constant} does not fit in {target.display} ({rng[0]}..{rng[1]})", value.pos
            )

    def lvalue(self, e: A.Expr) -> T.Type:
        """Check an assignment target; returns its type."""
        t = self.expr(e)
        root = e
        while isinstance(root, A.Member | A.Index | A.BitAccess | A.Paren):
            if isinstance(root, A.Member) and isinstance(T.underlying(root.base.ty), T.PouType):
                var = root.ref
                if isinstance(var, T.VarInfo) and var.section == "VAR_OUTPUT":
                    self.diag.error(
                        "E0107", f"output '{root.name}' of a function block cannot be written", e.pos
                    )
            root = root.inner if isinstance(root, A.Paren) else root.base
        if isinstance(root, A.Name | A.DirectVar):
            ref = root.ref
            if isinstance(ref, VarRef):
                ref.var.assigned = True
                if ref.var.constant:
                    self.diag.error("E0107", f"'{ref.var.name}' is a constant", e.pos)
                elif (
                    ref.var.location is not None
                    and ref.var.location.startswith("%I")
                    and self.pou is not None
                ):
                    self.diag.error(
                        "E0107",
                        f"'{ref.var.name}' is an input (AT {ref.var.location}) and cannot be written",
                        e.pos,
                    )
            elif isinstance(ref, EnumRef | ConstRef) and isinstance(root, A.Name):
                self.diag.error("E0107", f"'{root.name}' is a constant, not a variable", e.pos)
        elif not isinstance(t, T.ErrorType):
            self.diag.error("E0107", "this expression cannot be assigned to", e.pos)
        return t

    # ------------------------------------------------------------ statements
    def body(self, stmts: list[A.Stmt]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: A.Stmt) -> None:
        self.visit(s)

    def visit_Assign(self, s: A.Assign) -> None:
        target = self.lvalue(s.target)
        value = self.expr(s.value, target)
        self.check_assignable(target, s.value, value, s.value.pos)

    def visit_CallStmt(self, s: A.CallStmt) -> None:
        self.call(s.call, None, statement=True)

    def visit_If(self, s: A.If) -> None:
        for cond, body in s.branches:
            self.condition(cond, "IF")
            self.body(body)
        self.body(s.else_body or [])

    def visit_Case(self, s: A.Case) -> None:
        self.case(s)

    def visit_For(self, s: A.For) -> None:
        self.for_loop(s)

    def visit_While(self, s: A.While) -> None:
        self.condition(s.cond, "WHILE")
        self.loop_body(s.body)

    def visit_Repeat(self, s: A.Repeat) -> None:
        self.loop_body(s.body)
        self.condition(s.cond, "UNTIL")

    def visit_Exit(self, s: A.Exit | A.Continue) -> None:
        if self.loop_depth == 0:
            word = "EXIT" if isinstance(s, A.Exit) else "CONTINUE"
            self.diag.error("E0401", f"{word} outside a loop", s.pos)

    visit_Continue = visit_Exit

    def visit_Return(self, s: A.Return) -> None:
        pass

    visit_Empty = visit_Return

    def visit_Unsupported(self, s: A.Unsupported) -> None:
        self.diag.error("E0007", f"{s.what} is not supported", s.pos, "use IF, CASE or loops instead")

    def condition(self, cond: A.Expr, word: str) -> None:
        t = self.expr(cond, T.BOOL)
        if not T.is_bool(t) and not isinstance(t, T.ErrorType):
            self.diag.error("E0201", f"{word} condition must be BOOL, not {t.display}", cond.pos)

    def loop_body(self, body: list[A.Stmt]) -> None:
        self.loop_depth += 1
        self.body(body)
        self.loop_depth -= 1

    def for_loop(self, s: A.For) -> None:
        var_type = self.lvalue(s.var)
        if not T.is_integer_like(var_type) and not isinstance(var_type, T.ErrorType):
            self.diag.error("E0402", f"FOR variable must be an integer, not {var_type.display}", s.var.pos)
        for part in (s.start, s.end, s.step):
            if part is None:
                continue
            t = self.expr(part, var_type)
            if not T.is_integer_like(t) and not isinstance(t, T.ErrorType):
                self.diag.error("E0402", f"FOR bounds must be integers, not {t.display}", part.pos)
            else:
                self.check_assignable(var_type, part, t, part.pos)
        if s.step is not None and self.decls.const_value(s.step) == 0:
            self.diag.error("E0402", "FOR step must not be 0", s.step.pos)
        self.loop_body(s.body)

    def case(self, s: A.Case) -> None:
        selector = self.expr(s.selector)
        sel_u = T.underlying(selector)
        if not (T.is_integer_like(selector) or isinstance(sel_u, T.EnumType | T.ErrorType)):
            self.diag.error(
                "E0201", f"CASE selector must be an integer or enumeration, not {selector.display}", s.pos
            )
            sel_u = T.ERROR
        seen: dict[int, Any] = {}
        resolved: list[list[tuple[int, int]]] = []
        for labels, body in s.elements:
            ranges: list[tuple[int, int]] = []
            for label in labels:
                low_expr, high_expr = (
                    (label.low, label.high) if isinstance(label, A.CaseRange) else (label, label)
                )
                low = self._case_value(low_expr, sel_u)
                high = self._case_value(high_expr, sel_u) if high_expr is not low_expr else low
                if low is None or high is None:
                    continue
                if low > high:
                    self.diag.error("E0404", f"empty CASE range {low}..{high}", label.pos)
                    continue
                for value in range(low, min(high, low + 10_000) + 1):
                    if value in seen:
                        self.diag.error("E0403", f"CASE label {value} appears twice", label.pos)
                        break
                    seen[value] = label
                ranges.append((low, high))
            resolved.append(ranges)
            self.body(body)
        s.label_values = resolved
        self.body(s.else_body or [])

    def _case_value(self, e: A.Expr, selector: T.Type) -> int | None:
        t = self.expr(e, selector if isinstance(selector, T.EnumType) else None)
        if isinstance(t, T.ErrorType):
            return None
        if isinstance(e, A.Name) and isinstance(e.ref, EnumRef):
            if isinstance(selector, T.EnumType) and e.ref.type is not selector:
                self.diag.error("E0404", f"'{e.name}' is not a value of {selector.name}", e.pos)
                return None
            return e.ref.value
        if isinstance(e, A.EnumLit) and isinstance(t, T.EnumType):
            return t.values[e.value_name.upper()]
        value = self.decls.const_int(e)
        if value is None:
            self.diag.error("E0404", "CASE labels must be constant integers or enumeration values", e.pos)
        return value


def _is_literal(e: A.Expr) -> bool:
    return isinstance(e, A.IntLit | A.RealLit) or (isinstance(e, A.Unary) and _is_literal(e.operand))
