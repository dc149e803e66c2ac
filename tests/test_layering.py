"""Dependencies run one way: compiler <- executor <- io <- dashboard/cli. The executor sees drivers
only through ``executor.driver_api``; I/O code may use the driver API, the alarm bus and the clock
protocol of the executor, nothing else of it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runtime"
IO_MAY_USE = {"driver_api", "alarms", "clock"}


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


def test_compiler_imports_nothing_else_of_plcrun() -> None:
    for path in _files("compiler"):
        for name in _imports(path):
            assert name.startswith("plcrun.compiler"), f"{path}: imports {name}"


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


def test_the_rules_see_imports() -> None:
    imported = _imports(PACKAGE / "executor" / "engine.py")
    assert "plcrun.compiler.program" in imported
    assert "plcrun.executor.driver_api" in imported
