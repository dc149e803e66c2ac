"""The compiler's entry points: parse + check + generate + compile, with the ST library included.

``compile_file`` / ``compile_source`` return a ``CompiledProgram`` or raise ``CompileError``;
``check_file`` only reports diagnostics. The ST library (``stdlib/*.st``: the standard function
blocks and the grid library) is parsed once per process and compiled with every program; only the
POUs a program uses generate code.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterable
from pathlib import Path

from ..state.program import CompiledProgram
from . import st_ast as A
from . import st_types as T
from .check import check_program
from .codegen import PouGenerator, generate_globals, generate_struct
from .codegen_chunk import GeneratedChunk
from .codegen_values import class_name
from .declarations import Declarations
from .diagnostics import CompileError, Diagnostic, DiagnosticBag, Pos, Severity
from .limits import check_nesting, recursion_room
from .parser import parse_source


@functools.lru_cache(maxsize=1)
def library_sources() -> tuple[tuple[str, str], ...]:
    """(file name, text) of every ST file of the library, in a stable order."""
    root = importlib.resources.files("plcrun.st_stdlib")
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".st"):
            out.append((f"stdlib/{entry.name}", entry.read_text("utf-8")))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _library_units() -> tuple[tuple[A.CompilationUnit, ...], tuple[Diagnostic, ...]]:
    diag = DiagnosticBag()
    units = tuple(parse_source(text, name, diag) for name, text in library_sources())
    return units, tuple(diag.items)


def _analyse(text: str, filename: str, use_library: bool) -> tuple[DiagnosticBag, object, dict[str, str]]:
    diag = DiagnosticBag()
    sources = {filename: text}
    unit = parse_source(text, filename, diag)
    if not check_nesting(unit, diag):
        return diag, None, sources
    units = [unit]
    library_files: set[str] = set()
    if use_library:
        lib_units, lib_diags = _library_units()
        diag.items.extend(d for d in lib_diags if d.is_error)
        # checking a library file itself: it is the user's file, not a second copy of the library's
        same = {name for name, lib_text in library_sources() if lib_text == text}
        units.extend(u for u in lib_units if u.filename not in same)
        library_files = {u.filename for u in lib_units} - same
        sources.update(dict(library_sources()))
    if diag.has_errors and not unit.pous and not unit.configurations:
        return diag, None, sources
    model = check_program(units, library_files, filename, diag)
    model.sources = sources
    return diag, model, sources


def check_source(
    text: str, filename: str, use_library: bool = True
) -> tuple[list[Diagnostic], dict[str, str]]:
    """Diagnostics of one source text (errors and warnings), sorted by position."""
    with recursion_room():
        diag, _, sources = _analyse(text, filename, use_library)
    return diag.sorted(), sources


def compile_source(text: str, filename: str, use_library: bool = True) -> CompiledProgram:
    with recursion_room():
        return _compile(text, filename, use_library)


def _compile(text: str, filename: str, use_library: bool) -> CompiledProgram:
    diag, model, sources = _analyse(text, filename, use_library)
    if diag.has_errors or model is None:
        raise CompileError(diag.sorted(), sources)
    from .model import ProgramModel

    assert isinstance(model, ProgramModel)
    decls = model.decls
    assert isinstance(decls, Declarations)
    chunks: list[GeneratedChunk] = []
    real_temps: dict[str, set[str]] = {}
    for t in _struct_types(model.types.values()):
        chunks.append(generate_struct(decls, t, filename, getattr(t, "line", 1)))
    for pou in model.used_pous():
        chunk = GeneratedChunk(pou.name, pou.decl.pos.file)
        PouGenerator(decls, pou, chunk).generate()
        chunks.append(chunk)
        if chunk.real_temps:
            real_temps[class_name(pou)] = chunk.real_temps
    chunks.append(generate_globals(decls, filename))
    code = []
    for chunk in chunks:
        try:
            code.append(chunk.compile())
        except SyntaxError as error:  # a code generator bug: report it against the POU, not as a crash
            raise CompileError(
                [
                    Diagnostic(
                        Severity.ERROR,
                        "E0007",
                        f"internal compiler error while generating '{chunk.name}': {error.msg}",
                        Pos(chunk.filename, 1, 1),
                    )
                ],
                sources,
            ) from None
    lines: list[str] = []
    places: list[tuple[str, int]] = []  # the ST file and line of each line of python_source
    for chunk in chunks:  # a header, the chunk's lines, a blank line
        lines += [f"# ---- {chunk.name} ({chunk.filename})", *(text for text, _ in chunk.lines), ""]
        places += [
            (chunk.filename, 0),
            *((chunk.filename, line) for _, line in chunk.lines),
            (chunk.filename, 0),
        ]
    program = CompiledProgram(model, code, "\n".join(lines), diag.sorted())
    program.line_table = places
    program.real_temps = real_temps
    return program


def _struct_types(types: Iterable[T.Type]) -> list[T.StructType]:
    seen: list[T.StructType] = []

    def visit(t: T.Type) -> None:
        if isinstance(t, T.StructType):
            if any(s is t for s in seen):
                return
            for f in t.fields.values():
                visit(f.type)
            seen.append(t)
        elif isinstance(t, T.ArrayType):
            visit(t.element)

    for t in types:
        visit(t)
    return seen


def read_source(path: str | Path) -> str:
    try:
        return Path(path).read_text("utf-8")
    except UnicodeDecodeError:
        return Path(path).read_text("latin-1")


def compile_file(path: str | Path) -> CompiledProgram:
    return compile_source(read_source(path), str(path))


def check_file(path: str | Path) -> tuple[list[Diagnostic], dict[str, str]]:
    return check_source(read_source(path), str(path))
