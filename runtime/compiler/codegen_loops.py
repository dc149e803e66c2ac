"""Code generation of FOR loops: a mixin of ``codegen.PouGenerator``.

A FOR loop becomes a Python ``for`` over a ``range`` (built once per module when the bounds are
constant). When every index the loop variable makes is proved inside its array's bounds (constant
bounds, or a run-time check of the whole range that selects a fast and a checked copy of the
loop), the fast copy reads a structure element into a local once per iteration (when one pass
through the body can reach it twice; else it is indexed where it is used), iterates over element
offsets (``ARRAY[1..n]``: the index is the loop local itself) or over the elements themselves
(a loop over a whole array), and keeps members it uses in locals for the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import st_ast as A
from . import st_types as T
from .ast_queries import (
    assigns,
    cacheable_arrays,
    calls_pous,
    chain_indices,
    container_names,
    index_sites,
    is_loop_index,
    scalar_names,
    stable_base,
)
from .ast_walk import walk
from .builtins import wrap_code
from .codegen_text import INT_CODE
from .codegen_values import convert_constant, literal_code, store_code
from .model import VarRef

if TYPE_CHECKING:
    from .codegen_chunk import Emitter
    from .codegen_expr import ExprGen
    from .declarations import Declarations


class LoopMixin:
    out: Emitter
    x: ExprGen
    decls: Declarations
    loops: list[tuple[str, str] | None]
    split_depth: int
    hoisted: list[list[tuple[str, str]]]
    module_name: str
    module_lines: list[tuple[str, int]]
    count_up: tuple[int, str] | None  # (c, local holding e) while generating a FOR i := c TO e body

    if TYPE_CHECKING:  # provided by PouGenerator

        def block(self, stmts: list[A.Stmt]) -> None: ...

        def flush_pre(self) -> None: ...

    def for_loop(self, s: A.For) -> None:
        ref = s.var.ref
        assert isinstance(ref, VarRef)
        target = self.x.lvalue(s.var)
        start = store_code(self.x.expr(s.start), s.start.ty, ref.var.type, s.start)
        end = self.x.expr(s.end)
        step_value = 1 if s.step is None else self.decls.const_int(s.step)
        step = "1" if s.step is None else self.x.expr(s.step)
        self.flush_pre()
        rng = self.x.temp("r")
        last = ""
        bounds = [self.decls.const_int(part) for part in (s.start, s.end)]
        if step_value is not None and step_value != 0 and None not in bounds:
            # constant bounds: one range object for the module, not one per scan
            begin = convert_constant(bounds[0], ref.var.type)
            finish = bounds[1] or 0
            rng = f"_range_{self.module_name}_{len(self.module_lines)}"
            stop = finish + 1 if step_value > 0 else finish - 1
            self.module_lines.append((f"{rng} = _range({begin}, {stop}, {step_value})", s.pos.line))
        elif step_value is None:
            self.out(f"{rng} = _for_range({start}, {end}, {step})")
        elif step_value > 0 and step_value == 1 and bounds[0] is not None and INT_CODE.fullmatch(start):
            last = self.x.temp("last")  # FOR i := c TO e: e in a local, the range made if needed
            self.out(f"{last} = {end}")
        elif step_value > 0:
            self.out(f"{rng} = _range({start}, ({end}) + 1, {step_value})")
        else:
            self.out(f"{rng} = _range({start}, ({end}) - 1, {step_value})")
        aliased = ref.scope in ("member", "local") and not assigns(s.body, ref.var)
        outer_alias = self.x.aliases.get(id(ref.var))  # a local of an enclosing loop holding it
        loop_var = self.x.temp("k") if aliased else target
        sites = index_sites(s.body, ref.var) if aliased else []
        if aliased:
            self.x.aliases[id(ref.var)] = loop_var
            start_c, end_c = self.decls.const_int(s.start), self.decls.const_int(s.end)
            if start_c is not None and end_c is not None:
                self.x.safe_index[id(ref.var)] = (min(start_c, end_c), max(start_c, end_c))
        if last:
            splits = sites and id(ref.var) not in self.x.safe_index and self.split_depth < 2
            low, high = max((lo for lo, _ in sites), default=0), min((hi for _, hi in sites), default=0)
            if splits and low <= int(start) <= high:
                self._count_up_loop(s, start, last, rng, loop_var, target, ref.var, aliased, high)
                if aliased:
                    self._unalias(ref.var, outer_alias)
                return
            self.out(f"{rng} = _range({start}, {last} + 1, 1)")
        self.loops.append((loop_var, target) if aliased else None)
        if sites and id(ref.var) not in self.x.safe_index and self.split_depth < 2:
            # Two versions of the loop: when the whole range is inside the bounds of every array the
            # loop variable indexes, run a body without bounds checks (structure elements read into
            # locals, see _for_body); otherwise the checked body.
            low = max(lo for lo, _ in sites)
            high = min(hi for _, hi in sites)
            first, last = (
                (f"{rng}[0]", f"{rng}[-1]") if (step_value or 0) > 0 else (f"{rng}[-1]", f"{rng}[0]")
            )
            if step_value is None:
                first, last = f"_min({rng}[0], {rng}[-1])", f"_max({rng}[0], {rng}[-1])"
            self.out(f"if not {rng} or ({low} <= {first} and {last} <= {high}):")
            self.out.depth += 1
            self.split_depth += 1
            self.x.safe_index[id(ref.var)] = (low, high)
            self._for_body(s, rng, loop_var, target, ref.var, cache_elements=True)
            del self.x.safe_index[id(ref.var)]
            self.split_depth -= 1
            self.out.depth -= 1
            self.out("else:")
            self.out.depth += 1
            self._for_body(s, rng, loop_var, target, ref.var, cache_elements=False)
            self.out.depth -= 1
        else:
            known = self.x.safe_index.get(id(ref.var))
            statically_safe = known is not None and all(lo <= known[0] and known[1] <= hi for lo, hi in sites)
            self._for_body(s, rng, loop_var, target, ref.var, cache_elements=aliased and statically_safe)
        self.loops.pop()
        if aliased:
            self._unalias(ref.var, outer_alias)

    def _unalias(self, var: T.VarInfo, outer_alias: str | None) -> None:
        """After a loop over ``var``: reads of it go to the enclosing loop's local again, if any
        (not to the member, which that loop writes only when it ends)."""
        if outer_alias is None:
            del self.x.aliases[id(var)]
        else:
            self.x.aliases[id(var)] = outer_alias
        self.x.safe_index.pop(id(var), None)

    def _count_up_loop(
        self,
        s: A.For,
        start: str,
        last: str,
        rng: str,
        loop_var: str,
        target: str,
        var: T.VarInfo,
        aliased: bool,
        high: int,
    ) -> None:
        """``FOR i := c TO e`` (step 1, c inside the bounds of every array i indexes): the fast
        body when e is at most the smallest upper bound (an empty range included), iterating a
        range made from c and e directly; else the checked body over ``range(c, e + 1)``."""
        self.loops.append((loop_var, target) if aliased else None)
        self.out(f"if {last} <= {high}:")
        self.out.depth += 1
        self.split_depth += 1
        self.x.safe_index[id(var)] = (int(start), high)
        self.count_up = (int(start), last)
        self._for_body(s, rng, loop_var, target, var, cache_elements=True)
        self.count_up = None
        del self.x.safe_index[id(var)]
        self.split_depth -= 1
        self.out.depth -= 1
        self.out("else:")
        self.out.depth += 1
        self.out(f"{rng} = _range({start}, {last} + 1, 1)")
        self._for_body(s, rng, loop_var, target, var, cache_elements=False)
        self.out.depth -= 1
        self.loops.pop()

    def _for_body(
        self, s: A.For, rng: str, loop_var: str, target: str, var: T.VarInfo, cache_elements: bool
    ) -> None:
        """The loop itself. With ``cache_elements`` (indices known to be in bounds) each structure
        element one pass can reach twice is read once per iteration, and, when the body calls nothing,
        the scalar members and globals it uses live in locals for the loop and are written back
        after it."""
        count_up, self.count_up = self.count_up, None  # this loop's, not a nested loop's
        hoisted: list[tuple[str, str]] = []  # (local, member) of scalars written back after the loop
        held: list[tuple[str, str]] = []  # (local, member) of every member the loop reads from a local
        bounds = [self.decls.const_int(part) for part in (s.start, s.end, s.step or A.IntLit(s.pos, 1))]
        trips = None
        if None not in bounds and bounds[2] != 0:
            first, last, step = (b for b in bounds if b is not None)
            trips = len(range(first, last + (1 if step > 0 else -1), step))
        # locals pay off from a few iterations on; a loop known to run once or twice reads members
        names = container_names(s.body) if trips is None or trips > 2 else []
        if cache_elements and not calls_pous(s.body) and (trips is None or trips > 2):
            names += scalar_names(s.body, var)
        for used in names:
            if id(used) in self.x.aliases:
                continue
            local = self.x.temp("m")
            ref = VarRef(used, "global" if used.section == "VAR_GLOBAL" else "member")
            held.append((local, self.x.var_code(ref)))
            if T.is_elementary(used.type) or isinstance(T.underlying(used.type), T.EnumType):
                if assigns(s.body, used):
                    hoisted.append(held[-1])
            self.x.aliases[id(used)] = local
        for local, source in held:
            self.out(f"{local} = {source}")
        outer_qualities = self.x.qualities_local
        self.hoisted.append(hoisted)
        added: list[tuple[str, str]] = []
        whole = self._whole_array(s, var, bounds) if cache_elements else None
        shift = None
        if whole is None:
            shift = self._shift(s, var, rng, loop_var, target, trips, count_up) if cache_elements else None
            if shift is None and count_up is not None:
                shift = f"_range({count_up[0]}, {count_up[1]} + 1)"
        io_targets = self._hoist_io_paths(s.body, var) if cache_elements else []
        if whole is not None:
            # the loop variable only picks elements of one array it runs over from end to end:
            # iterate over the elements themselves
            element = self.x.temp("e")
            self.out(f"for {element} in {whole}:")
            self.x.element_cache[(whole, loop_var)] = element
            added.append((whole, loop_var))
        else:
            self.out(f"for {loop_var} in {shift or rng}:")
        self.out.depth += 1
        if cache_elements and whole is None:
            for array in cacheable_arrays(s.body, var):
                array_type = T.underlying(array.ty)
                assert isinstance(array_type, T.ArrayType)
                low, high = array_type.dims[0]
                if not self.x.known_inside(var, low, high):
                    continue
                base = self.x.expr(array)
                key = (base, loop_var)
                if key in self.x.element_cache:
                    continue
                if _reads_on_a_path(s.body, _element_sites(s.body, var, base, self.x.expr)) < 2:
                    continue  # one read per pass: the local would cost more than it saves
                element = self.x.temp("e")
                offset = "" if low == self.x.shift.get(id(var), 0) else f" - {low}"
                self.out(f"{element} = {base}[{loop_var}{offset}]")
                self.x.element_cache[key] = element
                added.append(key)
        self.block(s.body)
        if self.x.shift.pop(id(var), None) is not None:
            self.loops[-1] = (loop_var, target)
        for key in added:
            del self.x.element_cache[key]
        for io_target, outer in reversed(io_targets):  # an enclosing loop's table again, if any
            if outer is None:
                del self.x.io_tables[io_target]
            else:
                self.x.io_tables[io_target] = outer
        self.x.qualities_local = outer_qualities
        self.out.depth -= 1
        self.out("else:")
        self.out.depth += 1
        if None not in bounds and bounds[2] != 0:
            first, last, step = (b for b in bounds if b is not None)
            span = range(first, last + (1 if step > 0 else -1), step)
            final = literal_code(convert_constant(span.start + len(span) * span.step, var.type))
            self.out(f"{target} = {final}")  # the value after a normal end, known at compile time
        elif count_up is not None:  # c + the number of passes
            begin, end = count_up
            self.out(f"{target} = {wrap_code(f'({end} + 1 if {end} >= {begin} else {begin})', var.type)}")
        else:
            self.out(f"{target} = {wrap_code(f'{rng}.start + _len({rng}) * {rng}.step', var.type)}")
        self.out.depth -= 1
        self.hoisted.pop()
        for local, source in hoisted:
            self.out(f"{source} = {local}")
        for local, _ in held:
            for used_id, alias in list(self.x.aliases.items()):
                if alias == local:
                    del self.x.aliases[used_id]

    def _hoist_io_paths(self, body: list[A.Stmt], var: T.VarInfo) -> list[tuple[int, tuple[str, str] | None]]:
        """Before the loop: for each QUALITY_OF/AGE_OF of an indexed variable in its body, the
        table of the instance's paths by index (the body then looks up only the index), and
        ``_rt.qualities`` when the body reads qualities (nothing in a scan replaces it). With one
        index the table is a ``_PathTable`` that makes a missing path itself (one subscript in the
        body), keyed by the element offset when the index is the loop variable run as offsets."""
        targets: list[tuple[int, tuple[str, str] | None]] = []
        qualities = ""
        for node in walk(body):
            if not (isinstance(node, A.Call) and node.io_target is not None):
                continue
            if not qualities and node.ref is not None and getattr(node.ref[1], "name", "") == "QUALITY_OF":
                qualities = self.x.qualities_local = self.x.temp("q")
                self.out(f"{qualities} = _rt.qualities")
            if not any(isinstance(n, A.Index) for n in walk(node.io_target)):
                continue
            table = f"_paths_{self.module_name}_{len(self.module_lines)}"
            self.module_lines.append((f"{table} = {{}}", node.pos.line))
            local = self.x.temp("p")
            owner = self.x.io_owner(node.io_target)
            maker = self._path_maker(node.io_target, var)
            if maker is None:
                kind, made = "dict", "{}"
            else:
                kind, made = maker[0], f"_PathTable({maker[1]})"
            self.out(f"{local} = ({table}.get({owner}) or {table}.setdefault({owner}, {made}))")
            targets.append((id(node.io_target), self.x.io_tables.get(id(node.io_target))))
            self.x.io_tables[id(node.io_target)] = (local, kind)
        return targets

    def _path_maker(self, io_target: A.Expr, var: T.VarInfo) -> tuple[str, str] | None:
        """(kind, code of a function of the key) making the path of ``io_target`` when it has one
        index: "offset" when that index is the loop variable run as element offsets (the key is
        the offset), else "index" (the key is the index value); None with more indices."""
        indices = chain_indices(io_target)
        if len(indices) != 1:
            return None
        index = indices[0]
        low = self.x.shift.get(id(var))
        by_offset = (
            isinstance(index, A.Name)
            and isinstance(index.ref, VarRef)
            and index.ref.var is var
            and low is not None
            and id(var) in self.x.aliases
        )
        parts: list[str] = []
        node = io_target
        while isinstance(node, A.Member | A.Index):
            parts.append("." + node.name.lower() if isinstance(node, A.Member) else "[{_i}]")
            node = node.base
        assert isinstance(node, A.Name)
        text = "f" + repr("{_o}." + node.name.lower() + "".join(reversed(parts)))
        if by_offset:
            text = text.replace("{_i}", "{_i + " + str(low) + "}")
        owner = self.x.io_owner(io_target)
        return ("offset" if by_offset else "index"), f"lambda _i, _o={owner}: {text}"

    def _shift(
        self,
        s: A.For,
        var: T.VarInfo,
        rng: str,
        loop_var: str,
        target: str,
        trips: int | None,
        count_up: tuple[int, str] | None = None,
    ) -> str | None:
        """When every array the loop variable indexes starts at the same L (ARRAY[1..n]), iterate
        over the element offsets (value - L): each index is then the loop local itself, and the
        value where the body needs it is ``local + L``. Returns the range to iterate, or None."""
        if trips is not None and trips <= 2:
            return None
        lows = {low for low, _ in index_sites(s.body, var)}
        if len(lows) != 1:
            return None
        low = lows.pop()
        if low == 0:
            return None
        if count_up is not None:  # FOR i := c TO e: offsets c - L .. e - L
            first, last = count_up
            stop = f"{last} + {1 - low}" if low < 1 else (last if low == 1 else f"{last} - {low - 1}")
            shifted = f"_range({stop})" if first == low else f"_range({first - low}, {stop})"
        elif rng.startswith("_range_"):  # constant bounds: a second module-level range
            name = f"{rng}_from{low}".replace("-", "m")
            self.module_lines.append(
                (f"{name} = _range({rng}.start - {low}, {rng}.stop - {low}, {rng}.step)", s.pos.line)
            )
            shifted = name
        else:
            shifted = f"_range({rng}.start - {low}, {rng}.stop - {low}, {rng}.step)"
        self.x.shift[id(var)] = low
        self.loops[-1] = (f"({loop_var} + {low})", target)
        return shifted

    def _whole_array(self, s: A.For, var: T.VarInfo, bounds: list[int | None]) -> str | None:
        """The code of the one structure array whose elements are all the loop uses its variable
        for, when the loop runs over all of them in order (constant bounds = the array's bounds,
        step 1, no EXIT or RETURN that would need the variable's value); else None."""
        if bounds[2] != 1 or bounds[0] is None or bounds[1] is None:
            return None
        arrays = cacheable_arrays(s.body, var)
        uses = 0
        for node in walk(s.body):
            if isinstance(node, A.Exit | A.Return):
                return None
            if isinstance(node, A.Call) and node.io_target is not None:
                return None  # QUALITY_OF/AGE_OF look their path up by the index: keep the variable
            if isinstance(node, A.Name) and isinstance(node.ref, VarRef) and node.ref.var is var:
                uses += 1
        if not arrays or uses != len(arrays):
            return None
        codes = {self.x.expr(array) for array in arrays}
        array_type = T.underlying(arrays[0].ty)
        assert isinstance(array_type, T.ArrayType)
        if len(codes) != 1 or array_type.dims != [(bounds[0], bounds[1])]:
            return None
        return codes.pop()


def _element_sites(
    body: list[A.Stmt], var: T.VarInfo, base: str, code_of: Callable[[A.Expr], str]
) -> set[int]:
    """The ``a[var]`` nodes of ``body`` whose array is ``base`` (by its code)."""
    return {
        id(e)
        for e in walk(body)
        if isinstance(e, A.Index)
        and is_loop_index(e, var)
        and stable_base(e.base)
        and code_of(e.base) == base
    }


def _reads_on_a_path(body: list[A.Stmt], sites: set[int]) -> int:
    """The most of ``sites`` one pass through ``body`` can reach: an IF or CASE counts its
    conditions and its busiest branch, a nested loop counts twice (it may run many times)."""
    total = 0
    for stmt in body:
        if isinstance(stmt, A.If):
            bodies = [branch for _, branch in stmt.branches] + [stmt.else_body or []]
            total += sum(_count(cond, sites) for cond, _ in stmt.branches)
            total += max(_reads_on_a_path(branch, sites) for branch in bodies)
        elif isinstance(stmt, A.Case):
            bodies = [branch for _, branch in stmt.elements] + [stmt.else_body or []]
            total += _count(stmt.selector, sites) + max(_reads_on_a_path(branch, sites) for branch in bodies)
        elif isinstance(stmt, A.For | A.While | A.Repeat):
            total += 2 * _count(stmt, sites)
        else:
            total += _count(stmt, sites)
    return total


def _count(node: A.Node, sites: set[int]) -> int:
    return sum(1 for n in walk(node) if id(n) in sites)
