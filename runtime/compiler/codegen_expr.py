"""Code generation of expressions: one Python expression per ST expression, from the checked AST.

Every binary operation is parenthesised, so Python's precedence never matters. Calls of functions
with outputs are hoisted into statements that run before the expression (``pre``).
"""

from __future__ import annotations

import re

from . import builtins as B
from . import st_ast as A
from . import st_types as T
from .ast_walk import NodeVisitor, walk
from .codegen_guard import index_guards
from .codegen_inline import fault_free, inlinable_function
from .codegen_ranges import Range, inside, name_plus_constant, value_range
from .codegen_values import ValueBuilder, class_name, convert_constant, literal_code, py_float, store_code
from .model import ConstRef, EnumRef, VarRef

_PY_COMPARE = {"=": "==", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}

# Python's parser allows 200 nested parentheses and its compiler a bounded recursion: generated
# expressions stay far below (each ST level adds at most about four levels of Python nesting).
HOIST_HEIGHT = 12
SPINE_CHUNK = 24
GUARDED_LEFT = 60  # longest left operand code written twice by a guarded short circuit


_LITERAL = re.compile(r"\(?-?\d[\d.e+-]*\)?|True|False")
_CALLS = re.compile(r"\bF_\w+\(")  # a call of an ST function (which may write through VAR_IN_OUT)
_INT_CODE = re.compile(r"-?\d+")
_PURE = re.compile(r"\(?-?(?:[A-Za-z_][\w.]*|\d[\d.e+-]*|_[A-Za-z]\w*\[(?:_[A-Za-z]\w*|\d+)\])\)?")


# variables, literals and + - on them: evaluating it again gives the same value, without a call
_ARITHMETIC = re.compile(r"[\w.() +-]+")


def _is_pure(code: str) -> bool:
    """A literal, a plain variable read, or an element of a loop's local list at a loop offset
    (``_m4[_k2]``, only generated where the offset is proved in bounds): evaluating it twice gives
    the same value and cannot fault."""
    return _PURE.fullmatch(code) is not None


def _is_atom(code: str) -> bool:
    """Code whose value cannot change between now and later: a literal or a temporary."""
    return (code.isidentifier() and code.startswith("_")) or code.lstrip("-").replace(".", "", 1).isdigit()


