"""The parser's tables kept between processes (compiler/parser_tables.py): a parser loaded from the cache
compiles every conformance program and reports every diagnostic case as the one built from the grammar;
a damaged file is made again; a folder that is not this user's alone, or that cannot be made, is not
used."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from plcrun.compiler import parser
from plcrun.compiler.api import compile_file
from plcrun.compiler.diagnostics import CompileError
from plcrun.compiler.parser_tables import CACHE_ENV, cache_folder

HERE = Path(__file__).parent
PROGRAMS = sorted((HERE / "conformance").glob("*.st")) + sorted((HERE / "diagnostics").glob("*.st"))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    parser._lark.cache_clear()
    yield tmp_path / "cache"
    parser._lark.cache_clear()  # the next test builds or loads its own


def _compiled() -> dict[str, str]:
    out = {}
    for path in PROGRAMS:
        try:
            out[path.name] = compile_file(path).python_source
        except CompileError as error:
            out[path.name] = error.render()
    return out


@pytest.mark.slow
def test_tables_loaded_from_the_cache_compile_as_the_ones_built(folder: Path) -> None:
    built = _compiled()
    assert parser._lark().source_path != "<deserialized>"
    assert [p.name for p in folder.iterdir()] == [next(folder.glob("parser-*.lark")).name]
    assert folder.stat().st_mode & 0o777 == 0o700
    parser._lark.cache_clear()  # as a new process
    assert _compiled() == built
    assert parser._lark().source_path == "<deserialized>"


def test_a_damaged_file_is_made_again(folder: Path) -> None:
    parser._lark()
    (saved,) = folder.glob("parser-*.lark")
    saved.write_bytes(saved.read_bytes()[:1000])  # cut short, as by a crash of an older writer
    parser._lark.cache_clear()
    assert compile_file(HERE / "conformance" / "timers.st").python_source
    assert parser._lark().source_path != "<deserialized>"  # built again
    parser._lark.cache_clear()
    parser._lark()
    assert parser._lark().source_path == "<deserialized>"  # and written again, whole


def test_a_folder_others_may_write_is_not_used(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o777)
    assert cache_folder() is None
    assert compile_file(HERE / "conformance" / "timers.st").python_source
    assert list(folder.iterdir()) == []


def test_a_folder_that_cannot_be_made_means_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    assert cache_folder() is None
    parser._lark.cache_clear()
    try:
        assert compile_file(HERE / "conformance" / "timers.st").python_source
    finally:
        parser._lark.cache_clear()
