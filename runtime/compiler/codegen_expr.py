"""Code generation of expressions: one Python expression per ST expression, from the checked AST.

Every binary operation is parenthesised, so Python's precedence never matters. Here: variables,
literals, indices (checked, or proved inside their array), operators, short circuits and the value
ranges they rely on. Calls are the mixin ``codegen_calls.CallMixin``; statements that must run
before the expression (a hoisted subtree, a call of a function with outputs) go to ``pre``.
"""

from __future__ import annotations

from . import builtins as B
from . import st_ast as A
from . import st_types as T
from .ast_walk import NodeVisitor, walk
from .codegen_calls import CallMixin
from .codegen_guard import index_guards
from .codegen_inline import fault_free
from .codegen_ranges import Range, inside, name_plus_constant, value_range
from .codegen_text import INT_CODE, is_atom, is_pure
from .codegen_values import ValueBuilder, convert_constant, literal_code, py_float
from .model import ConstRef, EnumRef, VarRef

_PY_COMPARE = {"=": "==", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}

# Python's parser allows 200 nested parentheses and its compiler a bounded recursion: generated
# expressions stay far below (each ST level adds at most about four levels of Python nesting).
HOIST_HEIGHT = 12
SPINE_CHUNK = 24
GUARDED_LEFT = 60  # longest left operand code written twice by a guarded short circuit


class ExprGen(CallMixin, NodeVisitor):
    """Expression emitter for one POU body."""

    def __init__(self, pou: T.PouType | None, values: ValueBuilder) -> None:
        self.pou = pou
        self.values = values
        self.pre: list[str] = []
        self.temp_count = 0
        self.temps: set[str] = set()  # every temporary created (locals of the generated function)
        self.real_temps: set[str] = set()  # the temporaries that only hold REAL/LREAL values (floats)
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
            if INT_CODE.fullmatch(base):
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
                if not is_atom(code):
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
            if not (is_pure(left) and INT_CODE.fullmatch(right)) or subject not in ("", left):
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
