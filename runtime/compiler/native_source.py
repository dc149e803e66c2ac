"""The native build's source: a program's generated Python rewritten as Cython (``typed_source``).
Each generated class becomes a ``cdef class`` whose REAL/LREAL fields are C doubles and BOOL fields C
ints; a function block's own REAL/BOOL arrays live in C memory (``_Reals``/``_Bools``); loop indices,
hoisted fields, element casts and the code generator's REAL temporaries get C types. Only where nothing
observable changes: docs/native-build.md has the table. Built and loaded by compiler/native.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..state.program import CompiledProgram
from ..state.support import NAMESPACE, ScanContext
from . import st_types as T
from .codegen_values import class_name

_FLOAT_LITERAL = re.compile(r"-?\(?-?[0-9]+\.[0-9]*(e[+-]?[0-9]+)?\)?|-?\(?-?[0-9]+e[+-]?[0-9]+\)?")
_CLASS = re.compile(r"^class (\w+):$")
_FIELD_INIT = re.compile(r"^        self\.(\w+) = (.*)$")
_CACHED_FIELD = re.compile(r"^\s+(_m\d+|_fb\d+) = self\.(\w+)$")
_COUNTED_LOOP = re.compile(r"^(\s+)for (_k\d+) in _range\(([^,()]*)\):$")
_ELEMENT = re.compile(r"^\s+(_e\d+) = (_m\d+)\[")
_ASSIGNED = re.compile(r"^\s+(\w+) [-+*/%&|^]?= |\bfor (\w+) in |\b(\w+) := ")
_LOCAL_INIT = re.compile(r"^\s+(v_\w+|r_|_\w+) = (\S+)$")
# ``if False: x = None`` binds the names a nested helper declares nonlocal; Cython drops a constant
# False branch with its bindings, a module name it cannot fold keeps them (and never runs either)
_NEVER = re.compile(r"^(\s+)if False:")
# the interpreter's helpers called per scan that have a C twin giving the same double: ABS is
# Cython's abs (fabs on a C double, Python's abs on anything else); EXP is libm's exp, which
# math.exp calls (its OverflowError, caught as +inf by the helper, is where exp returns +inf);
# a REAL conversion rounds through the float32 cast every REAL store already makes
_C_HELPERS = {"_abs": "abs", "_exp": "_exp_c", "_f32": "_f32_c"}
_C_HELPER_CALL = re.compile(r"\b(" + "|".join(_C_HELPERS) + r")\(")
_FOR = re.compile(r"^(\s*)for \w+ in .+:$")
# FOR-loop passes between two calls into the interpreter (``_backedge``): as many as WHILE and
# REPEAT run between two calls of the loop watchdog
BACKEDGE_CALL = ScanContext.LOOP_CHUNK
_STRING = re.compile(r"""((?:[rbfu]|rb|br|fr|rf)?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"))""")
_F32_STORE = re.compile(r"^(\s+)_F32\[0\] = (.*)$")
_F32_READ = re.compile(r"^(\s+)(\S+) = _F32\[0\]$")


def typed_source(program: CompiledProgram) -> tuple[list[str], list[tuple[str, int]]]:
    """``program``'s generated source as Cython: lines and, for each, the ST file and line it came from."""
    lines = program.python_source.split("\n")
    table = program.line_table
    places = table + [("", 0)] * (len(lines) - len(table))
    classes = {m.group(1) for line in lines if (m := _CLASS.match(line))}
    element_classes = array_elements(program)
    c_arrays = block_arrays(program)
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
        arrays = c_arrays.get(head.group(1), {})
        elements = {
            field: cls for field, cls in element_classes.get(head.group(1), {}).items() if cls in classes
        }
        out.append(f"cdef class {head.group(1)}:")
        where.append(places[i])
        for name, kind in fields.items():
            declared = (
                _array_field(name, arrays[name]) if name in arrays else [f"    cdef public {kind} {name}"]
            )
            out += declared
            where += [places[i]] * len(declared)
        k = i + 1
        casts: dict[str, str] = {}
        while k < end:
            line = lines[k]
            if line.strip().startswith("__slots__"):
                k += 1
                continue
            if line.startswith("    def _body(self):"):
                stop = next((n for n in range(k + 1, end) if lines[n].startswith("    def ")), end)
                body = lines[k + 1 : stop]
                nested, closure = _closures(body)
                out.append(line if closure else "    cpdef _body(self):")
                where.append(places[k])
                kinds = (
                    {}
                    if nested
                    else _leading_locals(body, set())
                    | _local_types(body, fields, elements, arrays)
                    | _real_temps(body, program.real_temps.get(head.group(1), set()))
                )
                casts = {} if nested else _element_arrays(body, elements)
                for local, kind in kinds.items():
                    out.append(f"        cdef {kind} {local}")
                    where.append(places[k])
                k += 1
                continue
            for name in arrays:  # reads and element stores through the C slot, not the property
                line = _outside_strings_sub(line, rf"\bself\.{name}(\[|$)", rf"self._a_{name}\1")
            for local, cls in casts.items():  # an element's field through its C struct
                line = _outside_strings_sub(line, rf"\b{local}\[(_k\d+)\]\.", rf"(<{cls}?>{local}[\1]).")
            out.append(line)
            where.append(places[k])
            k += 1
        i = end
    _functions(out, where, program)
    _f32_casts(out)
    _counted_loops(out, where)
    _backedges(out, where)
    _c_subscripts(out)
    out = [_outside_strings_sub(line, _C_HELPER_CALL, _c_helper_call) for line in out]
    return [_NEVER.sub(r"\1if _native_never:", line) for line in out], where


