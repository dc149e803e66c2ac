"""Hand-written lexer for Structured Text, plugged into Lark's LALR parser as a custom lexer.

Written by hand because ST needs what a regular-expression lexer cannot give: nested ``(* *)``
comments, case-insensitive keywords, typed literals (``INT#5``, ``BYTE#16#81``, ``T#1h2m``), pragmas
that are recorded rather than parsed, skipping of unsupported blocks (METHOD, SFC steps, ...) with a
diagnostic, and a little context (from the parser state) to tell a CASE label from a statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lark import Token
from lark.lexer import Lexer, LexerState

from .diagnostics import DiagnosticBag, Pos

KEYWORDS = frozenset(
    """
    PROGRAM END_PROGRAM FUNCTION END_FUNCTION FUNCTION_BLOCK END_FUNCTION_BLOCK
    VAR VAR_INPUT VAR_OUTPUT VAR_IN_OUT VAR_TEMP VAR_GLOBAL VAR_EXTERNAL VAR_CONFIG VAR_ACCESS END_VAR
    CONSTANT RETAIN NON_RETAIN PERSISTENT AT TYPE END_TYPE STRUCT END_STRUCT ARRAY OF STRING WSTRING
    IF THEN ELSIF ELSE END_IF CASE END_CASE FOR TO BY DO END_FOR WHILE END_WHILE REPEAT UNTIL END_REPEAT
    EXIT CONTINUE RETURN NOT AND OR XOR MOD TRUE FALSE
    CONFIGURATION END_CONFIGURATION RESOURCE END_RESOURCE TASK
    POINTER REF_TO REFERENCE EXTENDS IMPLEMENTS JMP
    """.split()
)

# Words that are keywords only where the grammar expects them (elsewhere they are identifiers).
CONTEXTUAL_KEYWORDS = frozenset({"ON", "WITH"})

# Blocks skipped as a whole with an "unsupported" diagnostic: opening word -> closing word.
UNSUPPORTED_BLOCKS = {
    "METHOD": ("END_METHOD", "METHOD (object-oriented extensions)"),
    "INTERFACE": ("END_INTERFACE", "INTERFACE (object-oriented extensions)"),
    "PROPERTY": ("END_PROPERTY", "PROPERTY (object-oriented extensions)"),
    "ACTION": ("END_ACTION", "ACTION"),
    "INITIAL_STEP": ("END_STEP", "Sequential Function Chart (SFC) steps"),
    "STEP": ("END_STEP", "Sequential Function Chart (SFC) steps"),
    "TRANSITION": ("END_TRANSITION", "Sequential Function Chart (SFC) transitions"),
}

OPERATORS = {
    ":=": "ASSIGN",
    "=>": "OUTPUT_ASSIGN",
    "<=": "LE",
    ">=": "GE",
    "<>": "NE",
    "**": "POW",
    "..": "DOTDOT",
    "+": "PLUS",
    "-": "MINUS",
    "*": "STAR",
    "/": "SLASH",
    "=": "EQ",
    "<": "LT",
    ">": "GT",
    "&": "AMP",
    "(": "LPAR",
    ")": "RPAR",
    "[": "LSQB",
    "]": "RSQB",
    ",": "COMMA",
    ";": "SEMI",
    ":": "COLON",
    ".": "DOT",
    "^": "CARET",
}

TERMINALS = sorted(
    set(KEYWORDS)
    | CONTEXTUAL_KEYWORDS
    | set(OPERATORS.values())
    | {
        "IDENT",
        "CASE_LABEL",
        "INTEGER",
        "BASED_INT",
        "REAL_LIT",
        "TIME_LIT",
        "DATE_LIT",
        "TOD_LIT",
        "DT_LIT",
        "STRING_LIT",
        "WSTRING_LIT",
        "TYPED_PREFIX",
        "DIRECT_ADDR",
        "UNSUPPORTED_BLOCK",
        "BIT_INDEX",
    }
)

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v\n]+)
  | (?P<linecomment>//[^\n]*)
  | (?P<comment>\(\*)
  | (?P<ccomment>/\*)
  | (?P<pragma>\{)
  | (?P<dt>(?:DATE_AND_TIME|LDATE_AND_TIME|LDT|DT)\#[0-9]+-[0-9]+-[0-9]+-[0-9]+:[0-9]+(?::[0-9]+(?:\.[0-9]+)?)?)
  | (?P<tod>(?:TIME_OF_DAY|LTIME_OF_DAY|LTOD|TOD)\#[0-9]+:[0-9]+(?::[0-9]+(?:\.[0-9]+)?)?)
  | (?P<date>(?:DATE|LDATE|LD|D)\#[0-9]+-[0-9]+-[0-9]+)
  | (?P<time>(?:LTIME|TIME|LT|T)\#[-+]?[0-9A-Za-z_.]*)
  | (?P<based>(?:2|8|16)\#[0-9A-Fa-f_]*)
  | (?P<real>[0-9][0-9_]*\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+)
  | (?P<int>[0-9][0-9_]*)
  | (?P<typed>[A-Za-z_][A-Za-z0-9_]*\#)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<direct>%[IQM][XBWDL]?[0-9]+(?:\.[0-9]+)*|%[IQM]\*)
  | (?P<bitref>%X[0-9]+)
  | (?P<string>')
  | (?P<wstring>")
  | (?P<op>:=|=>|<=|>=|<>|\*\*|\.\.|[-+*/=<>&()\[\],;:.^])
    """,
    re.VERBOSE | re.IGNORECASE,
)

