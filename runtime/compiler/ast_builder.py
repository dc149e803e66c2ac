"""Builds the ST AST from Lark's LALR reductions (one method per grammar rule or alias).

Literal texts are decoded here; a malformed literal becomes a diagnostic and a placeholder value so
that parsing continues.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lark import Token, Transformer

from . import st_ast as A
from .diagnostics import DiagnosticBag, Pos
from .lexer import SourceScanner
from .literals import (
    LiteralError,
    parse_based,
    parse_date_literal,
    parse_decimal,
    parse_duration,
    parse_real,
    parse_string,
)


class BuildContext:
    """Per-parse state: file name, diagnostics, and the POUs completed so far (for partial results)."""

    def __init__(self, filename: str, diagnostics: DiagnosticBag, scanner: SourceScanner) -> None:
        self.filename = filename
        self.diagnostics = diagnostics
        self.scanner = scanner
        self.items: list[Any] = []

    def pos(self, token: Token) -> Pos:
        return Pos(self.filename, token.line or 0, token.column or 0)

    def partial_unit(self) -> A.CompilationUnit:
        return _unit(self.filename, self.items)

    def attach_pragmas(self, unit: A.CompilationUnit) -> None:
        """Give each ``{attribute ...}`` pragma to the first declaration that follows it."""
        if not self.scanner.pragmas:
            return
        decls: list[A.VarDecl] = []
        for pou in unit.pous:
            for block in pou.var_blocks:
                decls.extend(block.decls)
        for blocks in [unit.global_blocks] + [c.var_blocks for c in unit.configurations]:
            for block in blocks:
                decls.extend(block.decls)
        for config in unit.configurations:
            for res in config.resources:
                for block in res.var_blocks:
                    decls.extend(block.decls)
        decls.sort(key=lambda d: (d.pos.line, d.pos.col))
        for pragma in self.scanner.pragmas:
            following = next(
                (d for d in decls if (d.pos.line, d.pos.col) > (pragma.pos.line, pragma.pos.col)), None
            )
            if following is None:
                self.diagnostics.warning(
                    "W0001", f"attribute '{pragma.name}' is not followed by a declaration", pragma.pos
                )
                continue
            following.attributes[pragma.name] = pragma.value


def _unit(filename: str, items: list[Any]) -> A.CompilationUnit:
    unit = A.CompilationUnit(filename, [], [], [], [])
    for item in items:
        if isinstance(item, A.Pou):
            unit.pous.append(item)
        elif isinstance(item, list):
            unit.types.extend(t for t in item if isinstance(t, A.TypeDecl))
        elif isinstance(item, A.Configuration):
            unit.configurations.append(item)
        elif isinstance(item, A.VarBlock):
            unit.global_blocks.append(item)
    return unit


def _tokens(children: list[Any], kind: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type == kind]


class ASTBuilder(Transformer[Token, Any]):
    """Rule callbacks. The active ``BuildContext`` is the top of ``contexts`` (one per parse)."""

    contexts: ClassVar[list[BuildContext]] = []

    @property
    def ctx(self) -> BuildContext:
        return self.contexts[-1]

    def _pos(self, item: Any) -> Pos:
        if isinstance(item, Token):
            return self.ctx.pos(item)
        return item.pos  # type: ignore[no-any-return]

    def _literal_error(self, token: Token, error: LiteralError) -> None:
        self.ctx.diagnostics.error("E0005", str(error), self.ctx.pos(token), length=len(str(token)))

    # ------------------------------------------------------------ top level
    def start(self, children: list[Any]) -> A.CompilationUnit:
        return _unit(self.ctx.filename, children)

    def unsupported_item(self, children: list[Any]) -> None:
        return None

    def _pou(self, kind: str, children: list[Any], return_type: A.TypeRef | None) -> A.Pou:
        head, name = children[0], children[1]
        blocks = [c for c in children if isinstance(c, A.VarBlock)]
        body = next(c for c in children if isinstance(c, list))
        end = children[-1]
        pou = A.Pou(self._pos(head), kind, str(name), return_type, blocks, body, self._pos(end))
        for child in children:
            if isinstance(child, tuple) and child and child[0] == "unsupported":
                pou.unsupported.append((child[1], child[2]))
        self.ctx.items.append(pou)
        return pou

    def program(self, children: list[Any]) -> A.Pou:
        return self._pou("PROGRAM", children, None)

    def function_block(self, children: list[Any]) -> A.Pou:
        return self._pou("FUNCTION_BLOCK", children, None)

    def fb_extends(self, children: list[Any]) -> tuple[str, str, Pos]:
        return ("unsupported", "EXTENDS (inheritance)", self._pos(children[0]))

    def fb_implements(self, children: list[Any]) -> tuple[str, str, Pos]:
        return ("unsupported", "IMPLEMENTS (interfaces)", self._pos(children[0]))

    def function(self, children: list[Any]) -> A.Pou:
        return_type = next((c for c in children if isinstance(c, A.TypeRef)), None)
        return self._pou("FUNCTION", children, return_type)

    # ------------------------------------------------------------ declarations
    def var_keyword(self, children: list[Any]) -> Token:
        return children[0]  # type: ignore[no-any-return]

    def var_qualifier(self, children: list[Any]) -> Token:
        return children[0]  # type: ignore[no-any-return]

    def var_block(self, children: list[Any]) -> A.VarBlock:
        keyword = children[0]
        qualifiers = {str(c.type) for c in children[1:] if isinstance(c, Token)}
        decls = [c for c in children if isinstance(c, A.VarDecl)]
        return A.VarBlock(
            self._pos(keyword),
            str(keyword.type),
            "CONSTANT" in qualifiers,
            "RETAIN" in qualifiers or "PERSISTENT" in qualifiers,
            decls,
        )

    def global_block(self, children: list[Any]) -> A.VarBlock:
        block: A.VarBlock = children[0]
        self.ctx.items.append(block)
        return block

    def var_names(self, children: list[Any]) -> list[tuple[str, Pos]]:
        return [(str(t), self._pos(t)) for t in children if isinstance(t, Token) and t.type != "COMMA"]

    def location(self, children: list[Any]) -> str:
        return str(children[1]).upper()

    def var_decl(self, children: list[Any]) -> A.VarDecl:
        names = children[0]
        location = next((c for c in children if isinstance(c, str) and not isinstance(c, Token)), None)
        type_ref = next(c for c in children if isinstance(c, A.TypeRef))
        init = _initializer_after_assign(children)
        return A.VarDecl(names[0][1], names, location, type_ref, init)

    def struct_field(self, children: list[Any]) -> A.VarDecl:
        names = children[0]
        type_ref = next(c for c in children if isinstance(c, A.TypeRef))
        return A.VarDecl(names[0][1], names, None, type_ref, _initializer_after_assign(children))

    def named_type(self, children: list[Any]) -> A.NamedTypeRef:
        return A.NamedTypeRef(self._pos(children[0]), str(children[0]))

    def string_type(self, children: list[Any]) -> A.StringTypeRef:
        keyword = children[0]
        length = next((c for c in children[1:] if isinstance(c, A.Expr)), None)
        return A.StringTypeRef(self._pos(keyword), keyword.type == "WSTRING", length)

    def array_range(self, children: list[Any]) -> tuple[A.Expr, A.Expr]:
        return (children[0], children[2])

    def array_type(self, children: list[Any]) -> A.ArrayTypeRef:
        ranges = [c for c in children if isinstance(c, tuple)]
        return A.ArrayTypeRef(self._pos(children[0]), ranges, children[-1])

    def subrange_type(self, children: list[Any]) -> A.SubrangeTypeRef:
        return A.SubrangeTypeRef(self._pos(children[0]), str(children[0]), children[2], children[4])

    def enum_value(self, children: list[Any]) -> tuple[str, Pos, A.Expr | None]:
        value = children[2] if len(children) > 2 else None
        return (str(children[0]), self._pos(children[0]), value)

    def enum_type(self, children: list[Any]) -> A.EnumTypeRef:
        values = [c for c in children if isinstance(c, tuple)]
        base = next((c.name for c in children if isinstance(c, A.NamedTypeRef)), None)
        return A.EnumTypeRef(self._pos(children[0]), values, base)

    def struct_type(self, children: list[Any]) -> A.StructTypeRef:
        return A.StructTypeRef(self._pos(children[0]), [c for c in children if isinstance(c, A.VarDecl)])

    def pointer_type(self, children: list[Any]) -> A.PointerTypeRef:
        return A.PointerTypeRef(self._pos(children[0]), str(children[0].type))

    def array_init(self, children: list[Any]) -> A.ArrayInit:
        elements = [c for c in children if not (isinstance(c, Token) and c.type in ("LSQB", "RSQB", "COMMA"))]
        return A.ArrayInit(self._pos(children[0]), elements)

    def repeated_init(self, children: list[Any]) -> A.RepeatedInit:
        value = children[2] if not isinstance(children[2], Token) else None
        return A.RepeatedInit(self._pos(children[0]), self._decimal(children[0]), value)

    def struct_init(self, children: list[Any]) -> A.StructInit:
        fields = [c for c in children if isinstance(c, tuple)]
        return A.StructInit(self._pos(children[0]), fields)

    def field_init(self, children: list[Any]) -> tuple[str, Pos, Any]:
        return (str(children[0]), self._pos(children[0]), children[2])

    def type_decl(self, children: list[Any]) -> A.TypeDecl:
        return A.TypeDecl(
            self._pos(children[0]), str(children[0]), children[2], _initializer_after_assign(children)
        )

    def type_section(self, children: list[Any]) -> list[A.TypeDecl]:
        decls = [c for c in children if isinstance(c, A.TypeDecl)]
        self.ctx.items.append(decls)
        return decls

    # ------------------------------------------------------------ configuration
    def configuration(self, children: list[Any]) -> A.Configuration:
        config = A.Configuration(self._pos(children[0]), str(children[1]), [], [])
        loose = A.Resource(self._pos(children[0]), "", [], [], [])
        for child in children[2:]:
            if isinstance(child, A.VarBlock):
                config.var_blocks.append(child)
            elif isinstance(child, A.Resource):
                config.resources.append(child)
            elif isinstance(child, A.TaskDecl):
                loose.tasks.append(child)
            elif isinstance(child, A.ProgramConfig):
                loose.programs.append(child)
        if loose.tasks or loose.programs:
            config.resources.insert(0, loose)
        self.ctx.items.append(config)
        return config

    def resource(self, children: list[Any]) -> A.Resource:
        res = A.Resource(self._pos(children[0]), str(children[1]), [], [], [])
        for child in children[4:]:
            if isinstance(child, A.VarBlock):
                res.var_blocks.append(child)
            elif isinstance(child, A.TaskDecl):
                res.tasks.append(child)
            elif isinstance(child, A.ProgramConfig):
                res.programs.append(child)
        return res

    def task_param(self, children: list[Any]) -> tuple[str, Pos, A.Expr]:
        return (str(children[0]).upper(), self._pos(children[0]), children[2])

    def task_decl(self, children: list[Any]) -> A.TaskDecl:
        params = {name: (pos, value) for name, pos, value in (c for c in children if isinstance(c, tuple))}
        return A.TaskDecl(self._pos(children[0]), str(children[1]), params)

    def program_config(self, children: list[Any]) -> A.ProgramConfig:
        idents = _tokens(children, "IDENT")
        has_task = any(isinstance(c, Token) and c.type == "WITH" for c in children)
        args = next((c for c in children if isinstance(c, list)), [])
        task = idents[1] if has_task else None
        type_tok = idents[2] if has_task else idents[1]
        return A.ProgramConfig(
            self._pos(children[0]),
            str(idents[0]),
            str(task) if task is not None else None,
            self._pos(task) if task is not None else None,
            str(type_tok),
            self._pos(type_tok),
            args,
        )

    # ------------------------------------------------------------ statements
    def statement_list(self, children: list[Any]) -> list[A.Stmt]:
        return [c for c in children if isinstance(c, A.Stmt)]

    def assignment(self, children: list[Any]) -> A.Assign:
        return A.Assign(children[0].pos, children[0], children[2])

    def call_statement(self, children: list[Any]) -> A.CallStmt:
        call = self.call(children[:-1])
        return A.CallStmt(call.pos, call)

    def if_statement(self, children: list[Any]) -> A.If:
        branches = [(children[1], children[3])]
        else_body = None
        for child in children[4:]:
            if isinstance(child, tuple) and child[0] == "elsif":
                branches.append((child[1], child[2]))
            elif isinstance(child, tuple) and child[0] == "else":
                else_body = child[1]
        return A.If(self._pos(children[0]), branches, else_body)

    def elsif_clause(self, children: list[Any]) -> tuple[str, A.Expr, list[A.Stmt]]:
        return ("elsif", children[1], children[3])

    def else_clause(self, children: list[Any]) -> tuple[str, list[A.Stmt]]:
        return ("else", children[1])

    def case_statement(self, children: list[Any]) -> A.Case:
        elements = [c for c in children if isinstance(c, tuple) and c[0] == "element"]
        else_body = next((c[1] for c in children if isinstance(c, tuple) and c[0] == "else"), None)
        return A.Case(self._pos(children[0]), children[1], [(e[1], e[2]) for e in elements], else_body)

    def case_element(self, children: list[Any]) -> tuple[str, list[Any], list[A.Stmt]]:
        labels = [c for c in children[:-1] if isinstance(c, A.Expr | A.CaseRange)]
        return ("element", labels, children[-1])

    def case_range(self, children: list[Any]) -> A.CaseRange:
        return A.CaseRange(children[0].pos, children[0], children[2])

    def case_name(self, children: list[Any]) -> A.Name:
        return A.Name(self._pos(children[0]), str(children[0]))

    def for_statement(self, children: list[Any]) -> A.For:
        var = A.Name(self._pos(children[1]), str(children[1]))
        exprs = [c for c in children if isinstance(c, A.Expr)]
        step = exprs[2] if len(exprs) > 2 else None
        return A.For(self._pos(children[0]), var, exprs[0], exprs[1], step, children[-2])

    def while_statement(self, children: list[Any]) -> A.While:
        return A.While(self._pos(children[0]), children[1], children[3])

    def repeat_statement(self, children: list[Any]) -> A.Repeat:
        return A.Repeat(self._pos(children[0]), children[1], children[3])

    def exit_statement(self, children: list[Any]) -> A.Exit:
        return A.Exit(self._pos(children[0]))

    def continue_statement(self, children: list[Any]) -> A.Continue:
        return A.Continue(self._pos(children[0]))

    def return_statement(self, children: list[Any]) -> A.Return:
        return A.Return(self._pos(children[0]))

    def empty_statement(self, children: list[Any]) -> A.Empty:
        return A.Empty(self._pos(children[0]))

    def jump_statement(self, children: list[Any]) -> A.Unsupported:
        return A.Unsupported(self._pos(children[0]), "JMP (jumps and labels)")

    def unsupported_statement(self, children: list[Any]) -> A.Empty:
        return A.Empty(self._pos(children[0]))  # the lexer already reported it

    # ------------------------------------------------------------ arguments
    def arg_list(self, children: list[Any]) -> list[A.Arg]:
        return [c for c in children if isinstance(c, A.Arg)]

    def positional_arg(self, children: list[Any]) -> A.Arg:
        return A.Arg(children[0].pos, None, children[0])

    def input_arg(self, children: list[Any]) -> A.Arg:
        return A.Arg(self._pos(children[0]), str(children[0]), children[2])

    def output_arg(self, children: list[Any]) -> A.Arg:
        return A.Arg(self._pos(children[0]), str(children[0]), None, children[2])

    def negated_output_arg(self, children: list[Any]) -> A.Arg:
        return A.Arg(self._pos(children[1]), str(children[1]), None, children[3], negated=True)

    # ------------------------------------------------------------ expressions
    def _binary(self, children: list[Any], op: str | None = None) -> A.Binary:
        left, op_tok, right = children
        name = op or str(op_tok.value).upper()
        if name == "&":
            name = "AND"
        return A.Binary(left.pos, name, left, right, self._pos(op_tok))

    def or_op(self, children: list[Any]) -> A.Binary:
        return self._binary(children, "OR")

    def xor_op(self, children: list[Any]) -> A.Binary:
        return self._binary(children, "XOR")

    def and_op(self, children: list[Any]) -> A.Binary:
        return self._binary(children, "AND")

    def compare_op(self, children: list[Any]) -> A.Binary:
        return self._binary(children)

    def arith_op(self, children: list[Any]) -> A.Binary:
        return self._binary(children)

    def power_op(self, children: list[Any]) -> A.Binary:
        return self._binary(children, "**")

    def neg_op(self, children: list[Any]) -> A.Expr:
        operand = children[1]
        return A.Unary(self._pos(children[0]), "-", operand)

    def pos_op(self, children: list[Any]) -> A.Expr:
        return A.Unary(self._pos(children[0]), "+", children[1])

    def not_op(self, children: list[Any]) -> A.Unary:
        return A.Unary(self._pos(children[0]), "NOT", children[1])

    def paren(self, children: list[Any]) -> A.Paren:
        inner = children[1]
        while isinstance(inner, A.Paren):  # ((x)) is (x): no depth for redundant parentheses
            inner = inner.inner
        return A.Paren(self._pos(children[0]), inner)

    def call(self, children: list[Any]) -> A.Call:
        callee = children[0]
        args = children[2] if isinstance(children[2], list) else []
        return A.Call(callee.pos, callee, args)

    def keyword_call(self, children: list[Any]) -> A.Call:
        keyword = children[0]
        callee = A.Name(self._pos(keyword), str(keyword.type))
        args = children[2] if isinstance(children[2], list) else []
        return A.Call(callee.pos, callee, args)

    def name(self, children: list[Any]) -> A.Name:
        return A.Name(self._pos(children[0]), str(children[0]))

    def member(self, children: list[Any]) -> A.Member:
        return A.Member(children[0].pos, children[0], str(children[2]), self._pos(children[2]))

    def bit_access(self, children: list[Any]) -> A.BitAccess:
        text = str(children[2]).upper().lstrip("%X").replace("_", "") or "0"
        if len(text) > 3:  # no ST type has 1,000 bits; the checker reports the bit as out of range
            text = "999"
        return A.BitAccess(children[0].pos, children[0], int(text))

    def index(self, children: list[Any]) -> A.Index:
        indices = [c for c in children[1:] if isinstance(c, A.Expr)]
        return A.Index(children[0].pos, children[0], indices)

    def deref(self, children: list[Any]) -> A.Deref:
        return A.Deref(children[0].pos, children[0])

    def direct_variable(self, children: list[Any]) -> A.DirectVar:
        return A.DirectVar(self._pos(children[0]), str(children[0]).upper())

    # ------------------------------------------------------------ literals
    def _decimal(self, tok: Token) -> int:
        try:
            return parse_decimal(str(tok))
        except LiteralError as error:
            self._literal_error(tok, error)
            return 0

    def _real(self, tok: Token) -> float:
        try:
            return parse_real(str(tok))
        except LiteralError as error:
            self._literal_error(tok, error)
            return 0.0

    def int_literal(self, children: list[Any]) -> A.IntLit:
        tok = children[0]
        return A.IntLit(self._pos(tok), self._decimal(tok))

    def int_literal_plus(self, children: list[Any]) -> A.IntLit:
        return A.IntLit(self._pos(children[0]), self._decimal(children[1]))

    def negative_int(self, children: list[Any]) -> A.IntLit:
        return A.IntLit(self._pos(children[0]), -self._decimal(children[1]))

    def negative_real(self, children: list[Any]) -> A.RealLit:
        return A.RealLit(self._pos(children[0]), -self._real(children[1]), "-" + str(children[1]))

    def based_literal(self, children: list[Any]) -> A.IntLit:
        tok = children[0]
        try:
            value = parse_based(str(tok))
        except LiteralError as error:
            self._literal_error(tok, error)
            value = 0
        return A.IntLit(self._pos(tok), value)

    def real_literal(self, children: list[Any]) -> A.RealLit:
        tok = children[0]
        return A.RealLit(self._pos(tok), self._real(tok), str(tok))

    def true_literal(self, children: list[Any]) -> A.BoolLit:
        return A.BoolLit(self._pos(children[0]), True)

    def false_literal(self, children: list[Any]) -> A.BoolLit:
        return A.BoolLit(self._pos(children[0]), False)

    def string_literal(self, children: list[Any]) -> A.StringLit:
        tok = children[0]
        try:
            value = parse_string(str(tok))
        except LiteralError as error:
            self._literal_error(tok, error)
            value = ""
        return A.StringLit(self._pos(tok), value, str(tok).startswith('"'))

    def time_literal(self, children: list[Any]) -> A.TimeLit:
        tok = children[0]
        long = str(tok).upper().startswith("L")
        try:
            ns = parse_duration(str(tok))
        except LiteralError as error:
            self._literal_error(tok, error)
            ns = 0
        return A.TimeLit(self._pos(tok), ns, "LTIME" if long else "TIME")

    def date_literal(self, children: list[Any]) -> A.DateLit:
        tok = children[0]
        try:
            type_name, value = parse_date_literal(str(tok))
        except (LiteralError, ValueError) as error:
            self._literal_error(tok, LiteralError(f"malformed literal {str(tok)!r}: {error}"))
            type_name, value = "DATE", 0
        return A.DateLit(self._pos(tok), value, type_name)

    def enum_name(self, children: list[Any]) -> tuple[str, Token]:
        return ("enum", children[0])

    def typed_literal(self, children: list[Any]) -> A.Expr:
        prefix: Token = children[0]
        type_name = str(prefix)[:-1]
        value = children[1]
        pos = self._pos(prefix)
        if isinstance(value, tuple):
            return A.EnumLit(pos, type_name, str(value[1]))
        value.pos = pos
        if isinstance(value, A.IntLit | A.RealLit | A.BoolLit):
            value.type_name = type_name.upper()
        elif isinstance(value, A.StringLit):
            value.wide = type_name.upper() == "WSTRING"
        return value  # type: ignore[no-any-return]


def _initializer_after_assign(children: list[Any]) -> Any:
    for i, child in enumerate(children):
        if isinstance(child, Token) and child.type == "ASSIGN" and i + 1 < len(children):
            return children[i + 1]
    return None
