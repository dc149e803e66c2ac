"""The code an earlier commit's compiler generates, run on today's runtime: before/after in one run.

``BaselineCompiler(ref)`` checks the commit out into a temporary git worktree and runs its compiler
in a subprocess (its ``runtime/`` first on PYTHONPATH as ``plcrun``, its ``stdlib/`` as the ST
library). ``generated(text, filename)`` returns the Python source that compiler generates for an ST
program; ``state_from_source(program, source)`` builds a ``ProgramState`` of today's compiled
program whose classes come from that source instead (same variables and paths, the earlier code),
so both versions run interleaved in one process on the same inputs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from plcrun.state.program import CompiledProgram, ProgramState

ROOT = Path(__file__).resolve().parent.parent

_GENERATE = """
import sys
from pathlib import Path
from plcrun.compiler import api
lib = Path(sys.argv[1])
api.library_sources = lambda: tuple(
    (f"stdlib/{p.name}", p.read_text("utf-8")) for p in sorted(lib.glob("*.st"))
)
sys.stdout.write(api.compile_source(sys.stdin.read(), sys.argv[2]).python_source)
"""


class BaselineCompiler:
    """An earlier commit's compiler (and ST library), from a temporary git worktree."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self._tmp = tempfile.TemporaryDirectory(prefix="plcrun-baseline-")
        self.tree = Path(self._tmp.name) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.tree), ref],
            check=True,
            capture_output=True,
        )
        self.shim = Path(self._tmp.name) / "path"
        self.shim.mkdir()
        (self.shim / "plcrun").symlink_to(self.tree / "runtime")
        self.commit = subprocess.run(
            ["git", "-C", str(self.tree), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def generated(self, text: str, filename: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", _GENERATE, str(self.tree / "stdlib"), filename],
            input=text,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(self.shim), "PATH": "/usr/bin:/bin"},
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"compiler of {self.ref} failed:\n{result.stderr}")
        return result.stdout

    def st_file(self, relative: str) -> str:
        """An ST file as it was at the earlier commit (e.g. programs/freq_response.st)."""
        return (self.tree / relative).read_text("utf-8")

    def close(self) -> None:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.tree)],
            check=False,
            capture_output=True,
        )
        self._tmp.cleanup()

    def __enter__(self) -> BaselineCompiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def state_from_source(program: CompiledProgram, source: str, label: str = "baseline") -> ProgramState:
    """A fresh state of ``program`` whose classes are those of ``source`` (generated code of the
    same program by another compiler version): globals and program instances re-created."""
    state = program.new_state()
    namespace: dict[str, Any] = state.namespace
    exec(compile(source, f"<{label}>", "exec"), namespace)
    state.globals = namespace["GLOBALS_"]()
    state.globals._path = program.model.globals_name.lower()
    namespace["_G"] = state.globals
    state.reset_instances([inst.name for inst in program.model.instances])
    return state