# IEC 61131-3: a letter, or '_' and a letter or digit, then letters and digits with at most one '_'
# between them (so no '__' and no '_' at the end).
_IEC_IDENTIFIER = re.compile(r"(?:[A-Za-z]|_[A-Za-z0-9])(?:_?[A-Za-z0-9])*\Z")
_COMMENT_MARK_RE = re.compile(r"\(\*|\*\)")
_SPACE = frozenset(" \t\r\f\v\n")
_ATTRIBUTE_RE = re.compile(r"^\s*attribute\s+'([A-Za-z_][A-Za-z0-9_]*)'\s*(?::=\s*'([^']*)')?\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Pragma:
    """A recorded ``{attribute 'name' := 'value'}`` pragma; it applies to the next declaration."""

    pos: Pos
    name: str
    value: str | None
    offset: int


class SourceScanner:
    """Turns one source text into tokens; lexical problems go into ``diagnostics``."""

    def __init__(self, text: str, filename: str, diagnostics: DiagnosticBag) -> None:
        self.text = text
        self.filename = filename
        self.diagnostics = diagnostics
        self.pragmas: list[Pragma] = []
        self.offset = 0  # where scanning resumes (the parser restarts the generator after an error)
        self.skip_to_semicolon = False  # set by error recovery: drop tokens up to the next ';'
        self.quiet_until = -1  # syntax errors before this offset are consequences of a lexical error
        self.previous_token: Token | None = None  # the token before the current one
        self.current_token: Token | None = None
        self._line_starts = [0]
        for match in re.finditer("\n", text):
            self._line_starts.append(match.end())

    def pos_at(self, offset: int) -> Pos:
        line = _bisect_right(self._line_starts, offset)
        return Pos(self.filename, line, offset - self._line_starts[line - 1] + 1)

    def _token(self, kind: str, value: str, start: int, end: int) -> Token:
        p = self.pos_at(start)
        return Token(kind, value, start, p.line, p.col, None, None, end)

    def offset_after_next_semicolon(self, offset: int) -> int:
        found = self.text.find(";", offset)
        return len(self.text) if found < 0 else found + 1

    def tokens(self, parser_state: Any = None) -> Iterator[Token]:
        for token in self._raw_tokens(parser_state):
            if self.skip_to_semicolon:
                if token.type == "SEMI":
                    self.skip_to_semicolon = False
                    continue
                if token.type not in _RESYNC_TOKENS:
                    continue
                self.skip_to_semicolon = False
            self.previous_token, self.current_token = self.current_token, token
            yield token

    def _raw_tokens(self, parser_state: Any) -> Iterator[Token]:
        text = self.text
        n = len(text)
        i = self.offset
        match_at = _TOKEN_RE.match
        while i < n:
            m = match_at(text, i)
            if m is None:
                self.diagnostics.error(
                    "E0004",
                    f"invalid character {text[i]!r}",
                    self.pos_at(i),
                    "remove it or put it in a comment",
                )
                i += 1
                self.offset = i
                self.quiet_until = self.offset_after_next_semicolon(i)
                continue
            kind = m.lastgroup
            value = m.group()
            end = m.end()
            if kind == "ws" or kind == "linecomment":
                i = end
                self.offset = i
                continue
            if kind == "comment":
                i = self._skip_nested_comment(i)
                self.offset = i
                continue
            if kind == "ccomment":
                close = text.find("*/", i + 2)
                if close < 0:
                    self.diagnostics.error("E0002", "comment '/*' is never closed", self.pos_at(i), length=2)
                    self.offset = n
                    return
                i = close + 2
                self.offset = i
                continue
            if kind == "pragma":
                i = self._pragma(i)
                self.offset = i
                continue
            if kind == "string" or kind == "wstring":
                tok, i = self._string(i, value)
                self.offset = i
                if tok is not None:
                    yield tok
                continue
            if kind == "ident":
                upper = value.upper()
                self.offset = end
                if upper in KEYWORDS:
                    yield self._token(upper, value, i, end)
                elif upper in UNSUPPORTED_BLOCKS and self._starts_unsupported_block(upper, end):
                    skip_to = self._skip_block(i, upper)
                    self.offset = skip_to
                    yield self._token("UNSUPPORTED_BLOCK", upper, i, end)
                    i = skip_to
                    continue
                elif upper in CONTEXTUAL_KEYWORDS and _accepts(parser_state, upper):
                    yield self._token(upper, value, i, end)
                else:
                    if "_" in value and not _IEC_IDENTIFIER.match(value):
                        self._invalid_identifier(value, i)
                    if _accepts(parser_state, "CASE_LABEL") and self._looks_like_case_label(end):
                        yield self._token("CASE_LABEL", value, i, end)
                    else:
                        yield self._token("IDENT", value, i, end)
                i = end
                continue
            self.offset = end
            if kind == "op":
                yield self._token(OPERATORS[value], value, i, end)
                i = end
                continue
            if kind in ("time", "based") and value.endswith("#"):
                self.diagnostics.error("E0005", f"literal {value!r} has no value after '#'", self.pos_at(i))
            yield self._token(_LITERAL_KINDS[kind or ""], value, i, end)
            i = end

    def _invalid_identifier(self, value: str, start: int) -> None:
        where = "ends with '_'" if value.endswith("_") else "has two underscores in a row"
        fixed = re.sub("_+", "_", value).strip("_") or "x"
        self.diagnostics.error(
            "E0010",
            f"'{value}' is not an IEC 61131-3 identifier: it {where}",
            self.pos_at(start),
            f"use single underscores between letters or digits, e.g. '{fixed}'",
            len(value),
        )

    def _looks_like_case_label(self, end: int) -> bool:
        """Is the identifier ending at ``end`` followed (past blanks and comments) by ':', ',' or
        '..' but not ':='? One forward pass: no backtracking, whatever the blanks."""
        text = self.text
        n = len(text)
        i = end
        while i < n:
            c = text[i]
            if c in _SPACE:
                i += 1
            elif text.startswith("(*", i):
                i = self._nested_comment_end(i)
                if i < 0:
                    return False
            elif text.startswith("//", i):
                newline = text.find("\n", i)
                i = n if newline < 0 else newline
            else:
                break
        if text.startswith(":=", i):
            return False
        return text.startswith((":", ",", ".."), i)

    def _starts_unsupported_block(self, word: str, end: int) -> bool:
        # STEP/TRANSITION are only SFC when they look like it ("STEP s1:", "TRANSITION FROM"),
        # so that 'step' stays usable as a variable name.
        rest = self.text[end : end + 200]
        if word in ("STEP", "INITIAL_STEP"):
            return re.match(r"\s+[A-Za-z_][A-Za-z0-9_]*\s*:(?!=)", rest) is not None
        if word == "TRANSITION":
            return re.match(r"\s+(?:[A-Za-z_][A-Za-z0-9_]*\s+)?FROM\b", rest, re.I) is not None
        if word == "ACTION":
            return re.match(r"\s+[A-Za-z_][A-Za-z0-9_]*\s*(?::|\()", rest) is not None
        return re.match(r"\s+[A-Za-z_]", rest) is not None

    def _skip_block(self, start: int, word: str) -> int:
        closing, what = UNSUPPORTED_BLOCKS[word]
        self.diagnostics.error(
            "E0007",
            f"{what} is not supported",
            self.pos_at(start),
            "plcrun runs IEC 61131-3 Structured Text without OOP, actions or SFC; "
            "move the logic into a FUNCTION_BLOCK",
            length=len(word),
        )
        m = re.compile(r"\b" + closing + r"\b", re.I).search(self.text, start)
        if m is None:
            self.diagnostics.error("E0001", f"{word} is never closed by {closing}", self.pos_at(start))
            return len(self.text)
        return m.end()

    def _nested_comment_end(self, start: int) -> int:
        """Offset after the ``*)`` closing the comment opened at ``start`` (comments nest), or -1.

        One left-to-right pass over the comment marks: linear in the comment's length."""
        depth = 0
        for mark in _COMMENT_MARK_RE.finditer(self.text, start):
            if mark.group() == "(*":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return mark.end()
        return -1

    def _skip_nested_comment(self, start: int) -> int:
        end = self._nested_comment_end(start)
        if end >= 0:
            return end
        text = self.text
        hint = "close it with '*)'"
        inner = self._innermost_unclosed(start)
        if inner is not None:
            p = self.pos_at(inner)
            hint = (
                f"comments nest in ST: the '(*' at line {p.line}, column {p.col} "
                "opens a comment inside this one that is never closed"
            )
        self.diagnostics.error("E0002", "comment '(*' is never closed", self.pos_at(start), hint, 2)
        return len(text)

    def _innermost_unclosed(self, start: int) -> int | None:
        """The last still-open nested ``(*`` of an unclosed comment (None when only the outer one is)."""
        openers: list[int] = []
        for mark in _COMMENT_MARK_RE.finditer(self.text, start):
            if mark.group() == "(*":
                openers.append(mark.start())
            elif openers:
                openers.pop()
        return openers[-1] if len(openers) > 1 else None

    def _pragma(self, start: int) -> int:
        text = self.text
        if text.startswith("{{", start):
            close = text.find("}}", start + 2)
            end = len(text) if close < 0 else close + 2
            self.diagnostics.error(
                "E0006",
                "inline C code is not supported",
                self.pos_at(start),
                "plcrun compiles Structured Text only; rewrite this part in ST",
                2,
            )
            return end
        close = text.find("}", start + 1)
        if close < 0:
            self.diagnostics.error("E0002", "pragma '{' is never closed", self.pos_at(start))
            return len(text)
        body = text[start + 1 : close]
        pos = self.pos_at(start)
        attribute = _ATTRIBUTE_RE.match(body)
        if attribute is not None:
            self.pragmas.append(Pragma(pos, attribute.group(1).lower(), attribute.group(2), start))
        elif ";" in body:
            self.diagnostics.error(
                "E0006",
                "inline C code is not supported",
                pos,
                "plcrun compiles Structured Text only; rewrite this part in ST",
            )
        else:
            self.diagnostics.warning("W0001", f"pragma {{{body.strip()[:40]}}} skipped", pos)
        return close + 1

    def _string(self, start: int, quote: str) -> tuple[Token | None, int]:
        text = self.text
        i = start + 1
        n = len(text)
        while i < n:
            c = text[i]
            if c == quote:
                raw = text[start : i + 1]
                kind = "STRING_LIT" if quote == "'" else "WSTRING_LIT"
                return self._token(kind, raw, start, i + 1), i + 1
            if c == "\n":
                break
            i += 2 if c == "$" else 1
        self.diagnostics.error(
            "E0003", "string literal is never closed", self.pos_at(start), f"end it with {quote}"
        )
        newline = text.find("\n", start)
        end = n if newline < 0 else newline
        self.quiet_until = self.offset_after_next_semicolon(end)
        kind = "STRING_LIT" if quote == "'" else "WSTRING_LIT"
        return self._token(kind, quote + quote, start, end), end


# Tokens that end error skipping without being dropped: block ends and section starts.
_RESYNC_TOKENS = frozenset(
    """END_IF ELSIF ELSE END_CASE END_FOR END_WHILE UNTIL END_REPEAT END_VAR END_PROGRAM
    END_FUNCTION END_FUNCTION_BLOCK END_TYPE END_STRUCT END_CONFIGURATION END_RESOURCE
    VAR VAR_INPUT VAR_OUTPUT VAR_IN_OUT VAR_TEMP VAR_GLOBAL VAR_EXTERNAL PROGRAM FUNCTION
    FUNCTION_BLOCK TYPE CONFIGURATION""".split()
)

_LITERAL_KINDS = {
    "dt": "DT_LIT",
    "tod": "TOD_LIT",
    "date": "DATE_LIT",
    "time": "TIME_LIT",
    "based": "BASED_INT",
    "real": "REAL_LIT",
    "int": "INTEGER",
    "typed": "TYPED_PREFIX",
    "direct": "DIRECT_ADDR",
    "bitref": "BIT_INDEX",
}


def _accepts(parser_state: Any, terminal: str) -> bool:
    if parser_state is None:
        return False
    states = parser_state.parse_conf.states
    return terminal in states[parser_state.position]


def _bisect_right(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < values[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


class STLexer(Lexer):
    """Adapter that lets Lark drive a ``SourceScanner`` (set per parse through ``lexer_state``)."""

    __future_interface__ = 1

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        scanner = CURRENT_SCANNER[-1]
        return scanner.tokens(parser_state)


# Lark builds the lexer once per parser; the scanner of the text being parsed is pushed here.
CURRENT_SCANNER: list[SourceScanner] = []
