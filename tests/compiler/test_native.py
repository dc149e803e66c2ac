"""The native build (compiler/native.py): conformance programs give the values the interpreter gives,
faults name the same ST file and line, a second live state runs interpreted, a build is taken from the
cache, and a missing C compiler leaves the program interpreted with the reason. The builds are real
(Cython and gcc, -O0 to keep the suite fast); without Cython the module is skipped."""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("Cython")

from plcrun.compiler.api import compile_file
from plcrun.compiler.native import NativeBuildError, _gcc_command, _load, _plan, enable_native, prebuild
from plcrun.compiler.native_source import typed_source
from plcrun.site import run_cycles

from tests.compiler.test_conformance import _matches

HERE = Path(__file__).parent
CONFORMANCE = HERE / "conformance"
# the cases whose generated code the native types touch most: REAL/LREAL fields, BOOL fields, arrays of
# structures in counted loops, blocks calling blocks, integer wrap-around and value copies
NATIVE_CASES = [
    "reals",
    "integers",
    "structures",
    "value_semantics",
    "effects_between_operands",
    "codegen_fast_paths",
    "count_up_loops",
    "std_functions",  # DIV of INT literals: an inferred C double gave 4.0 for 9 / 2 (infer_types=False)
    "element_reads",  # fields of structure array elements through checked C casts
    "output_values",  # `=>` into a block's own C arrays: copied in, the object kept
]


# every program the tests below build with -O0 (test_prebuild... builds its own)
BUILT = [CONFORMANCE / f"{case}.st" for case in NATIVE_CASES] + [
    HERE / "native" / f"{name}.st"
    for name in ("index_fault", "big_loops", "review_cases", "c_arrays", "c_math")
]


_PREBUILT: dict[str, int] = {}  # the cache's libraries right after the module's prebuild (name: mtime)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's build cache; the module's programs are put in it at once (``prebuild``: one
    Cython process, gcc on every CPU), so each test's own ``enable_native`` loads its build from
    there, as a second ``plcrun sim --native`` does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLCRUN_NATIVE_CACHE", str(tmp_path_factory.getbasetemp() / "native-cache"))
        prebuild([compile_file(path) for path in BUILT], optimise="-O0")
        folder = Path(os.environ["PLCRUN_NATIVE_CACHE"])
        _PREBUILT.update({p.name: p.stat().st_mtime_ns for p in folder.glob("plcrun_native_*.so")})
        yield


def _native(path: Path) -> object:
    program = compile_file(path)
    assert enable_native(program, optimise="-O0") is None
    return program


@pytest.mark.slow
@pytest.mark.parametrize("case", NATIVE_CASES)
def test_conformance_values_match_the_interpreter(case: str) -> None:
    path = CONFORMANCE / f"{case}.st"
    spec = json.loads(path.with_suffix(".expected.json").read_text())
    program = _native(path)
    state = program.new_state()  # type: ignore[attr-defined]
    assert state.native and type(next(iter(state.instances.values()))).__module__.startswith("plcrun_native_")
    del state
    native = run_cycles(program, spec["cycles"])  # type: ignore[arg-type]
    interpreted = run_cycles(compile_file(path), spec["cycles"])
    assert native.faults == {}
    _matches(native.values, spec["values"], case)
    assert json.dumps(native.values, sort_keys=True) == json.dumps(interpreted.values, sort_keys=True)


def test_a_fault_names_the_st_file_and_line() -> None:
    path = HERE / "native" / "index_fault.st"
    native = run_cycles(_native(path), 5)  # type: ignore[arg-type]
    interpreted = run_cycles(compile_file(path), 5)
    assert native.faults == interpreted.faults
    assert native.faults["main_task"].startswith(f"{path}:14: runtime fault: array index 4 is outside 0..3")
    assert native.values == interpreted.values


def test_loops_with_ends_beyond_a_c_integer_match_the_interpreter() -> None:
    path = HERE / "native" / "big_loops.st"
    program = _native(path)
    assert "for _k3_c in range(_ssize_clamped(" in "\n".join(typed_source(program)[0])  # type: ignore[attr-defined]
    native = run_cycles(program, 2)  # type: ignore[arg-type]
    interpreted = run_cycles(compile_file(path), 2)
    assert native.faults == interpreted.faults == {}
    assert native.values == interpreted.values
    assert native.values["main"]["found"] == 3 and native.values["main"]["s"] == 6


def test_the_shapes_the_review_found_build_and_match_the_interpreter() -> None:
    path = HERE / "native" / "review_cases.st"
    program = _native(path)  # asserts the build is used (a refused build was finding 5 and 6)
    native = run_cycles(program, 3)  # type: ignore[arg-type]
    interpreted = run_cycles(compile_file(path), 3)
    assert native.faults == interpreted.faults == {}
    assert json.dumps(native.values, sort_keys=True) == json.dumps(interpreted.values, sort_keys=True)
    assert native.values["main"]["text"] == "for _k4 in _range(3): a[_k4]"  # strings are not code
    assert native.values["main"]["cells"]["items"][3]["v"] == 12  # each POU's own element class