def _c_helper_call(call: re.Match[str]) -> str:
    return _C_HELPERS[call.group(1)] + "("


def array_elements(program: CompiledProgram) -> dict[str, dict[str, str]]:
    """For each generated class, its one-dimensional arrays of structures or blocks (VAR_IN_OUT
    ones included): attribute name -> the element's class, from the program's declared types."""
    found: dict[str, dict[str, str]] = {}
    owners: list[tuple[str, dict[str, T.VarInfo]]] = [
        (class_name(pou), pou.variables) for pou in program.model.used_pous()
    ]
    owners += [(class_name(t), t.fields) for t in program.model.types.values() if isinstance(t, T.StructType)]
    for owner, variables in owners:
        for var, element in _one_dimensional_arrays(variables):
            if isinstance(element, T.StructType | T.PouType):
                found.setdefault(owner, {})["v_" + var.name.lower()] = class_name(element)
    return found


def _one_dimensional_arrays(variables: dict[str, T.VarInfo]) -> list[tuple[T.VarInfo, T.Type]]:
    """The one-dimensional arrays among ``variables``, each with its element's underlying type."""
    found = []
    for var in variables.values():
        array = T.underlying(var.type)
        if isinstance(array, T.ArrayType) and len(array.dims) == 1:
            found.append((var, T.underlying(array.element)))
    return found


def block_arrays(program: CompiledProgram) -> dict[str, dict[str, str]]:
    """For each function block's class, its one-dimensional ARRAY OF REAL/LREAL/BOOL locals (VAR, not
    RETAIN) kept in C memory: attribute name -> ``_Reals`` or ``_Bools`` (``_ARRAY_CLASS``). Only a
    block's own locals: nothing outside its body assigns them (a program's variables are bound to I/O,
    inputs and outputs are copied in and out, VAR_IN_OUT ones are the caller's), so everything that
    reads them sees a sequence that reads and writes like the list it replaces."""
    found: dict[str, dict[str, str]] = {}
    for pou in program.model.used_pous():
        if pou.kind != "FUNCTION_BLOCK":
            continue
        for var, element in _one_dimensional_arrays(pou.variables):
            if var.section != "VAR" or var.retain:
                continue
            if isinstance(element, T.ElementaryType) and element.kind in ("real", "bool"):
                kind = "_Reals" if element.kind == "real" else "_Bools"
                found.setdefault(class_name(pou), {})["v_" + var.name.lower()] = kind
    return found


def _array_field(name: str, kind: str) -> list[str]:
    """A C array field: the ``_Reals``/``_Bools`` object in a C slot, the attribute a property that
    gives it and takes any sequence of the same values, copied into the same object (as a whole-array
    store copies them: whatever holds the array, an accessor or a VAR_IN_OUT, still holds it)."""
    return [
        f"    cdef {kind} _a_{name}",
        "    @property",
        f"    def {name}(self):",
        f"        return self._a_{name}",
        f"    @{name}.setter",
        f"    def {name}(self, value):",
        f"        if self._a_{name} is None:",
        f"            self._a_{name} = {kind}._of(value)",
        "        else:",
        f"            self._a_{name}._assign(value)",
    ]


