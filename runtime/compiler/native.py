"""Optional native build of a compiled program: its generated Python, with each generated class made a
Cython ``cdef class`` whose REAL/LREAL fields are C doubles and BOOL fields C ints, compiled to a C
extension with gcc and loaded in place of the interpreted classes.

The generated code is the same code the interpreter runs; only field storage and a few locals get C
types, chosen so that nothing observable changes: C double arithmetic is IEEE binary64 like Python's
float, integers stay Python integers (no C overflow), loop indices are C integers only where the loop
runs over an array's indices. Faults still name the ST file and line (``line_table``). Builds are cached
by the hash of their source; a program whose build fails runs interpreted, with the reason given.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import PlcrunError
from ..state.faults import register_line_table
from ..state.program import CompiledProgram
from ..state.support import NAMESPACE

BUILD_TIMEOUT_S = 600  # one program's Cython + gcc run; a larger program is refused, not waited for
_FLOAT_LITERAL = re.compile(r"-?\(?-?[0-9]+\.[0-9]*(e[+-]?[0-9]+)?\)?|-?\(?-?[0-9]+e[+-]?[0-9]+\)?")
_CLASS = re.compile(r"^class (\w+):$")
_FIELD_INIT = re.compile(r"^        self\.(\w+) = (.*)$")
_ARRAY_OF = re.compile(r"^        self\.(\w+) = \[(\w+)\(\) for ")
_CACHED_FIELD = re.compile(r"^\s+(_m\d+|_fb\d+) = self\.(\w+)$")
_COUNTED_LOOP = re.compile(r"^\s+for (_k\d+) in _range\([^,()]*\):$")
_ELEMENT = re.compile(r"^\s+(_e\d+) = (_m\d+)\[")
_ASSIGNED = re.compile(r"^\s+(\w+) [-+*/%&|^]?= |\bfor (\w+) in |\b(\w+) := ")
_LOCAL_INIT = re.compile(r"^\s+(v_\w+|r_|_\w+) = (\S+)$")
_F32_STORE = re.compile(r"^(\s+)_F32\[0\] = (.*)$")
_F32_READ = re.compile(r"^(\s+)(\S+) = _F32\[0\]$")
_LOADED: dict[str, ModuleType] = {}


class NativeBuildError(PlcrunError):
    """The native build could not be made (no Cython, no C compiler, or a failed build)."""


class NativeModule:
    """A loaded native build of one program, owned by at most one live program state at a time (its
    module globals hold that state's scan context)."""

    def __init__(self, module: ModuleType, filename: str) -> None:
        self.module = module
        self.filename = filename
        self._owner: weakref.ref[Any] | None = None

    def claim(self, state: Any) -> bool:
        """Give the module to ``state`` unless another live state holds it."""
        if self._owner is not None and self._owner() is not None:
            return False
        self._owner = weakref.ref(state)
        return True


def typed_source(source: str, table: list[tuple[str, int]]) -> tuple[list[str], list[tuple[str, int]]]:
    """The generated ``source`` as Cython: lines and, for each, the ST file and line it came from."""
    lines = source.split("\n")
    places = table + [("", 0)] * (len(lines) - len(table))
    classes = {m.group(1) for line in lines if (m := _CLASS.match(line))}
    elements = {
        m.group(1): m.group(2) for line in lines if (m := _ARRAY_OF.match(line)) and m.group(2) in classes
    }
    out: list[str] = []
    where: list[tuple[str, int]] = []
    i = 0
    while i < len(lines):
        head = _CLASS.match(lines[i])
        if not head:
            out.append(lines[i])
            where.append(places[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and (lines[end].startswith(" ") or not lines[end]):
            end += 1
        fields = _field_types(lines[i + 1 : end], classes)
        out.append(f"cdef class {head.group(1)}:")
        where.append(places[i])
        for name, kind in fields.items():
            out.append(f"    cdef public {kind} {name}")
            where.append(places[i])
        k = i + 1
        while k < end:
            line = lines[k]
            if line.strip().startswith("__slots__"):
                k += 1
                continue
            if line.startswith("    def _body(self):"):
                stop = next((n for n in range(k + 1, end) if lines[n].startswith("    def ")), end)
                body = lines[k + 1 : stop]
                out.append(line if any("lambda" in s for s in body) else "    cpdef _body(self):")
                where.append(places[k])
                for local, kind in (_leading_locals(body) | _local_types(body, fields, elements)).items():
                    out.append(f"        cdef {kind} {local}")
                    where.append(places[k])
                k += 1
                continue
            out.append(line)
            where.append(places[k])
            k += 1
        i = end
    _functions(out, where)
    _f32_casts(out)
    return [re.sub(r"\b_range\(", "range(", line) for line in out], where


def _functions(out: list[str], where: list[tuple[str, int]]) -> None:
    """Module-level functions: ``cpdef`` (C calls inside the module) unless they hold a closure, and
    their REAL/BOOL locals typed; in place."""
    k = 0
    while k < len(out):
        if out[k].startswith("def F_"):
            stop = next(
                (n for n in range(k + 1, len(out)) if out[n] and not out[n].startswith(" ")), len(out)
            )
            body = out[k + 1 : stop]
            if not any("lambda" in line for line in body):
                out[k] = "cpdef " + out[k][len("def ") :]
            declared = [f"    cdef {kind} {local}" for local, kind in _leading_locals(body).items()]
            out[k + 1 : k + 1] = declared
            where[k + 1 : k + 1] = [where[k]] * len(declared)
            k = stop + len(declared)
            continue
        k += 1


def _leading_locals(body: list[str]) -> dict[str, str]:
    """The REAL/LREAL (C double) and BOOL (bint) locals a body starts by initialising: the generated
    code gives every local its type's initial value first (0.0, False, ...), then runs the body."""
    found: dict[str, str] = {}
    for line in body:
        init = _LOCAL_INIT.match(line)
        if not init:
            break
        if _FLOAT_LITERAL.fullmatch(init.group(2)):
            found[init.group(1)] = "double"
        elif init.group(2) in ("True", "False"):
            found[init.group(1)] = "bint"
    return found


def _f32_casts(out: list[str]) -> None:
    """``_F32[0] = e`` then ``x = _F32[0]`` (a REAL store through the state's float32 cell) becomes
    one C cast, ``x = <double><float>(e)``: the same conversion the cell makes (a double rounded to
    binary32 by the C cast, +-inf beyond its range), without two Python subscripts; in place."""
    for k in range(len(out) - 1):
        store = _F32_STORE.match(out[k])
        if store and (read := _F32_READ.match(out[k + 1])) and read.group(1) == store.group(1):
            out[k] = f"{store.group(1)}{read.group(2)} = <double><float>({store.group(2)})"
            out[k + 1] = f"{store.group(1)}pass"


def _field_types(block: list[str], classes: set[str]) -> dict[str, str]:
    """Each slot of a generated class and its Cython type, from the value ``__init__`` gives it."""
    slots: list[str] = []
    kinds: dict[str, str] = {}
    for line in block:
        stripped = line.strip()
        if stripped.startswith("__slots__ = ("):
            slots = re.findall(r"'(\w+)'", stripped)
        assigned = _FIELD_INIT.match(line)
        if assigned and assigned.group(1) not in kinds:
            value = assigned.group(2)
            if _FLOAT_LITERAL.fullmatch(value):
                kinds[assigned.group(1)] = "double"
            elif value in ("True", "False"):
                kinds[assigned.group(1)] = "bint"
            elif value.endswith("()") and value[:-2] in classes:
                kinds[assigned.group(1)] = value[:-2]
            else:
                kinds[assigned.group(1)] = "object"
    return {name: kinds.get(name, "object") for name in slots}


def _local_types(body: list[str], fields: dict[str, str], elements: dict[str, str]) -> dict[str, str]:
    """C types for a body's counted loop indices (``for _kN in range(n)``: n is at most an array's
    length), array elements (``_eN = _mN[...]`` where ``_mN = self.v_x`` is an array of a known
    class) and cached block instances (``_fbN = self.v_x``); a local given two types is left untyped.
    Nothing else is typed: the module is built with ``infer_types=False``, as Cython would otherwise
    give a temporary that holds an INT here and a REAL there (``_v := 9`` ... ``_v := x * 2.0``) the
    type double, and 9 // 2 would become 4.0."""
    found: dict[str, set[str]] = {}
    typed_at: dict[str, int] = {}  # how many of a local's assignments gave it its type
    assigned: dict[str, int] = {}  # how many assignments it has in all
    array_of: dict[str, str] = {}
    for line in body:
        for groups in _ASSIGNED.findall(line):
            name = next(group for group in groups if group)
            assigned[name] = assigned.get(name, 0) + 1
        cached = _CACHED_FIELD.match(line)
        if cached and cached.group(2) in elements:
            array_of[cached.group(1)] = elements[cached.group(2)]
        if cached and fields.get(cached.group(2), "object") not in ("object", "double", "bint"):
            found.setdefault(cached.group(1), set()).add(fields[cached.group(2)])  # a block or structure
            typed_at[cached.group(1)] = typed_at.get(cached.group(1), 0) + 1
        counted = _COUNTED_LOOP.match(line)
        if counted:
            found.setdefault(counted.group(1), set()).add("Py_ssize_t")
            typed_at[counted.group(1)] = typed_at.get(counted.group(1), 0) + 1
        element = _ELEMENT.match(line)
        if element and element.group(2) in array_of and assigned.get(element.group(2)) == 1:
            found.setdefault(element.group(1), set()).add(array_of[element.group(2)])
            typed_at[element.group(1)] = typed_at.get(element.group(1), 0) + 1
    return {
        local: next(iter(kinds))
        for local, kinds in found.items()
        if len(kinds) == 1 and typed_at[local] == assigned.get(local)  # no other assignment
    }


def _header() -> list[str]:
    names = sorted(NAMESPACE)
    return (
        ["# cython: language_level=3, binding=False, infer_types=False"]
        + ["from plcrun.state.support import NAMESPACE as _NAMESPACE_"]
        + [f"{name} = _NAMESPACE_[{name!r}]" for name in names]
        + ["_rt = _G = _NS = _F32 = None"]
    )


def cache_dir() -> Path:
    """Where builds are kept: ``$PLCRUN_NATIVE_CACHE``, else ``~/.cache/plcrun/native``."""
    configured = os.environ.get("PLCRUN_NATIVE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "plcrun" / "native"


OPTIMISE_FLAGS = ("-O0", "-O1", "-O2", "-O3", "-Os")


def build(program: CompiledProgram, *, optimise: str | None = None, typed: bool = True) -> NativeModule:
    """Build (or take from the cache) and load the native module of ``program``; ``optimise`` is
    gcc's flag, default ``$PLCRUN_NATIVE_OPTIMISE`` or -O2. ``typed=False`` compiles the generated
    source without any C type (bench/native_probe.py measures what the types bring)."""
    optimise = optimise or os.environ.get("PLCRUN_NATIVE_OPTIMISE") or "-O2"
    if optimise not in OPTIMISE_FLAGS:
        raise NativeBuildError(f"PLCRUN_NATIVE_OPTIMISE={optimise!r}: use one of {', '.join(OPTIMISE_FLAGS)}")
    if typed:
        body, where = typed_source(program.python_source, program.line_table)
    else:
        body, where = program.python_source.split("\n"), list(program.line_table)
    header = _header()
    lines = header + body
    table = [("", 0)] * len(header) + where
    try:
        cython_version = importlib.metadata.version("Cython")
    except importlib.metadata.PackageNotFoundError:
        raise NativeBuildError("Cython is not installed (pip install 'plcrun[native]')") from None
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    include = Path(sysconfig.get_paths()["include"])
    if compiler is None:
        raise NativeBuildError(f"no C compiler found ({os.environ.get('CC', 'gcc')})")
    if not (include / "Python.h").exists():
        raise NativeBuildError(f"the Python headers are missing ({include}/Python.h)")
    text = "\n".join(lines) + "\n"
    key = hashlib.sha256(f"{cython_version}|{sys.version}|{optimise}|{text}".encode()).hexdigest()[:20]
    name = f"plcrun_native_{key}"
    folder = cache_dir()
    library = folder / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    source_path = folder / (name + ".pyx")
    if not library.exists():
        _compile(text, name, folder, library, compiler, include, optimise)
    register_line_table(str(source_path), table)
    register_line_table(source_path.name, table)
    module = _LOADED.get(name) or _load(name, library)
    return NativeModule(module, str(source_path))


def _compile(
    text: str, name: str, folder: Path, library: Path, cc: str, include: Path, optimise: str
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        work = Path(tmp)
        (work / (name + ".pyx")).write_text(text)
        steps = [
            [sys.executable, "-m", "cython", "-3", name + ".pyx", "-o", name + ".c"],
            [
                cc,
                optimise,
                "-shared",
                "-fPIC",
                "-fno-strict-aliasing",
                "-I",
                str(include),
                name + ".c",
                "-o",
                library.name,
            ],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, cwd=work, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise NativeBuildError(f"{Path(step[0]).name} took longer than {BUILD_TIMEOUT_S} s") from None
            if done.returncode:
                tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
                raise NativeBuildError(f"{Path(step[0]).name} failed: " + " / ".join(tail))
        os.replace(work / (name + ".pyx"), folder / (name + ".pyx"))
        os.replace(work / library.name, library)  # last: a library in the cache is complete


def _load(name: str, library: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(library))
    spec = importlib.util.spec_from_file_location(name, str(library), loader=loader)
    if spec is None:
        raise NativeBuildError(f"cannot load {library}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    _LOADED[name] = module
    return module


def enable_native(program: CompiledProgram, *, optimise: str | None = None) -> str | None:
    """Make ``program``'s next state run natively; the reason when it cannot (it then runs interpreted)."""
    try:
        program.native = build(program, optimise=optimise)
    except NativeBuildError as error:
        return str(error)
    except OSError as error:
        return f"native build failed: {error}"
    return None