def test_c_arrays_element_casts_and_real_temporaries_keep_every_value() -> None:
    path = HERE / "native" / "c_arrays.st"
    spec = json.loads(path.with_suffix(".expected.json").read_text())
    program = _native(path)
    source = typed_source(program)[0]  # type: ignore[attr-defined]
    assert any(".p[_ix(_k" in line for line in source) and any("(<S_CELL?>_m" in line for line in source)
    real_temp = next(re.search(r"\(0\.5 if \((_t\d+) :=", line) for line in source if "(0.5 if (_t" in line)
    int_temp = next(
        re.search(r"\((_t\d+) if _m\d+ <", line) for line in source if "if _m" in line and "< (_t" in line
    )
    assert real_temp and f"        cdef double {real_temp[1]}" in source  # LIMIT on REALs: a C double
    assert int_temp and not any(
        line.endswith(f" {int_temp[1]}") for line in source if "cdef" in line
    )  # MAX on INTs
    assert not any("_abs(" in line for line in source) and any("abs(" in line for line in source)  # fabs
    native = run_cycles(program, spec["cycles"])  # type: ignore[arg-type]
    _matches(native.values, spec["values"], "c_arrays")
    assert native.values == run_cycles(compile_file(path), spec["cycles"]).values
    faulted = run_cycles(program, spec["fault_after_cycles"])  # type: ignore[arg-type]
    assert faulted.faults == run_cycles(compile_file(path), spec["fault_after_cycles"]).faults
    assert faulted.faults["main_task"].endswith(spec["fault"].split(":", 1)[1])

    state = program.new_state()  # type: ignore[attr-defined]
    holder = state.instances["main"].v_h
    assert type(holder.v_wide).__name__ == "_Reals" and type(holder.v_on).__name__ == "_Bools"
    state.write("main.h.wide[2]", 4.25)  # through the accessors, as a binding or the dashboard
    assert state.read("main.h.wide[2]") == 4.25 and holder.v_wide[1] == 4.25
    assert holder.v_on[0] is True and holder.v_on[-1] is False and holder.v_wide[1:3] == [4.25, 3.0]
    wide = holder.v_wide
    holder.v_wide = [9.0] * 5  # a whole-array store copies the values into the same object
    assert holder.v_wide is wide and wide == [9.0] * 5 and copy.deepcopy(wide) == [9.0] * 5
    again = pickle.loads(pickle.dumps(holder))  # the block with its C arrays, by value
    assert again.v_wide == [9.0] * 5 and again.v_on == holder.v_on and again.v_wide is not wide
    with pytest.raises(IndexError):
        holder.v_wide[5]
    with pytest.raises(ValueError):
        holder.v_wide[:] = [1.0]


def test_two_compiles_of_one_program_share_one_module_and_its_owner() -> None:
    path = HERE / "native" / "index_fault.st"
    first, second = _native(path), _native(path)
    assert first.native is second.native  # type: ignore[attr-defined]
    one, two = first.new_state(), second.new_state()  # type: ignore[attr-defined]
    assert one.native and not two.native
    assert one.rt is not two.rt and one.namespace is not two.namespace


def test_a_state_kept_only_by_a_reference_cycle_gives_the_module_back() -> None:
    program = _native(HERE / "native" / "index_fault.st")
    cycle: list[object] = [program.new_state()]  # type: ignore[attr-defined]
    cycle.append(cycle)
    assert cycle[0].native  # type: ignore[attr-defined]
    del cycle  # as a sweep worker's last run: gone, but not yet collected
    assert program.new_state().native  # type: ignore[attr-defined]


def test_a_second_live_state_runs_interpreted_and_both_count_alone() -> None:
    program = _native(HERE / "native" / "index_fault.st")
    first = program.new_state()  # type: ignore[attr-defined]
    second = program.new_state()  # type: ignore[attr-defined]
    assert first.native and not second.native
    first.run_task_scan("main_task", 0)
    assert (first.instances["main"].v_next, second.instances["main"].v_next) == (2, 0)
    second.run_task_scan("main_task", 0)
    assert (first.instances["main"].v_next, second.instances["main"].v_next) == (2, 2)
    del first
    assert program.new_state().native  # type: ignore[attr-defined]  # the module is free again


def test_the_second_build_comes_from_the_cache() -> None:
    path = CONFORMANCE / "reals.st"
    _native(path)
    folder = Path(os.environ["PLCRUN_NATIVE_CACHE"])
    built = {p: p.stat().st_mtime_ns for p in folder.glob("plcrun_native_*")}
    assert built
    _native(path)
    assert {p: p.stat().st_mtime_ns for p in folder.glob("plcrun_native_*")} == built


