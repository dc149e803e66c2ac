"""What a piece of generated Python code is, read from its text: a literal, a plain read that can be
evaluated again with the same value, a value that cannot change, a call of an ST function. The
expression and call generators (codegen_expr, codegen_calls) and the loop generator decide by these
whether code may be written twice, read again or must go to a local first.
"""

from __future__ import annotations

import re

LITERAL = re.compile(r"\(?-?\d[\d.e+-]*\)?|True|False")
CALLS = re.compile(r"\bF_\w+\(")  # a call of an ST function (which may write through VAR_IN_OUT)
INT_CODE = re.compile(r"-?\d+")
_PURE = re.compile(r"\(?-?(?:[A-Za-z_][\w.]*|\d[\d.e+-]*|_[A-Za-z]\w*\[(?:_[A-Za-z]\w*|\d+)\])\)?")


# variables, literals and + - on them: evaluating it again gives the same value, without a call
ARITHMETIC = re.compile(r"[\w.() +-]+")


def is_pure(code: str) -> bool:
    """A literal, a plain variable read, or an element of a loop's local list at a loop offset
    (``_m4[_k2]``, only generated where the offset is proved in bounds): evaluating it twice gives
    the same value and cannot fault."""
    return _PURE.fullmatch(code) is not None


def is_atom(code: str) -> bool:
    """Code whose value cannot change between now and later: a literal or a temporary."""
    return (code.isidentifier() and code.startswith("_")) or code.lstrip("-").replace(".", "", 1).isdigit()
