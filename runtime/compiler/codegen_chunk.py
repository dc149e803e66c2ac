"""Generated Python source for one POU or type (``GeneratedChunk``) and the indenting line writer
(``Emitter``) that fills it, each line remembering the ST line it came from."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from types import CodeType


@dataclass
class GeneratedChunk:
    """Python source for one POU or type, with the ST line of every generated line."""

    name: str
    filename: str
    lines: list[tuple[str, int]] = field(default_factory=list)
    real_temps: set[str] = field(default_factory=set)  # temporaries holding only floats (native build)

    @property
    def source(self) -> str:
        return "\n".join(text for text, _ in self.lines) + "\n"

    def compile(self) -> CodeType:
        tree = ast.parse(self.source, filename=self.filename)
        st_lines = [line for _, line in self.lines]
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt | ast.expr | ast.excepthandler | ast.arg | ast.keyword):
                first = node.lineno
                last = node.end_lineno or first
                start = st_lines[first - 1] if 0 < first <= len(st_lines) else 0
                end = st_lines[last - 1] if 0 < last <= len(st_lines) else start
                node.lineno = start
                node.end_lineno = max(start, end)
        return compile(tree, self.filename, "exec")


class Emitter:
    def __init__(self, chunk: GeneratedChunk) -> None:
        self.chunk = chunk
        self.depth = 0
        self.line = 0

    def __call__(self, text: str, line: int | None = None) -> None:
        self.chunk.lines.append(("    " * self.depth + text, self.line if line is None else line))
