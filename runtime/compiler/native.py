"""Optional native build of a compiled program: its generated Python as Cython (compiler/native_source.py,
C types only where nothing observable changes), compiled to a C extension with gcc and loaded in place
of the interpreted classes.

Faults still name the ST file and line (``line_table``). Builds are cached by the hash of their source,
the Cython, Python and C compiler versions and gcc's arguments; a program whose build fails runs
interpreted, with the reason given.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import PlcrunError
from ..state.faults import register_line_table
from ..state.program import CompiledProgram
from .native_source import header_lines, typed_source

BUILD_TIMEOUT_S = 600  # one program's Cython + gcc run; a larger program is refused, not waited for
_PATH_COMMENT = re.compile(r"^(\s*# ---- [^(\n]*) \([^\n]*\)$", re.MULTILINE)
_LOADED: dict[str, NativeModule] = {}  # one per loaded module: two compiles of one program share it


class NativeBuildError(PlcrunError):
    """The native build could not be made (no Cython, no C compiler, or a failed build)."""


class NativeModule:
    """A loaded native build of one program, owned by at most one live program state at a time (its
    module globals hold that state's scan context)."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self._owner: weakref.ref[Any] | None = None

    def claim(self, state: Any) -> bool:
        """Give the module to ``state`` unless another live state holds it (a state that is only
        kept by a reference cycle, such as the last run's in a sweep worker, is collected first)."""
        if self._owner is not None and self._owner() is not None:
            gc.collect()
            if self._owner() is not None:
                return False
        self._owner = weakref.ref(state)
        return True


def cache_dir() -> Path:
    """Where builds are kept: ``$PLCRUN_NATIVE_CACHE``, else ``~/.cache/plcrun/native``."""
    configured = os.environ.get("PLCRUN_NATIVE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "plcrun" / "native"


OPTIMISE_FLAGS = ("-O0", "-O1", "-O2", "-O3", "-Os")


def build(program: CompiledProgram, *, optimise: str | None = None, typed: bool = True) -> NativeModule:
    """Build (or take from the cache) and load the native module of ``program``; ``optimise`` is
    gcc's flag, default ``$PLCRUN_NATIVE_OPTIMISE`` or -O2. ``typed=False`` compiles the generated
    source without any C type (bench/native_probe.py measures what the types bring)."""
    plan = _plan(program, optimise, typed)
    if plan.name not in _LOADED and not plan.library.exists():
        _compile([plan])
    # faults name this program's files (its path may differ)
    register_line_table(plan.name + ".pyx", plan.table)
    if plan.name not in _LOADED:
        _LOADED[plan.name] = NativeModule(_load(plan.name, plan.library))
    return _LOADED[plan.name]


def prebuild(programs: Sequence[CompiledProgram], *, optimise: str | None = None) -> None:
    """Put the builds of several programs in the cache at once (what ``build`` would make of each):
    one Cython process for all of them, then gcc for each, as many at a time as there are CPUs.
    Loads nothing; ``build`` then takes each from the cache. Best effort: if anything fails, the
    programs not built are left to ``build``, which builds each alone and says why it cannot."""
    try:
        plans = {plan.name: plan for plan in (_plan(p, optimise, True) for p in programs)}
        todo = [plan for name, plan in plans.items() if name not in _LOADED and not plan.library.exists()]
        if todo:
            _compile(todo)
    except (NativeBuildError, OSError):
        return


@dataclass(frozen=True)
class _Plan:
    """One program's build: its module name (the cache key), Cython source, line table and gcc command."""

    name: str
    text: str
    table: list[tuple[str, int]]
    command: list[str]
    folder: Path
    library: Path


def _plan(program: CompiledProgram, optimise: str | None, typed: bool) -> _Plan:
    optimise = optimise or os.environ.get("PLCRUN_NATIVE_OPTIMISE") or "-O2"
    if optimise not in OPTIMISE_FLAGS:
        raise NativeBuildError(f"PLCRUN_NATIVE_OPTIMISE={optimise!r}: use one of {', '.join(OPTIMISE_FLAGS)}")
    if typed:
        body, where = typed_source(program)
    else:
        body, where = program.python_source.split("\n"), list(program.line_table)
    header = header_lines()
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
    command = _gcc_command(compiler, optimise, include)
    # the ST file's path is only in comments: a program given by another path is the same build
    code = _PATH_COMMENT.sub(r"\1", text)
    key_text = f"{cython_version}|{sys.version}|{_compiler_version(compiler)}|{' '.join(command)}|{code}"
    name = f"plcrun_native_{hashlib.sha256(key_text.encode()).hexdigest()[:20]}"
    folder = cache_dir()
    library = folder / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    return _Plan(name, text, table, command, folder, library)


def _gcc_command(compiler: str, optimise: str, include: Path) -> list[str]:
    """gcc's arguments before the file names (Linux shared objects; they are part of the cache key).
    ``-ffp-contract=off``: no fused multiply-add (gcc's default contracts ``a * b + c`` where the
    target has FMA, e.g. every 64-bit ARM gateway), so each operation rounds as Python's does."""
    return [
        compiler,
        optimise,
        "-shared",
        "-fPIC",
        "-fno-strict-aliasing",
        "-ffp-contract=off",
        "-I",
        str(include),
    ]


def _compiler_version(compiler: str) -> str:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NativeBuildError(f"cannot run the C compiler {compiler}: {error}") from None
    return (done.stdout or done.stderr).split("\n", 1)[0]


def _compile(plans: list[_Plan]) -> None:
    """Cython for all ``plans`` in one process (its start-up is most of a small program's Cython
    time), then gcc for each; the time limit is for the whole."""
    folder = plans[0].folder
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + BUILD_TIMEOUT_S  # for all steps together
    with tempfile.TemporaryDirectory(dir=folder, prefix="building-") as tmp:
        work = Path(tmp)
        for plan in plans:
            (work / (plan.name + ".pyx")).write_text(plan.text)
        sources = [plan.name + ".pyx" for plan in plans]  # each gives name.c beside it
        _run_step("cython", [sys.executable, "-m", "cython", "-3", *sources], work, deadline)
        steps = [[*plan.command, plan.name + ".c", "-o", plan.library.name] for plan in plans]
        with ThreadPoolExecutor(max_workers=min(len(steps), os.cpu_count() or 1)) as pool:
            for done in [pool.submit(_run_step, "gcc", step, work, deadline) for step in steps]:
                done.result()
        for plan in plans:
            os.replace(work / (plan.name + ".pyx"), plan.folder / (plan.name + ".pyx"))
            os.replace(work / plan.library.name, plan.library)  # last: a library in the cache is complete


def _run_step(label: str, step: list[str], work: Path, deadline: float) -> None:
    """One build step in its own process group, killed whole (gcc's cc1 included) at the deadline."""
    with subprocess.Popen(
        step, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as process:
        try:
            output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise NativeBuildError(f"the build took longer than {BUILD_TIMEOUT_S} s ({label})") from None
    if process.returncode:
        tail = output.strip().splitlines()[-6:]
        raise NativeBuildError(f"{label} failed: " + " / ".join(tail))


def _load(name: str, library: Path) -> ModuleType:
    """Load a built module; a library that cannot be loaded (truncated, built elsewhere) is removed
    from the cache, so the next run builds it again."""
    try:
        loader = importlib.machinery.ExtensionFileLoader(name, str(library))
        spec = importlib.util.spec_from_file_location(name, str(library), loader=loader)
        if spec is None:
            raise ImportError("no module spec")
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        sys.modules[name] = module  # importable by its name: pickle finds its classes there
    except Exception as error:  # a module's import can raise anything; the build is then not used
        library.unlink(missing_ok=True)
        raise NativeBuildError(f"cannot load {library.name} ({error}); removed from the cache") from None
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
