"""Dependencies run one way: errors <- compiler <- executor <- io <- dashboard/cli. The executor sees
drivers only through ``executor.driver_api``; I/O code may use the driver API, the alarm bus and the
clock protocol of the executor, nothing else of it. ``plcrun.errors`` (the exception root) imports
nothing of plcrun, and no module imports itself back through others (no import circle)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runtime"
IO_MAY_USE = {"driver_api", "alarms", "clock", "threads"}


@functools.cache  # each file parsed once for all the rules
def _imports(path: Path) -> list[str]:
    """Absolute plcrun module names imported by one file (relative imports resolved)."""
    module = "plcrun." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.extend([target, *names])
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith(("plcrun", "runtime"))]


def _files(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def _module(path: Path) -> str:
    return ("plcrun." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _graph() -> dict[str, set[str]]:
    """Module -> plcrun modules it imports (anywhere in the file, TYPE_CHECKING blocks included)."""
    modules = {_module(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imports(path):
            while name and name not in modules:  # "plcrun.x.y.Name" -> the module "plcrun.x.y"
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_sees_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_every_module_is_covered_by_a_rule() -> None:
    """A new top-level module or package must be placed in the layering (add it to a rule here)."""
    known = {
        "compiler",
        "state",
        "executor",
        "io",
        "dashboard",
        "cli",
        "cli_sim",
        "cli_sweep",
        "cli_native",
        "cli_devices",
        "errors",
        "site",
        "doctor",
        "__init__",
        "__main__",
    }
    for path in PACKAGE.iterdir():
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            assert path.stem in known, f"{path.name}: which layer is it? (tests/test_layering.py)"


def test_the_exception_root_imports_nothing_of_plcrun() -> None:
    assert _imports(PACKAGE / "errors.py") == []


def test_compiler_imports_nothing_else_of_plcrun() -> None:
    """The compiler produces a ``plcrun.state.program.CompiledProgram``; nothing else outside it."""
    for path in _files("compiler"):
        for name in _imports(path):
            assert name.startswith(("plcrun.compiler", "plcrun.errors", "plcrun.state")), f"{path}: {name}"


# what the runtime state model may use of the compiler: its published type model and diagnostics
COMPILER_PUBLISHED = {"st_types", "model", "diagnostics", "literals", "codegen_values", "api"}


def test_the_state_model_uses_only_the_compilers_published_model() -> None:
    for path in _files("state"):
        for name in _imports(path):
            assert name.startswith(("plcrun.state", "plcrun.errors", "plcrun.compiler")), f"{path}: {name}"
            if name.startswith("plcrun.compiler."):
                assert name.split(".")[2] in COMPILER_PUBLISHED - {"api"}, f"{path}: {name}"


def test_the_executor_does_not_reach_into_compiler_internals() -> None:
    """Program state, accessors and the scan context come from plcrun.state; of the compiler the
    executor sees its type model, its diagnostics and compile_file (online change), nothing else."""
    for path in _files("executor"):
        for name in _imports(path):
            if name.startswith("plcrun.compiler."):
                assert name.split(".")[2] in COMPILER_PUBLISHED, f"{path}: {name}"


def test_executor_does_not_know_io_dashboard_or_cli() -> None:
    for path in _files("executor"):
        for name in _imports(path):
            assert not name.startswith(("plcrun.io", "plcrun.dashboard", "plcrun.cli", "runtime")), (
                f"{path}: {name}"
            )


def test_io_sees_only_the_driver_interface_of_the_executor() -> None:
    for path in _files("io"):
        for name in _imports(path):
            assert not name.startswith(("plcrun.dashboard", "plcrun.cli", "runtime")), f"{path}: {name}"
            if name.startswith("plcrun.executor."):
                module = name.split(".")[2]
                assert module in IO_MAY_USE, f"{path}: imports plcrun.executor.{module}"


def test_doctor_reads_the_host_and_the_site_file_only() -> None:
    """The host check sits beside the command line: it may use I/O helpers (thermal zones,
    credentials), never the executor's running parts, the dashboard or the command line."""
    for path in _files("doctor"):
        for name in _imports(path):
            assert not name.startswith(("plcrun.executor", "plcrun.dashboard", "plcrun.cli", "runtime")), (
                f"{path}: {name}"
            )


def test_the_rules_see_imports() -> None:
    imported = _imports(PACKAGE / "executor" / "engine.py")
    assert "plcrun.state.program" in imported
    assert "plcrun.executor.driver_api" in imported