def _closures(body: list[str]) -> tuple[bool, bool]:
    """Whether ``body`` holds a nested helper function (very deep nesting: it stays untyped, its
    nonlocal names must stay Python variables) and whether it holds any closure (helper or lambda:
    it stays ``def``, as ``cpdef`` cannot hold one)."""
    nested = any(line.lstrip().startswith("def ") for line in body)
    return nested, nested or any("lambda" in line for line in body)


def _functions(out: list[str], where: list[tuple[str, int]], program: CompiledProgram) -> None:
    """Module-level functions: ``cpdef`` (C calls inside the module) unless they hold a closure, and
    their REAL/BOOL locals typed; in place."""
    k = 0
    while k < len(out):
        if out[k].startswith("def F_"):
            stop = next(
                (n for n in range(k + 1, len(out)) if out[n] and not out[n].startswith(" ")), len(out)
            )
            body = out[k + 1 : stop]
            nested, closure = _closures(body)
            if not closure:
                out[k] = "cpdef " + out[k][len("def ") :]
            parameters = set(re.findall(r"\w+", out[k].split("(", 1)[1]))
            temps = program.real_temps.get(out[k].split()[1].split("(", 1)[0], set())
            kinds = (
                {}
                if nested
                else _leading_locals(body, parameters) | _loop_indices(body) | _real_temps(body, temps)
            )
            declared = [f"    cdef {kind} {local}" for local, kind in kinds.items()]
            out[k + 1 : k + 1] = declared
            where[k + 1 : k + 1] = [where[k]] * len(declared)
            k = stop + len(declared)
            continue
        k += 1


def _real_temps(body: list[str], temps: set[str]) -> dict[str, str]:
    """The code generator's temporaries that only hold REAL/LREAL values (the operands of MIN, MAX
    and LIMIT on REALs: ``CompiledProgram.real_temps``) that ``body`` uses: C doubles."""
    used = set(re.findall(r"\b_t\d+\b", "\n".join(body)))
    return {temp: "double" for temp in sorted(temps & used, key=lambda name: int(name[2:]))}


def _leading_locals(body: list[str], parameters: set[str]) -> dict[str, str]:
    """The REAL/LREAL (C double) and BOOL (bint) locals a body starts by initialising: the generated
    code gives every local its type's initial value first (0.0, False, ...), then runs the body (a
    first statement that gives a parameter a literal is not a local's initialisation)."""
    found: dict[str, str] = {}
    for line in body:
        init = _LOCAL_INIT.match(line)
        if not init:
            break
        if init.group(1) not in parameters and (kind := _literal_kind(init.group(2))):
            found[init.group(1)] = kind
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


def _literal_kind(value: str) -> str | None:
    """The C type of a REAL/LREAL (a float literal) or BOOL initial value, else None."""
    if _FLOAT_LITERAL.fullmatch(value):
        return "double"
    return "bint" if value in ("True", "False") else None


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
            block_or_structure = value[:-2] if value.endswith("()") and value[:-2] in classes else None
            kinds[assigned.group(1)] = _literal_kind(value) or block_or_structure or "object"
    return {name: kinds.get(name, "object") for name in slots}


def _local_types(
    body: list[str], fields: dict[str, str], elements: dict[str, str], arrays: dict[str, str]
) -> dict[str, str]:
    """C types for a body's array elements (``_eN = _mN[...]`` where ``_mN = self.v_x`` is an array of
    a known class), cached block instances (``_fbN = self.v_x``) and counted loops' C indices
    (``_loop_indices``); a local given two types, or assigned anything else too, is left untyped.
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
        kind = arrays.get(cached.group(2)) or fields.get(cached.group(2), "object") if cached else "object"
        if cached and kind != "object":
            found.setdefault(cached.group(1), set()).add(kind)  # a block, structure, C array or value
            typed_at[cached.group(1)] = typed_at.get(cached.group(1), 0) + 1
        element = _ELEMENT.match(line)
        if element and element.group(2) in array_of and assigned.get(element.group(2)) == 1:
            found.setdefault(element.group(1), set()).add(array_of[element.group(2)])
            typed_at[element.group(1)] = typed_at.get(element.group(1), 0) + 1
    typed = {
        local: next(iter(kinds))
        for local, kinds in found.items()
        # no other assignment; a REAL/BOOL field's local only ever holds what the field would hold
        if len(kinds) == 1 and (typed_at[local] == assigned.get(local) or kinds <= {"double", "bint"})
    }
    return typed | _loop_indices(body)


def _element_arrays(body: list[str], elements: dict[str, str]) -> dict[str, str]:
    """The locals of ``body`` that hold an array of a known class (``_mN = self.v_x``, assigned once):
    local -> element class; ``_mN[_kM].field`` then reads the field of a checked ``<Class?>`` cast."""
    held = {
        cached.group(1): elements[cached.group(2)]
        for line in body
        if (cached := _CACHED_FIELD.match(line)) and cached.group(2) in elements
    }
    assigned = [name for line in body for groups in _ASSIGNED.findall(line) for name in groups if name]
    return {local: cls for local, cls in held.items() if assigned.count(local) == 1}


def _outside_strings_sub(
    line: str, pattern: str | re.Pattern[str], replacement: str | Callable[[re.Match[str]], str]
) -> str:
    """``re.sub`` on ``line``'s code, not on its string literals."""
    parts = _STRING.split(line)
    return "".join(part if n % 2 else re.sub(pattern, replacement, part) for n, part in enumerate(parts))