class ExprGen(NodeVisitor):
    """Expression emitter for one POU body."""

    def __init__(self, pou: T.PouType | None, values: ValueBuilder) -> None:
        self.pou = pou
        self.values = values
        self.pre: list[str] = []
        self.temp_count = 0
        self.temps: set[str] = set()  # every temporary created (locals of the generated function)
        self.level = 0  # nesting of the expression being generated
        self.reach = 0  # the deepest level reached below the current expression
        self.aliases: dict[int, str] = {}  # id(VarInfo) -> local name of an aliased FOR variable
        self.safe_index: dict[int, tuple[int, int]] = {}  # id(VarInfo) -> known value range of an alias
        self.ranged: dict[int, Range] = {}  # id(VarInfo) -> range of a subrange variable (codegen_ranges)
        self.shift: dict[int, int] = {}  # id(VarInfo) -> L: its alias runs L below the value
        self.self_name = "self"
        self.module_lines: list[tuple[str, int]] | None = None  # the POU's module-level lines
        self.module_name = ""  # the instance whose members ``member`` references name
        self.element_cache: dict[
            tuple[str, str], str
        ] = {}  # (array code, alias) -> local holding the element
        self.io_tables: dict[int, tuple[str, str]] = {}  # id(QUALITY_OF/AGE_OF target) -> (local, kind)
        self.qualities_local = ""  # a local holding _rt.qualities for the loop being generated
        self.tested_bool = ""  # a local holding the BOOL the next IF tests (just stored; see block)
        # instance code -> the local a call earlier in the statement list (or an enclosing one) put
        # it in; instances are never re-bound, so ``meas.valid`` after ``meas(...)`` reads the local
        self.fb_locals: dict[str, str] = {}

    def temp(self, stem: str = "t") -> str:
        self.temp_count += 1
        name = f"_{stem}{self.temp_count}"
        self.temps.add(name)
        return name

    # ------------------------------------------------------------ variables
    def var_code(self, ref: VarRef) -> str:
        alias = self.aliases.get(id(ref.var))
        if alias is not None:
            offset = self.shift.get(id(ref.var))
            return f"({alias} + {offset})" if offset else alias
        name = "v_" + ref.var.name.lower()
        if ref.scope == "member":
            return f"{self.self_name}.{name}"
        if ref.scope == "local":
            return name
        if ref.scope == "global":
            return "_G." + name
        return "r_"

    def lvalue(self, e: A.Expr) -> str:
        if isinstance(e, A.Name):
            assert isinstance(e.ref, VarRef)
            return self.var_code(e.ref)
        if isinstance(e, A.DirectVar):
            assert e.ref is not None
            return self.var_code(e.ref)
        if isinstance(e, A.Member):
            base = self.expr(e.base)
            return f"{self.fb_locals.get(base, base)}.v_{e.name.lower()}"
        if isinstance(e, A.Index):
            return self.index(e)
        if isinstance(e, A.Paren):
            return self.lvalue(e.inner)
        raise AssertionError(f"not an lvalue: {e}")

    # ------------------------------------------------------------ expressions
    def expr(self, e: A.Expr) -> str:
        """Python code of ``e``. A subtree more than ``HOIST_HEIGHT`` levels high is computed into a
        temporary first (``pre``), so no generated expression nears Python's nesting limits."""
        self.level += 1
        outer_reach = self.reach
        self.reach = self.level
        code: str = self.visit(e)
        reach = self.reach
        self.level -= 1
        if reach - self.level > HOIST_HEIGHT:
            code = self.hoist(code)
            reach = self.level + 1
        self.reach = max(outer_reach, reach)
        return code

    def hoist(self, code: str) -> str:
        tmp = self.temp()
        self.pre.append(f"{tmp} = {code}")
        return tmp

    def generic_visit(self, node: A.Node, *args: object) -> str:
        raise AssertionError(f"no code generation for {type(node).__name__}")

    # one visit_<Node> per expression kind, returning its Python code
    def visit_IntLit(self, e: A.IntLit) -> str:
        if T.is_real_like(e.ty):
            return py_float(convert_constant(e.value, e.ty))  # type: ignore[arg-type]
        if T.is_bool(e.ty):
            return "True" if e.value else "False"
        return repr(e.value)

    def visit_RealLit(self, e: A.RealLit) -> str:
        value = convert_constant(e.value, e.ty) if e.ty is T.REAL else e.value
        return py_float(value)  # type: ignore[arg-type]

    def visit_BoolLit(self, e: A.BoolLit) -> str:
        return "True" if e.value else "False"

    def visit_StringLit(self, e: A.StringLit) -> str:
        return repr(e.value)

    def visit_TimeLit(self, e: A.TimeLit) -> str:
        return repr(e.nanoseconds)

    def visit_DateLit(self, e: A.DateLit) -> str:
        return repr(e.value)

    def visit_EnumLit(self, e: A.EnumLit) -> str:
        assert isinstance(e.ty, T.EnumType)
        return repr(e.ty.values[e.value_name.upper()])

    def visit_Name(self, e: A.Name) -> str:
        ref = e.ref
        if isinstance(ref, VarRef):
            if ref.var.constant and T.is_elementary(ref.var.type) and id(ref.var) not in self.aliases:
                value = self.values.constant(ref.var.init)
                if value is not None:  # a CONSTANT is inlined: no attribute read per use
                    return literal_code(convert_constant(value, ref.var.type))
            return self.var_code(ref)
        if isinstance(ref, EnumRef):
            return repr(ref.value)
        if isinstance(ref, ConstRef):
            return literal_code(ref.value)
        raise AssertionError(e)

    def visit_DirectVar(self, e: A.DirectVar) -> str:
        assert e.ref is not None
        return self.var_code(e.ref)

    def visit_Paren(self, e: A.Paren) -> str:
        return self.expr(e.inner)

    def visit_Member(self, e: A.Member) -> str:
        base = self.expr(e.base)
        return f"{self.fb_locals.get(base, base)}.v_{e.name.lower()}"

    def visit_Index(self, e: A.Index) -> str:
        return self.index(e)

    def visit_BitAccess(self, e: A.BitAccess) -> str:
        return f"((({self.expr(e.base)}) >> {e.bit}) & 1 != 0)"

    def visit_Unary(self, e: A.Unary) -> str:
        return self.unary(e)

    def visit_Binary(self, e: A.Binary) -> str:
        return self.binary(e)

    def visit_Call(self, e: A.Call) -> str:
        return self.call(e)

    def index(self, e: A.Index) -> str:
        base_type = T.underlying(e.base.ty)
        assert isinstance(base_type, T.ArrayType)
        code = self.expr(e.base)
        if self.element_cache and len(e.indices) == 1:
            index = e.indices[0]
            if isinstance(index, A.Name) and isinstance(index.ref, VarRef):
                alias = self.aliases.get(id(index.ref.var))
                cached = self.element_cache.get((code, alias or ""))
                if cached is not None:
                    return cached
        for index, (low, high) in zip(e.indices, base_type.dims, strict=True):
            code += f"[{self.index_code(index, low, high)}]"
        return code

    def index_code(self, index: A.Expr, low: int, high: int) -> str:
        if isinstance(index, A.IntLit):
            return repr(index.value - low)
        if isinstance(index, A.Unary) and index.op == "-" and isinstance(index.operand, A.IntLit):
            return repr(-index.operand.value - low)
        if (
            isinstance(index, A.Name)
            and isinstance(index.ref, VarRef)
            and self.shift.get(id(index.ref.var)) == low
        ):
            if self.known_inside(index.ref.var, low, high):
                return self.aliases[id(index.ref.var)]  # the loop runs over the element offsets
        proved = inside(self.value_range(index), low, high)
        if proved and (folded := self.folded_offset(index, low)):
            return folded
        code = self.expr(index)
        if proved:
            return code if low == 0 else f"{code} - {low}"
        if isinstance(index, A.Name) and isinstance(index.ref, VarRef):
            if self.known_inside(index.ref.var, low, high):
                return code if low == 0 else f"{code} - {low}"
            simple = True
        else:
            simple = isinstance(index, A.Member)
        if not simple:
            tmp = self.temp("i")
            return f"({tmp} - {low}) if {low} <= ({tmp} := {code}) <= {high} else _oob({tmp}, {low}, {high})"
        offset = code if low == 0 else f"{code} - {low}"
        return f"{offset} if {low} <= {code} <= {high} else _oob({code}, {low}, {high})"

    def folded_offset(self, index: A.Expr, low: int) -> str:
        """The element offset of ``x``, ``x + c``, ``c + x`` or ``x - c`` (x a variable, c a literal)
        as one sum with the constants folded (``_k4 - 1`` for ``i - 1`` where i runs as ``_k4 + 1``
        over a 1-based array); "" for other forms."""
        form = name_plus_constant(index)
        if form is None:
            return ""
        name, c = form
        assert isinstance(name.ref, VarRef)
        alias = self.aliases.get(id(name.ref.var))
        if alias is not None:  # the loop runs ``alias`` = the variable - its shift
            base, c = alias, c + self.shift.get(id(name.ref.var), 0)
        else:
            base = self.expr(name)  # a CONSTANT is its value
            if _INT_CODE.fullmatch(base):
                return repr(int(base) + c - low)
        k = c - low
        return base if k == 0 else f"{base} + {k}" if k > 0 else f"{base} - {-k}"

    def unary(self, e: A.Unary) -> str:
        inner = self.expr(e.operand)
        if e.op == "NOT":
            t = T.underlying(e.ty)
            if T.is_bool(t):
                return f"(not {inner})"
            if isinstance(t, T.ElementaryType) and not t.signed:
                return f"(~{inner} & {(1 << t.bits) - 1})"
            return f"(~{inner})"
        if e.op == "-":
            return f"(-{inner})"
        return inner

    def binary(self, e: A.Binary) -> str:
        """The left spine of a chain ``a + b - c ...`` is generated with a loop; every
        ``SPINE_CHUNK`` operators the partial result goes to a temporary (evaluated first, as the
        standard orders it). A right operand that needs statements before it (``pre``) gets the left
        part computed before those statements, so operands are still evaluated left to right."""
        if e.op == "OR":
            member = self.membership(e)
            if member is not None:
                return member
        chain: list[A.Binary] = []
        node: A.Expr = e
        while True:
            if isinstance(node, A.Binary):
                chain.append(node)
                node = node.left
            elif isinstance(node, A.Paren) and isinstance(node.inner, A.Binary):
                node = node.inner
            else:
                break
        code = self.expr(node)
        since_hoist = 0
        for link in reversed(chain):
            mark = len(self.pre)
            right = self.expr(link.right)
            if len(self.pre) > mark:
                if not _is_atom(code):
                    tmp = self.temp()
                    self.pre.insert(mark, f"{tmp} = {code}")
                    code = tmp
                code = self._binary_code(link, code, right)
            elif link.op in ("AND", "OR") and self.may_skip(link):
                code = f"({code} {link.op.lower()} {right})"  # short circuit: cheaper than & and |
            elif link.op in ("AND", "OR") and (guarded := self.guarded_skip(link, code, right)):
                code = guarded
            else:
                code = self._binary_code(link, code, right)
            since_hoist += 1
            if since_hoist >= SPINE_CHUNK and link is not e:
                code = self.hoist(code)
                since_hoist = 0
        self.reach = max(self.reach, self.level + since_hoist)
        return code

    def membership(self, e: A.Binary) -> str | None:
        """``x = c1 OR x = c2 OR ...`` with x a plain read of an integer or enumeration and the c
        literals: ``(x in (c1, c2, ...))`` (x read once instead of once per comparison; the same
        BOOL for every value of x). None when ``e`` is not of that form."""
        leaves: list[A.Expr] = []
        node: A.Expr = e
        while isinstance(node, A.Binary) and node.op == "OR":
            leaves.append(node.right)
            node = node.left
            while isinstance(node, A.Paren):
                node = node.inner
        leaves.append(node)
        subject = ""
        constants: list[str] = []
        for leaf in reversed(leaves):
            while isinstance(leaf, A.Paren):
                leaf = leaf.inner
            if not (
                isinstance(leaf, A.Binary) and leaf.op == "=" and isinstance(leaf.left, A.Name | A.Member)
            ):
                return None
            if not all(isinstance(n, A.Name | A.Member) for n in walk(leaf.left)):
                return None  # an index or a call in the subject: its code may need statements before it
            kind = T.underlying(leaf.left.ty)
            if not (T.is_integer_like(kind) or isinstance(kind, T.EnumType)):
                return None
            if not isinstance(leaf.right, A.IntLit | A.EnumLit | A.Name):
                return None
            left, right = self.expr(leaf.left), self.expr(leaf.right)  # reads and literals: no pre
            if not (_is_pure(left) and _INT_CODE.fullmatch(right)) or subject not in ("", left):
                return None
            subject = left
            constants.append(right)
        return f"({subject} in ({', '.join(constants)},))"

    def may_skip(self, e: A.Binary) -> bool:
        """May BOOL ``AND``/``OR`` skip its right operand when the left one decides (Python's
        ``and``/``or``)? Only when skipping it cannot be seen: it has no call with effects (calls
        of one-line functions generated in place are none), cannot fault (no division, MOD,
        ``**``, dereference or index that may be out of bounds) and needs no statements before it. Both operands are bools, so the value is the same."""
        if not (T.is_bool(e.ty) and T.is_bool(e.left.ty) and T.is_bool(e.right.ty)):
            return False
        if any(isinstance(n, A.Deref) for n in walk(e.right)):
            return False
        return fault_free(e.right, index_ok=self.index_in_bounds, inlined_calls=True)

    def guarded_skip(self, e: A.Binary, left: str, right: str) -> str:
        """``e`` short-circuited behind a range test of its index variables (codegen_guard), with
        ``right`` (the checked right operand) where the test fails; "" when it does not apply."""
        if len(left) > GUARDED_LEFT:  # the left operand's code is written twice (one runs)
            return ""
        ranges = index_guards(e, self.index_in_bounds)
        if ranges is None:
            return ""
        saved = dict(self.safe_index)
        mark = len(self.pre)
        tests = []
        for var_id, (name, low, high) in ranges.items():
            tests.append(f"{low} <= {self.expr(name)} <= {high}")
            self.safe_index[var_id] = (low, high)
        fast = self.expr(e.right)
        self.safe_index = saved
        if len(self.pre) > mark:
            del self.pre[mark:]
            return ""
        checked = self._binary_code(e, left, right)
        return f"(({left} {e.op.lower()} {fast}) if {' and '.join(tests)} else {checked})"

    def index_in_bounds(self, e: A.Index) -> bool:
        """Is every index of ``e`` a literal or a loop variable known to be inside its bounds?"""
        base_type = T.underlying(e.base.ty)
        if not isinstance(base_type, T.ArrayType):
            return False
        for index, (low, high) in zip(e.indices, base_type.dims, strict=True):
            if isinstance(index, A.IntLit):
                if not low <= index.value <= high:
                    return False
                continue
            if not (isinstance(index, A.Name) and isinstance(index.ref, VarRef)):
                return False
            if not (
                self.known_inside(index.ref.var, low, high) or inside(self.value_range(index), low, high)
            ):
                return False
        return True

    def known_inside(self, var: T.VarInfo, low: int, high: int) -> bool:
        """Is ``var`` a loop variable whose whole range lies inside ``low..high``?"""
        known = self.safe_index.get(id(var))
        return known is not None and low <= known[0] and known[1] <= high

    def value_range(self, e: A.Expr) -> Range | None:
        """The values integer expression ``e`` can have, from the POU's subrange variables whose
        range is kept (codegen_ranges), the loop variables of the loop being generated and integer
        CONSTANTs, or None."""
        return value_range(e, self._var_range)

    def _var_range(self, var: T.VarInfo) -> Range | None:
        known = self.ranged.get(id(var)) or self.safe_index.get(id(var))
        if known is None and var.constant and T.is_integer_like(var.type) and id(var) not in self.aliases:
            value = self.values.constant(var.init)  # a CONSTANT, inlined as its value
            if type(value) is int:
                value = convert_constant(value, var.type)
                return (value, value) if type(value) is int else None
        return known

    def _binary_code(self, e: A.Binary, left: str, right: str) -> str:
        op = e.op
        lt, rt = T.underlying(e.left.ty), T.underlying(e.right.ty)
        if op in _PY_COMPARE:
            return f"({left} {_PY_COMPARE[op]} {right})"
        if op == "AND":
            return f"({left} & {right})"
        if op == "OR":
            return f"({left} | {right})"
        if op == "XOR":
            return f"({left} ^ {right})"
        divisor = int(right) if right.isdigit() and int(right) > 0 else None
        if op == "MOD":
            if divisor and (known := self.value_range(e.left)) is not None and known[0] >= 0:
                return f"({left} % {divisor})"  # a non-negative dividend: Python's % is MOD
            return B.imod_code(left, divisor) if divisor else f"_imod({left}, {right})"
        if op == "**":
            return f"_expt({left}, {right})"
        result = T.underlying(e.ty)
        is_time = isinstance(result, T.ElementaryType) and result.kind in ("time", "date")
        if op == "/":
            if (T.is_integer_like(lt) or is_time) and T.is_integer_like(rt):
                return B.idiv_code(left, divisor) if divisor else f"_idiv({left}, {right})"
            if is_time:
                return B.real_to_int_code(f"{left} / {right}")
            return f"({left} / {right})"
        if op == "*" and is_time and (T.is_real_like(lt) or T.is_real_like(rt)):
            return B.real_to_int_code(f"{left} * {right}")
        return f"({left} {op} {right})"

    # ------------------------------------------------------------ calls
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
        if ref.name in ("MAX", "MIN") and len(codes) == 2:
            return self.min_max(ref.name, codes[0], codes[1])
        if _real_to_whole(ref) and len(codes) == 1 and self.module_lines is not None:
            return self.remembered(ref, codes[0], e.pos.line, values[0])
        if ref.name == "LIMIT" and _is_pure(codes[0]) and _is_pure(codes[2]) and not _CALLS.search(codes[1]):
            return self.limit(codes[0], codes[1], codes[2])
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
        if _is_pure(key_code):
            return (
                f"({value_name} if {key_name} == {key_code} else {store}, ({key} := {key_code}), {convert}))"
            )
        return f"({value_name} if {key_name} == ({key} := {key_code}) else {store}, {key}, {convert}))"

    def min_max(self, name: str, first: str, second: str) -> str:
        """MAX/MIN of two values inline, each evaluated once, in order (Python's ``max(a, b)`` is a
        call that costs four times as much): MAX is b if b > a else a, MIN b if b < a else a, as the
        builtins decide (so a NaN in the first place wins, as before)."""
        a_code, a_ref = self._operand(first, keep=_CALLS.search(second) is not None)
        b_code, b_ref = self._operand(second)
        test = "<" if name == "MAX" else ">"
        return f"({b_ref} if {a_code} {test} {b_code} else {a_ref})"

    def limit(self, low: str, value: str, high: str) -> str:
        """LIMIT(mn, in, mx) inline when mn and mx are literals or plain variable reads (reading them
        again cannot change their value or fault): mn if in < mn else (mx if in > mx else in)."""
        tmp = self.temp()
        return f"({low} if ({tmp} := {value}) < {low} else ({high} if {tmp} > {high} else {tmp}))"

    def _operand(self, code: str, keep: bool = False) -> tuple[str, str]:
        """(code that evaluates ``code`` once, code of its value afterwards): a literal or a pure
        read of the instance's own data is read again (cheaper than keeping it in a local), unless
        ``keep`` (what runs in between may write it: a function with VAR_IN_OUT)."""
        if _LITERAL.fullmatch(code) or (not keep and _is_pure(code) and "_G." not in code):
            return code, code
        tmp = self.temp()
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
        if self.module_lines is None or not all(_ARITHMETIC.fullmatch(k) for k in keys):
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
            self.pre.append(
                f"{guard}{self.lvalue(destination)} = {store_code(value, param.type, destination.ty)}"
            )
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
        calls_after = [_CALLS.search("".join(codes[k + 1 :])) is not None for k in range(len(codes))]
        for param, code, call_after in zip(pou.variables.values(), codes, calls_after, strict=True):
            if not _is_pure(code) or (call_after and not _LITERAL.fullmatch(code)):
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


def chain_indices(target: A.Expr) -> list[A.Expr]:
    """The index expressions along a variable access (``evs[i].connected``: ``[i]``), outermost
    first."""
    indices: list[A.Expr] = []
    node = target
    while isinstance(node, A.Member | A.Index):
        if isinstance(node, A.Index):
            indices = list(node.indices) + indices
        node = node.base
    return indices