def test_without_a_c_compiler_the_program_runs_interpreted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-c-compiler")
    program = compile_file(CONFORMANCE / "integers.st")
    assert enable_native(program) == "no C compiler found (no-such-c-compiler)"
    assert not program.new_state().native


def test_a_library_that_cannot_be_loaded_is_reported_and_removed(tmp_path: Path) -> None:
    library = tmp_path / "plcrun_native_truncated.cpython-311-x86_64-linux-gnu.so"
    library.write_bytes(b"\x7fELF" + bytes(12))  # what an interrupted copy leaves
    with pytest.raises(
        NativeBuildError, match=r"cannot load plcrun_native_truncated.*removed from the cache"
    ):
        _load("plcrun_native_truncated", library)
    assert not library.exists()


def test_gcc_never_fuses_a_multiply_and_an_add() -> None:
    # a fused a * b + c rounds once where Python rounds twice: on an FMA target (64-bit ARM) gcc's
    # default would change REAL results, so the flag is part of every build and of its cache key
    assert "-ffp-contract=off" in _gcc_command("gcc", "-O2", Path("/usr/include/python3.11"))


def test_an_unknown_optimisation_flag_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLCRUN_NATIVE_OPTIMISE", "-O9")
    program = compile_file(CONFORMANCE / "integers.st")
    assert enable_native(program) == "PLCRUN_NATIVE_OPTIMISE='-O9': use one of -O0, -O1, -O2, -O3, -Os"
    assert not program.new_state().native


def test_types_come_from_initial_values_and_lines_keep_their_st_place() -> None:
    program = compile_file(CONFORMANCE / "structures.st")
    source = program.python_source
    assert len(program.line_table) == len(source.split("\n"))
    lines, where = typed_source(program)
    assert len(lines) == len(where)
    text = "\n".join(lines)
    for declaration in (
        "cdef class S_POINT:\n    cdef public double v_x\n    cdef public double v_y\n",  # REAL
        "    cdef public S_POINT v_a\n    cdef public S_POINT v_b\n    cdef public object v_label\n",
        "cdef class FB_R_TRIG:\n    cdef public bint v_clk\n",  # BOOL
        "    cdef public object v_rises\n",  # INT stays a Python integer: no C overflow
        "        cdef FB_R_TRIG _e11\n",  # the element of `edges` in the counted loop
    ):
        assert declaration in text
    assert "__slots__" not in text
    original = source.split("\n")
    for line, place in zip(lines, where, strict=True):  # every copied line keeps its ST place
        if line in original and line.strip() and not line.startswith(("cdef ", "class ")):
            assert place in [program.line_table[i] for i, old in enumerate(original) if old == line]


def test_prebuild_put_the_module_s_builds_in_the_cache_and_build_took_them_from_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = Path(os.environ["PLCRUN_NATIVE_CACHE"])
    libraries = {_plan(compile_file(path), "-O0", True).library.name for path in BUILT}
    assert len(libraries) == len(BUILT) and libraries <= set(_PREBUILT)  # there before any test built
    assert not list(folder.glob("building-*"))  # the work folder is gone
    now = {name: (folder / name).stat().st_mtime_ns for name in _PREBUILT}
    assert now == _PREBUILT  # the tests' own builds (those run so far) were not made again
    timers = _plan(compile_file(CONFORMANCE / "timers.st"), "-O0", True).library
    monkeypatch.setenv("CC", "no-such-c-compiler")
    prebuild([compile_file(CONFORMANCE / "timers.st")], optimise="-O0")  # says nothing: build will
    assert not timers.exists()


def test_exp_and_real_conversions_in_c_give_the_interpreters_values() -> None:
    """native_source's ``_C_HELPERS``: EXP through libm's exp, the conversions to REAL through the
    float32 cast, at overflow, underflow and the float32 range's edge (values worked out by hand
    with Python's math and struct)."""
    path = HERE / "native" / "c_math.st"
    spec = json.loads(path.with_suffix(".expected.json").read_text())
    program = compile_file(path)
    lines, _ = typed_source(program)
    assert sum("_exp_c(" in line for line in lines) == 9 and sum("_f32_c(" in line for line in lines) == 7
    assert not any("_exp(" in line or "_f32(" in line for line in lines)
    assert enable_native(program, optimise="-O0") is None
    native = run_cycles(program, spec["cycles"])
    interpreted = run_cycles(compile_file(path), spec["cycles"])
    assert native.faults == interpreted.faults == {}
    _matches(interpreted.values, spec["values"], "c_math interpreted")
    _matches(native.values, spec["values"], "c_math native")
    assert repr(native.values) == repr(interpreted.values)
