"""The seeded mutation fuzz (bench/st_fuzz.py) over every shipped ``.st`` file, small enough for CI:
every mutant ends in diagnostics, a program that runs, or a positioned runtime fault; no Python
exception escapes. The longer run is ``python bench/st_fuzz.py`` (figures in bench/README.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = 250  # about 20 s here


def _load() -> ModuleType:
    if "st_fuzz" in sys.modules:
        return sys.modules["st_fuzz"]
    spec = importlib.util.spec_from_file_location("st_fuzz", ROOT / "bench" / "st_fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["st_fuzz"] = module
    spec.loader.exec_module(module)
    return module


def test_every_shipped_st_file_is_fuzzed() -> None:
    st_fuzz = _load()
    names = {str(p.relative_to(ROOT)).split("/")[0] for p in st_fuzz.shipped_files()}
    assert names == {"stdlib", "programs", "examples", "bench", "tests"}
    assert len(st_fuzz.shipped_files()) >= 40


def test_mutants_only_give_diagnostics_programs_or_faults() -> None:
    st_fuzz = _load()
    outcome = st_fuzz.fuzz(MUTANTS, seed=20261205)
    assert outcome.mutants == MUTANTS
    assert outcome.escaped == []
    assert outcome.diagnosed > MUTANTS // 2 and outcome.ran > 0  # the mutations reach both outcomes


def test_mutants_are_reproducible() -> None:
    st_fuzz = _load()
    texts = ["PROGRAM p VAR x : INT; END_VAR x := x + 1; END_PROGRAM", "PROGRAM q END_PROGRAM"]
    assert st_fuzz.make_mutant(3, 17, texts) == st_fuzz.make_mutant(3, 17, texts)
    assert st_fuzz.make_mutant(3, 17, texts) != st_fuzz.make_mutant(4, 17, texts)
