"""Parsing: source text -> ``CompilationUnit``, with positioned syntax errors and recovery.

Lark's LALR parser runs over the tokens of ``lexer.SourceScanner`` and builds the AST directly
(``ast_builder.ASTBuilder`` is applied during parsing, so no parse tree is materialised). On a syntax
error the parser records a diagnostic, unwinds to the enclosing statement or declaration, skips to
the next ``;`` and goes on, so one run reports several errors.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import st_ast as A
from .ast_builder import ASTBuilder, BuildContext
from .diagnostics import DiagnosticBag, Pos
from .lexer import CURRENT_SCANNER, SourceScanner, STLexer
from .parser_tables import cached_lark

_DISPLAY = {
    "ASSIGN": "':='",
    "OUTPUT_ASSIGN": "'=>'",
    "LE": "'<='",
    "GE": "'>='",
    "NE": "'<>'",
    "POW": "'**'",
    "DOTDOT": "'..'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "EQ": "'='",
    "LT": "'<'",
    "GT": "'>'",
    "AMP": "'&'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "SEMI": "';'",
    "COLON": "':'",
    "DOT": "'.'",
    "CARET": "'^'",
    "IDENT": "an identifier",
    "CASE_LABEL": "a CASE label",
    "INTEGER": "an integer",
    "BASED_INT": "an integer",
    "REAL_LIT": "a number",
    "TIME_LIT": "a TIME literal",
    "STRING_LIT": "a string",
    "TYPED_PREFIX": "a typed literal",
    "DIRECT_ADDR": "a direct address",
    "$END": "end of file",
}

_EXPRESSION_START = frozenset(
    """IDENT INTEGER BASED_INT REAL_LIT TRUE FALSE STRING_LIT WSTRING_LIT TIME_LIT DATE_LIT TOD_LIT DT_LIT
    TYPED_PREFIX DIRECT_ADDR LPAR MINUS PLUS NOT CASE_LABEL AND OR XOR MOD""".split()
)

_IL_OPERATORS = frozenset(
    "LD LDN ST STN S R AND ANDN OR ORN XOR XORN ADD SUB MUL DIV MOD GT GE EQ NE LE LT "
    "JMP JMPC JMPCN CAL CALC CALCN RET RETC RETCN".split()
)


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = importlib.resources.files(__package__).joinpath("grammar.lark").read_text("utf-8")
    return cached_lark(
        grammar,
        ASTBuilder(),
        parser="lalr",
        lexer=STLexer,
        maybe_placeholders=True,
        propagate_positions=False,
    )


def describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type in ("IDENT", "CASE_LABEL"):
        return f"identifier '{token.value}'"
    if token.type == "UNSUPPORTED_BLOCK":
        return f"'{token.value}'"
    return f"'{token.value}'"


def describe_expected(expected: set[str]) -> str:
    if {"IDENT", "INTEGER", "LPAR", "NOT"} <= expected:
        rest = expected - _EXPRESSION_START
        return "an expression" + ("" if not rest or len(rest) > 4 else ", " + describe_expected(rest))
    names = []
    for term in sorted(expected):
        if term.startswith("__") or term in ("CASE_LABEL", "UNSUPPORTED_BLOCK", "BIT_INDEX"):
            continue
        names.append(_DISPLAY.get(term, f"'{term}'"))
    names = sorted(set(names))
    if len(names) > 8:
        return ""
    return ", ".join(names)


class _Recovery:
    """The ``on_error`` handler: report, unwind to a restart point, skip to the next ';'."""

    def __init__(self, scanner: SourceScanner, diagnostics: DiagnosticBag) -> None:
        self.scanner = scanner
        self.diagnostics = diagnostics
        self.quiet_until = -1  # suppress cascades: no new report before this token offset

    def __call__(self, error: UnexpectedInput) -> bool:
        if not isinstance(error, UnexpectedToken):
            return False
        token = error.token
        if token.type == "$END":
            self._report(error)
            return False
        self._report(error)
        if self._is_missing_semicolon(error) and self._insert_semicolon(error):
            return True
        parser_state = error.interactive_parser.parser_state
        states = parser_state.parse_conf.states
        while len(parser_state.state_stack) > 1 and not _is_restart_state(states[parser_state.position]):
            parser_state.state_stack.pop()
            parser_state.value_stack.pop()
        if token.type not in ("SEMI",):
            self.scanner.skip_to_semicolon = True
        return True

    def _insert_semicolon(self, error: UnexpectedToken) -> bool:
        """Recover from a forgotten ';' by feeding one, then the token that revealed it."""
        parser = error.interactive_parser
        state = parser.parser_state
        saved = (list(state.state_stack), list(state.value_stack))
        try:
            parser.feed_token(Token("SEMI", ";"))
            parser.feed_token(error.token)
        except UnexpectedInput:
            state.state_stack[:], state.value_stack[:] = saved
            return False
        return True

    def _is_missing_semicolon(self, error: UnexpectedToken) -> bool:
        previous = self.scanner.previous_token
        token = error.token
        return (
            "SEMI" in set(error.expected)
            and previous is not None
            and token.type != "$END"
            and token.line != previous.line
        )

    def _report(self, error: UnexpectedToken) -> bool:
        """Record the error; True when it is a missing ';' before a new line."""
        token = error.token
        offset = token.start_pos if token.start_pos is not None else len(self.scanner.text)
        if offset < self.quiet_until or offset < self.scanner.quiet_until:
            return False
        self.quiet_until = self.scanner.offset_after_next_semicolon(offset)
        previous = self.scanner.previous_token
        expected = set(error.expected)
        pos = (
            self.scanner.pos_at(offset)
            if token.type != "$END"
            else self.scanner.pos_at(len(self.scanner.text))
        )
        if previous is not None and previous.type == "IDENT" and str(previous.value).upper() in _MISSPELLED:
            wrong = str(previous.value)
            right = _MISSPELLED[wrong.upper()]
            start = self.scanner.pos_at(previous.start_pos or 0)
            self.diagnostics.error(
                "E0001", f"unknown keyword '{wrong}'", start, f"the keyword is {right}", len(wrong)
            )
            return False
        il = self._instruction_list_hint(token, previous)
        if il:
            self.diagnostics.error("E0007", "Instruction List (IL) is not supported", il, _IL_HINT)
            return False
        if (
            "SEMI" in expected
            and previous is not None
            and token.type != "$END"
            and token.line != previous.line
        ):
            end_pos = Pos(pos.file, previous.line or 0, (previous.column or 0) + len(str(previous.value)))
            self.diagnostics.error("E0001", "missing ';'", end_pos, "add ';' at the end of this line")
            self.quiet_until = -1
            return True
        wanted = describe_expected(expected)
        message = f"unexpected {describe_token(token)}"
        if wanted:
            message += f", expected {wanted}"
        hint = _hint_for(token, expected)
        self.diagnostics.error("E0001", message, pos, hint, max(1, len(str(token.value))))
        return False

    def _instruction_list_hint(self, token: Token, previous: Token | None) -> Pos | None:
        if previous is None or previous.type != "IDENT" or token.type not in ("IDENT", "INTEGER", "REAL_LIT"):
            return None
        if str(previous.value).upper() in _IL_OPERATORS and previous.line == token.line:
            return self.scanner.pos_at(previous.start_pos or 0)
        return None


_MISSPELLED = {
    "ELSEIF": "ELSIF",
    "ELSE_IF": "ELSIF",
    "ELIF": "ELSIF",
    "ENDIF": "END_IF",
    "ENDFOR": "END_FOR",
    "ENDWHILE": "END_WHILE",
    "ENDCASE": "END_CASE",
    "ENDREPEAT": "END_REPEAT",
    "ENDVAR": "END_VAR",
    "ENDPROGRAM": "END_PROGRAM",
}

_IL_HINT = "plcrun runs Structured Text only; translate the IL network into ST statements"


def _hint_for(token: Token, expected: set[str]) -> str:
    value = str(token.value)
    if token.type == "EQ" and "ASSIGN" in expected:
        return "assignment in ST is ':=', comparison is '='"
    if token.type == "ASSIGN" and "EQ" in expected:
        return "comparison in ST is '=', assignment is ':='"
    if token.type == "IDENT" and value.upper() in ("ELSEIF", "ELSE_IF"):
        return "the keyword is ELSIF"
    if token.type == "IDENT" and value.upper().startswith("END") and "END_IF" in expected:
        return "an IF statement ends with END_IF"
    if token.type == "$END":
        closers = sorted(t for t in expected if t.startswith("END_"))
        if closers:
            return f"the file ends before {closers[0]}"
    return ""


def _is_restart_state(actions: dict[str, Any]) -> bool:
    # A state where a new statement can begin (it shifts an empty statement ';' and IF), or a new
    # declaration (END_VAR is acceptable next), or a new top-level item.
    return (
        ("SEMI" in actions and "IF" in actions and "WHILE" in actions)
        or ("END_VAR" in actions and "IDENT" in actions)
        or ("FUNCTION_BLOCK" in actions and "PROGRAM" in actions)
    )


def parse_source(text: str, filename: str, diagnostics: DiagnosticBag) -> A.CompilationUnit:
    """Parse one source text. Problems go into ``diagnostics``; a (possibly partial) unit is returned."""
    scanner = SourceScanner(text, filename, diagnostics)
    context = BuildContext(filename, diagnostics, scanner)
    recovery = _Recovery(scanner, diagnostics)
    CURRENT_SCANNER.append(scanner)
    ASTBuilder.contexts.append(context)
    try:
        result = _lark().parse(text, on_error=recovery)
    except UnexpectedCharacters as exc:  # pragma: no cover - the custom lexer never raises this
        diagnostics.error("E0004", f"invalid character {exc.char!r}", Pos(filename, exc.line, exc.column))
        result = None
    except UnexpectedInput:
        result = None
    finally:
        CURRENT_SCANNER.pop()
        ASTBuilder.contexts.pop()
    if isinstance(result, A.CompilationUnit):
        context.attach_pragmas(result)
        return result
    return context.partial_unit()