def _counted(lines: list[str], k: int) -> tuple[str, str, str, int] | None:
    """The counted loop ``for _kN in _range(X):`` at ``lines[k]``: its indent, _kN, X and the end of
    its body, unless the body assigns _kN (then it stays as it is)."""
    loop = _COUNTED_LOOP.match(lines[k])
    if not loop:
        return None
    indent, index, count = loop.groups()
    end = k + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent + " ")):
        end += 1
    if any(re.search(rf"\b{index} (?:[-+*/%&|^]?=|:=) ", line) for line in lines[k + 1 : end]):
        return None
    return indent, index, count, end


def _loop_indices(body: list[str]) -> dict[str, str]:
    """A C index (``_kN_c``) for each counted loop of ``body`` (see ``_counted_loops``)."""
    return {f"{found[1]}_c": "Py_ssize_t" for k in range(len(body)) if (found := _counted(body, k))}


def _counted_loops(out: list[str], where: list[tuple[str, int]]) -> None:
    """``for _kN in _range(X):`` runs over a C index: ``for _kN_c in range(_ssize_clamped(X))``, the
    body's subscripts ``[_kN]`` read ``[_kN_c]`` and ``_kN`` is set from it first (other uses, and its
    value after the loop, as before). X is an ST integer; clamped to the C range, a loop of more than
    2**63 passes (which no scan finishes: the loop watchdog stops it first) becomes one of 2**63; in place."""
    k = 0
    while k < len(out):
        found = _counted(out, k)
        if found is None:
            k += 1
            continue
        indent, index, count, end = found
        out[k] = f"{indent}for {index}_c in range(_ssize_clamped({count})):"
        for n in range(k + 1, end):
            out[n] = _outside_strings_sub(out[n], re.escape(f"[{index}]"), f"[{index}_c]")
        out.insert(k + 1, f"{indent}    {index} = {index}_c")
        where.insert(k + 1, where[k])
        k += 1


def _backedges(out: list[str], where: list[tuple[str, int]]) -> None:
    """Every FOR loop's body starts with ``_backedge()``, which calls a plain Python function every
    BACKEDGE_CALL passes: there the interpreter delivers the runaway backstop's abort and lets other
    threads take the GIL, as it does at every back-edge of interpreted code. Without it a long FOR
    loop in C could be stopped by nothing (WHILE and REPEAT call ``_rt.loop_check`` already); in place."""
    lines: list[str] = []
    places: list[tuple[str, int]] = []
    for k, line in enumerate(out):
        lines.append(line)
        places.append(where[k])
        if found := _FOR.match(line):
            lines.append(f"{found.group(1)}    _backedge()")
            places.append(where[k + 1])  # an abort there is placed in the loop's body
    out[:], where[:] = lines, places


_C_ARRAY_LOCAL = re.compile(r"^        cdef (?:_Reals|_Bools) (_m\d+)$")
_DEF = re.compile(r"^\s*(?:cpdef|def) ")


def _c_subscripts(out: list[str]) -> None:
    """In a counted loop, ``_mN[_kM_c]`` on a C array (``_mN`` declared ``_Reals``/``_Bools``) reads
    and writes its C memory: ``_mN.p[_ix(_kM_c, _mN.n)]`` (the index checked as the list's would be;
    no float object made for a store); in place, body by body."""
    names: set[str] = set()
    for k, line in enumerate(out):
        if _DEF.match(line):
            names = set()
        elif declared := _C_ARRAY_LOCAL.match(line):
            names.add(declared.group(1))
        elif names and "_c]" in line:
            for name in names:
                line = _outside_strings_sub(line, rf"\b{name}\[(_k\d+_c)\]", rf"{name}.p[_ix(\1, {name}.n)]")
            out[k] = line


