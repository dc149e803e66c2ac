"""One exception root: everything plcrun raises on purpose derives from ``plcrun.errors.PlcrunError``,
carries its context, and reaches the command line as one line and a non-zero exit code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import plcrun
import pytest
from plcrun.cli import main
from plcrun.errors import PlcrunError, UsageError
from plcrun.io.config_errors import ConfigError

# control signals, not errors: ST code must not be able to catch them
NOT_ERRORS = {"plcrun.state.support.ScanAborted"}


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(plcrun.__path__, "plcrun."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    return found


def test_every_plcrun_exception_derives_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) > 20  # the walk found them
    strays = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, PlcrunError) and f"{c.__module__}.{c.__qualname__}" not in NOT_ERRORS
    ]
    assert strays == []


def test_errors_carry_their_context() -> None:
    error = ConfigError("site.toml", "mqtt.port", "must be at most 65535")
    assert (error.file, error.key, error.where()) == ("site.toml", "mqtt.port", "site.toml: mqtt.port")
    assert error.render() == "plcrun: site.toml: mqtt.port: must be at most 65535"
    assert UsageError("x").exit_code == 2 and error.exit_code == 1


def test_a_compile_error_is_positioned(tmp_path: Path) -> None:
    from plcrun.compiler.api import compile_file
    from plcrun.compiler.diagnostics import CompileError

    source = tmp_path / "bad.st"
    source.write_text("PROGRAM main\nVAR x : INT; END_VAR\nx := y;\nEND_PROGRAM\n")
    try:
        compile_file(source)
    except CompileError as error:
        assert isinstance(error, PlcrunError)
        assert (error.file, error.line) == (str(source), 3)
        assert error.where().startswith(f"{source}:3:")
    else:
        raise AssertionError("compiled")


def test_the_command_line_prints_one_line_for_an_expected_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "empty.st"
    program.write_text("FUNCTION f : INT\nf := 1;\nEND_FUNCTION\n")
    assert main(["run", str(program), "--duration", "0.1", "--no-dashboard"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"plcrun: {program}: nothing to run")
