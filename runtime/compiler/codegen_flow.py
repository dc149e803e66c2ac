"""Code generation of control flow that must stay inside Python's limits whatever the ST's size.

A mixin of ``codegen.PouGenerator``:
- long ELSIF chains become a flat run of guarded ``if`` statements (an ``elif`` chain is a nested
  tree to Python's compiler);
- CASE looks the selector up in a module-level table (one dict per CASE) and dispatches on the
  branch number in groups, so 5,000 branches cost a lookup and two short chains;
- a statement nested deeper than ``DEPTH_CUT`` indentation levels, or a loop inside ``LOOP_CUT``
  loops, is generated as a helper function (a closure defined at the top of the POU's function,
  sharing its locals through ``nonlocal``) that returns how it ended: 0 normally, 1 EXIT, 2 CONTINUE,
  3 RETURN. Python allows 100 indentation levels and 20 nested loops per function; ST has no limit
  but ours (``limits.MAX_NESTING``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import st_ast as A
from .ast_walk import walk

if TYPE_CHECKING:
    from .codegen_chunk import Emitter
    from .codegen_expr import ExprGen

IF_CHAIN = 16  # ELSIF branches generated as one if/elif chain
CASE_CHAIN = 16  # CASE branches dispatched by one if/elif chain
DEPTH_CUT = 24  # indentation below the function body at which a compound statement moves to a helper
LOOP_CUT = 12  # loops nested in one Python function before an inner loop moves to a helper

_LOOPS = (A.For, A.While, A.Repeat)
_COMPOUND = (A.If, A.Case, *_LOOPS)
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*")


class FlowMixin:
    out: Emitter
    x: ExprGen
    loops: list[tuple[str, str] | None]

    if TYPE_CHECKING:  # provided by PouGenerator and NodeVisitor

        def block(self, stmts: list[A.Stmt]) -> None: ...

        def flush_pre(self) -> None: ...

        def visit(self, node: A.Node, *args: object) -> object: ...

        def _return_statement(self) -> str: ...

    def init_flow(self, module_name: str, local_names: set[str]) -> None:
        self.module_name = module_name  # prefix of module-level tables
        self.local_names = set(local_names)  # Python locals of the POU's function
        self.body_depth = 0  # indentation of the function body
        self.helper_at = 0  # where helper definitions go (line index in the chunk)
        self.helpers: list[tuple[list[tuple[str, int]], int]] = []  # (lines, ST line) per helper
        self.shared: set[str] = set()  # names the helpers share with the function
        self.code_loops = [0]  # per Python function being generated (function, helpers): loops open
        self.module_lines: list[tuple[str, int]] = []

    def start_body(self) -> None:
        self.body_depth = self.out.depth
        self.helper_at = len(self.out.chunk.lines)

    def finish_body(self) -> None:
        """Insert the helpers (and one dead assignment that makes their shared names locals of the
        function, which ``nonlocal`` needs) at the top of the function body; tables at module level."""
        lines = self.out.chunk.lines
        if self.helpers:
            indent = "    " * self.body_depth
            names = sorted(self.shared)
            top = [(f"{indent}if False: {' = '.join(names)} = None", self.helpers[0][1])] if names else []
            lines[self.helper_at : self.helper_at] = top + [line for h in self.helpers for line in h[0]]
        lines[0:0] = self.module_lines

    # ------------------------------------------------------------ compound statements
    def compound(self, s: A.Stmt) -> None:
        """Generate a compound statement here, or in a helper when it would nest too deeply."""
        too_deep = self.out.depth - self.body_depth >= DEPTH_CUT
        if too_deep or (isinstance(s, _LOOPS) and self.code_loops[-1] >= LOOP_CUT):
            self._in_helper(s)
        elif isinstance(s, _LOOPS):
            self.code_loops[-1] += 1
            self.visit(s)
            self.code_loops[-1] -= 1
        else:
            self.visit(s)

    def _in_helper(self, s: A.Stmt) -> None:
        name = self.x.temp("blk")
        outer_lines, outer_depth = self.out.chunk.lines, self.out.depth
        self.out.chunk.lines = []
        self.out.depth = self.body_depth + 1
        self.code_loops.append(0)
        self.compound(s)
        self.code_loops.pop()
        body = self.out.chunk.lines
        self.out.chunk.lines, self.out.depth = outer_lines, outer_depth
        used = {m.group() for text, _ in body for m in _IDENT.finditer(text)} & (
            self.local_names | self.x.temps
        )
        self.shared |= used
        indent = "    " * self.body_depth
        line = s.pos.line
        lines = [(f"{indent}def {name}():", line)]
        if used:
            lines.append((f"{indent}    nonlocal {', '.join(sorted(used))}", line))
        lines += body
        lines.append((f"{indent}    return 0", line))
        self.helpers.append((lines, line))
        status = self.x.temp("st")
        self.local_names.add(status)
        self.out(f"{status} = {name}()")
        if not _may_leave(s):
            return
        if self.code_loops[-1] > 0:
            self.out(f"if {status} == 1:")
            self.out("    break")
            self.out(f"if {status} == 2:")
            self.out("    continue")
            self.out(f"if {status} == 3:")
            self.out("    " + self.return_code())
        elif len(self.code_loops) > 1:
            self.out(f"if {status}:")
            self.out(f"    return {status}")
        else:  # in the function itself outside loops only RETURN can arrive (EXIT needs a loop)
            self.out(f"if {status}:")
            self.out("    " + self.return_code())

    def return_code(self) -> str:
        if len(self.code_loops) > 1:
            return "return 3"
        return self._return_statement()

    def exit_code(self, word: str) -> str:
        """``break``/``continue``, or the helper status that asks its caller to do it."""
        if self.code_loops[-1] > 0:
            return word
        return "return 1" if word == "break" else "return 2"

    # ------------------------------------------------------------ IF
    def if_statement(self, s: A.If) -> None:
        if len(s.branches) > IF_CHAIN:
            self._flat_if(s)
            return
        depth = self.out.depth
        tested, self.x.tested_bool = self.x.tested_bool, ""
        for i, (cond, body) in enumerate(s.branches):
            self.out.line = cond.pos.line
            code = tested if i == 0 and tested else self.x.expr(cond)
            if i == 0 or not self.x.pre:
                self.flush_pre()
                self.out(("if " if i == 0 else "elif ") + code + ":")
            else:
                self.out("else:")
                self.out.depth += 1
                self.flush_pre()
                self.out(f"if {code}:")
            self.out.depth += 1
            self.block(body)
            self.out.depth -= 1
        if s.else_body:
            self.out("else:")
            self.out.depth += 1
            self.block(s.else_body)
            self.out.depth -= 1
        self.out.depth = depth

    def _flat_if(self, s: A.If) -> None:
        """IF with many ELSIFs: one flag says whether a branch ran; every branch is tested at the
        same depth, only while none has."""
        pending = self.x.temp("go")
        self.local_names.add(pending)
        self.out(f"{pending} = True")
        for cond, body in s.branches:
            self.out.line = cond.pos.line
            self.out(f"if {pending}:")
            self.out.depth += 1
            code = self.x.expr(cond)
            self.flush_pre()
            self.out(f"if {code}:")
            self.out(f"    {pending} = False")
            self.out.depth += 1
            self.block(body)
            self.out.depth -= 2
        if s.else_body:
            self.out(f"if {pending}:")
            self.out.depth += 1
            self.block(s.else_body)
            self.out.depth -= 1

    # ------------------------------------------------------------ CASE
    def case(self, s: A.Case) -> None:
        selector = self.x.expr(s.selector)
        self.flush_pre()
        tmp = self.x.temp("s")
        self.local_names.add(tmp)
        self.out(f"{tmp} = {selector}")
        branches = [(i, ranges) for i, ranges in enumerate(s.label_values) if ranges]
        if len(branches) > CASE_CHAIN:
            self._case_table(s, tmp, branches)
            return
        first = True
        for i, ranges in branches:
            labels = s.elements[i][0]
            singles = [lo for lo, hi in ranges if lo == hi]
            tests = []
            if len(singles) == 1:
                tests.append(f"{tmp} == {singles[0]}")
            elif singles:
                tests.append(f"{tmp} in ({', '.join(map(str, singles))})")
            tests += [f"{lo} <= {tmp} <= {hi}" for lo, hi in ranges if lo != hi]
            self.out.line = labels[0].pos.line if labels else s.pos.line
            self.out(("if " if first else "elif ") + " or ".join(tests) + ":")
            first = False
            self.out.depth += 1
            self.block(s.elements[i][1])
            self.out.depth -= 1
        if s.else_body:
            if first:
                self.block(s.else_body)
            else:
                self.out("else:")
                self.out.depth += 1
                self.block(s.else_body)
                self.out.depth -= 1

    def _case_table(
        self, s: A.Case, selector: str, branches: list[tuple[int, list[tuple[int, int]]]]
    ) -> None:
        """Many branches: single labels are looked up in a table (the first branch naming a value
        wins, as in the chain), range labels tested in order; then the branch number is dispatched
        in groups of ``CASE_CHAIN`` (one range test per group, one short chain inside)."""
        table: dict[int, int] = {}
        ranges: list[tuple[int, int, int]] = []
        for number, (_, values) in enumerate(branches):
            for lo, hi in values:
                if lo == hi:
                    table.setdefault(lo, number)
                else:
                    ranges.append((lo, hi, number))
        name = f"_case_{self.module_name}_{len(self.module_lines)}"
        self.module_lines.append((f"{name} = {table!r}", s.pos.line))
        branch = self.x.temp("b")
        self.local_names.add(branch)
        self.out(f"{branch} = {name}.get({selector}, -1)")
        for lo, hi, number in ranges:
            self.out(f"if {lo} <= {selector} <= {hi} and not -1 < {branch} < {number}:")
            self.out(f"    {branch} = {number}")
        for start in range(0, len(branches), CASE_CHAIN):
            group = list(enumerate(branches))[start : start + CASE_CHAIN]
            self.out(f"if {start} <= {branch} < {start + len(group)}:")
            self.out.depth += 1
            for k, (number, (i, _)) in enumerate(group):
                labels = s.elements[i][0]
                self.out.line = labels[0].pos.line if labels else s.pos.line
                self.out(("if " if k == 0 else "elif ") + f"{branch} == {number}:")
                self.out.depth += 1
                self.block(s.elements[i][1])
                self.out.depth -= 1
            self.out.depth -= 1
        if s.else_body:
            self.out(f"if {branch} < 0:")
            self.out.depth += 1
            self.block(s.else_body)
            self.out.depth -= 1


def _may_leave(s: A.Stmt) -> bool:
    """Can running ``s`` end in RETURN, or in an EXIT/CONTINUE of a loop around it?"""
    if any(isinstance(n, A.Return) for n in walk(s)):
        return True
    if isinstance(s, _LOOPS):
        return False
    stack: list[A.Node] = list(s.children())
    while stack:
        node = stack.pop()
        if isinstance(node, A.Exit | A.Continue):
            return True
        if isinstance(node, A.Stmt) and not isinstance(node, _LOOPS):
            stack.extend(node.children())
    return False