_ARRAY_CLASS = """
cdef class {name}:
    # an ARRAY OF {st} local of a function block in C memory: indexes, slices, iterates, compares and
    # copies like the list it replaces (its reads give {py} objects)
    cdef {c}* p
    cdef readonly Py_ssize_t n
    def __cinit__(self, Py_ssize_t n=0):
        self.p = <{c}*>PyMem_Calloc(n if n > 0 else 1, sizeof({c}))
        if self.p == NULL:
            raise MemoryError()
        self.n = n if n > 0 else 0
    def __dealloc__(self):
        PyMem_Free(self.p)
    @staticmethod
    def _of(values):
        cdef {name} made = {name}(len(values))
        cdef Py_ssize_t i
        for i, value in enumerate(values):
            made.p[_ix(i, made.n)] = value
        return made
    def _assign(self, other):
        cdef {name} copy = {name}._of(other)
        self.p, copy.p = copy.p, self.p
        self.n, copy.n = copy.n, self.n
        return self
    def __len__(self):
        return self.n
    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.p[i] for i in range(*index.indices(self.n))]
        return self.p[_position(index, self.n)]
    def __setitem__(self, index, value):
        cdef Py_ssize_t i
        if isinstance(index, slice):
            positions = range(*index.indices(self.n))
            values = list(value)
            if len(values) != len(positions):
                raise ValueError("an array keeps its length")
            for i, item in zip(positions, values):
                self.p[i] = item
        else:
            self.p[_position(index, self.n)] = value
    def __iter__(self):
        return iter(self[:])
    def __eq__(self, other):
        if not hasattr(other, "__len__"):
            return NotImplemented
        return len(other) == self.n and all(a == b for a, b in zip(self[:], other))
    def __repr__(self):
        return repr(self[:])
    def __reduce__(self):
        return (_{lower}_of, (self[:],))
def _{lower}_of(values):
    return {name}._of(values)
"""
_ARRAY_CLASSES = "\n".join(
    [
        "from cpython.mem cimport PyMem_Calloc, PyMem_Free",
        "cdef inline Py_ssize_t _ix(Py_ssize_t i, Py_ssize_t n) except -1:",
        "    if <size_t>i >= <size_t>n:",
        "        raise IndexError('list index out of range')",
        "    return i",
        "cdef Py_ssize_t _position(object index, Py_ssize_t n) except -1:",
        "    cdef Py_ssize_t i = index",
        "    return _ix(i + n if i < 0 else i, n)",
    ]
    + [
        _ARRAY_CLASS.format(name=name, lower=name[1:].lower(), st=st, c=c, py=py)
        for name, st, c, py in (
            ("_Reals", "REAL/LREAL", "double", "float"),
            ("_Bools", "BOOL", "bint", "bool"),
        )
    ]
)


def header_lines() -> list[str]:
    """The module's first lines: directives, the interpreter's helpers by name, the C helpers."""
    names = sorted(NAMESPACE)
    return (
        ["# cython: language_level=3, binding=False, infer_types=False"]
        + ["from plcrun.state.support import NAMESPACE as _NAMESPACE_"]
        + [f"{name} = _NAMESPACE_[{name!r}]" for name in names]
        + ["_rt = _G = _NS = _F32 = None", "_native_never = False"]
        + ["from plcrun.state.support import enter_interpreter as _enter_interpreter_"]
        + [
            "from libc.math cimport exp as _libm_exp",
            "cdef inline double _exp_c(double x):",
            "    return _libm_exp(x)",
            "cdef inline double _f32_c(double x):",
            "    return <double><float>x",
            "cdef unsigned int _backedges = 0",
            "cdef inline int _backedge() except -1:",
            "    global _backedges",
            "    _backedges += 1",
            f"    if _backedges % {BACKEDGE_CALL} == 0:",
            "        _enter_interpreter_()",
            "    return 0",
        ]
        + [
            "cdef inline Py_ssize_t _ssize_clamped(object count):",
            "    return 9223372036854775807 if count > 9223372036854775807 else (",
            "        -9223372036854775808 if count < -9223372036854775808 else count)",
        ]
        + _ARRAY_CLASSES.split("\n")
    )
