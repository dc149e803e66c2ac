"""Smoke tests of the benchmark scripts' core functions on tiny inputs, so that they do not rot.

They need neither the OSCAT corpus (a small MatIEC-style corpus is written to a temporary folder)
nor blark (its column is switched off).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from plcrun.compiler.api import compile_source

ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str) -> ModuleType:
    path = ROOT / relative
    name = path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scan_cost = _load("bench/scan_cost.py")
st_interpreter = _load("bench/st_interpreter.py")
oscat_coverage = _load("scripts/oscat_coverage.py")
compile_throughput = _load("bench/compile_throughput.py")


# ------------------------------------------------------------------ interpreter
SMALL = """
TYPE Pair : STRUCT a : INT; b : LREAL := 1.5; END_STRUCT; END_TYPE
FUNCTION twice : DINT
  VAR_INPUT x : DINT; END_VAR
  twice := x * 2;
END_FUNCTION
PROGRAM main
VAR
  count : SINT := 120;
  total : DINT;
  i : INT;
  p : Pair;
  q : Pair;
  arr : ARRAY[0..3] OF DINT := [1, 2, 3, 4];
  delay : TON;
  edge : R_TRIG;
  edges : INT;
  rem : INT;
  ratio : REAL;
END_VAR
count := count + 5;                      (* wraps at 127 *)
total := 0;
FOR i := 0 TO 3 DO
  IF arr[i] MOD 2 = 0 THEN total := total + twice(arr[i]); ELSE total := total - 1; END_IF;
END_FOR;
p.a := p.a + 1;
q := p;                                  (* value copy *)
p.b := p.b * 2.0;
delay(IN := TRUE, PT := T#30ms);
edge(CLK := delay.Q);
IF edge.Q THEN edges := edges + 1; END_IF;
rem := -7 MOD 3;
ratio := 1.0 / 3.0;                      (* REAL rounds to binary32 *)
END_PROGRAM
"""


def test_interpreter_matches_compiled_code_on_a_small_program() -> None:
    state = compile_source(SMALL, "small.st").new_state()
    interp = st_interpreter.Interpreter.from_source(SMALL, "small.st")
    for k in range(6):
        state.run_task_scan("DEFAULT", k * 10_000_000)
        interp.run_scan(k * 10_000_000)
        for path in (
            "main.count",
            "main.total",
            "main.p.a",
            "main.q.a",
            "main.q.b",
            "main.p.b",
            "main.edges",
        ):
            assert interp.read(path) == state.read(path), (k, path)
    assert interp.read("main.count") == state.read("main.count") == 120 + 6 * 5 - 256
    assert interp.read("main.total") == 10
    assert interp.read("main.edges") == 1
    assert interp.read("main.rem") == state.read("main.rem") == -1
    assert interp.read("main.ratio") == state.read("main.ratio") != 1.0 / 3.0


def test_interpreter_reports_an_index_fault() -> None:
    interp = st_interpreter.Interpreter.from_source(
        "PROGRAM m VAR a : ARRAY[1..2] OF INT; k : INT := 3; END_VAR a[k] := 1; END_PROGRAM", "m.st"
    )
    with pytest.raises(st_interpreter.InterpreterError, match=r"outside 1\.\.2"):
        interp.run_scan(0)


# ------------------------------------------------------------------ scan cost
def test_scan_cost_three_implementations_agree_and_time() -> None:
    n_evs = 4
    source = scan_cost.program_source(n_evs)
    assert "N_EVS : DINT := 4;" in source
    runners = scan_cost.make_runners(n_evs)
    scan_cost.verify(runners, 0, 80, n_evs)  # the TON arms at scan 50: the droop path is exercised
    results = runners[0].results()
    assert results[1] is True and results[0] == 1  # armed, one enable edge
    assert any(abs(v) > 0 for v in results[4:]), "some EV must have a non-zero setpoint"
    figures, last = scan_cost.timing(runners, 80, n_evs, reps=2, batch_ms=0.5)
    assert set(figures) == {"compiled", "python", "interpreter"}
    assert all(v > 0 for v in figures.values())
    scan_cost.verify(runners, last, 5, n_evs)


def test_a_state_from_generated_source_runs_like_the_compiled_one() -> None:
    """bench/baseline_codegen.state_from_source (how --baseline-ref runs an earlier compiler's code):
    with this compiler's own source it must behave exactly like the compiled state, and with a
    changed source it must run that source."""
    baseline = sys.modules["baseline_codegen"]
    n_evs = 3
    program = compile_source(scan_cost.program_source(n_evs), "freq_response_3.st")
    same = baseline.state_from_source(program, program.python_source)
    runners = scan_cost.make_runners(n_evs)[:2]
    runners.append(scan_cost.CompiledRunner("from source", same, n_evs, scan_cost.compiled_scan(same)))
    scan_cost.verify(runners, 0, 80, n_evs)
    changed = program.python_source.replace("self.v_enable_count + 1", "self.v_enable_count + 2")
    assert changed != program.python_source
    other = baseline.state_from_source(program, changed)
    scan_cost.compiled_scan(other)(0)
    other.write("freq_response.enable", True)
    for k in range(1, 4):
        scan_cost.compiled_scan(other)(k * scan_cost.SCAN_NS)
    assert other.read("freq_response.enable_count") == 2


def test_scan_cost_verify_notices_a_difference() -> None:
    runners = scan_cost.make_runners(2)
    runners[1].plant.ramp_w_per_scan = 1.0  # the hand-written one now ramps differently
    with pytest.raises(AssertionError, match="python differs"):
        scan_cost.verify(runners, 0, 80, 2)


# ------------------------------------------------------------------ OSCAT coverage
MINI_CORPUS = """TYPE
  MODE : (OFF, ON) := OFF;
END_TYPE

FUNCTION_BLOCK GOOD
  VAR_INPUT X : INT; END_VAR
  VAR_OUTPUT Y : INT; END_VAR
  Y := X + 1;
END_FUNCTION_BLOCK

FUNCTION USES_C : INT
  VAR_INPUT A : INT; END_VAR
  {{ return A; }}
  USES_C := A;
END_FUNCTION

FUNCTION_BLOCK CALLS_BAD
  VAR_OUTPUT R : INT; END_VAR
  VAR G : GOOD; END_VAR
  G(X := 1);
  R := USES_C(G.Y);
END_FUNCTION_BLOCK

FUNCTION_BLOCK TYPO
  VAR_OUTPUT R : INT; END_VAR
  R := nothing_here;
END_FUNCTION_BLOCK

FUNCTION DIVIDES : REAL
  VAR_INPUT A : REAL; B : REAL; END_VAR
  DIVIDES := A / B;
END_FUNCTION
"""


def test_oscat_coverage_attributes_errors_to_pous(tmp_path: Path) -> None:
    path = tmp_path / "mini.st"
    path.write_text(MINI_CORPUS)
    report = oscat_coverage.analyse_file(path, path.name)
    assert [name for name, _ in report.declared] == ["GOOD", "USES_C", "CALLS_BAD", "TYPO", "DIVIDES"]
    pous = report.pous
    assert not pous["GOOD"].errors and pous["GOOD"].clean_with_deps and pous["GOOD"].ran
    assert [d.code for d in pous["USES_C"].errors] == ["E0006"]
    assert not pous["CALLS_BAD"].errors and not pous["CALLS_BAD"].clean_with_deps  # uses USES_C
    assert pous["CALLS_BAD"].deps == {"GOOD", "USES_C"}
    assert [d.code for d in pous["TYPO"].errors] == ["E0101"]
    assert pous["DIVIDES"].generated and not pous["DIVIDES"].ran
    assert "division by zero" in pous["DIVIDES"].fault


def test_oscat_coverage_main_prints_the_table_and_skips_without_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mini.st").write_text(MINI_CORPUS)
    assert oscat_coverage.main(["--corpus", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mini.st" in out and "E0006" in out and "unknown identifier" in out
    assert oscat_coverage.main(["--corpus", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out


def test_matiec_comments_do_not_nest_and_keep_positions() -> None:
    text = "(* a (* b *) c *) x := 1; s := '(*'; (* open"
    rewritten = oscat_coverage.matiec_comments(text)
    assert len(rewritten) == len(text)
    assert rewritten.startswith("(* a (  b *) c *)")
    assert "'(*'" in rewritten  # strings untouched
    assert oscat_coverage.message_pattern("'F' takes 1 arguments, got 2") == "'…' takes N arguments, got N"


# ------------------------------------------------------------------ compile throughput
def test_compile_throughput_splits_items_and_runs_without_blark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = compile_throughput.split_items(MINI_CORPUS)
    assert len(items) == 6 and items[0].startswith("TYPE") and items[-1].startswith("FUNCTION DIVIDES")
    assert "".join(items) == MINI_CORPUS
    (tmp_path / "mini.st").write_text(MINI_CORPUS)
    assert compile_throughput.main(["--corpus", str(tmp_path), "--reps", "1", "--no-blark"]) == 0
    out = capsys.readouterr().out
    assert "plcrun parse_source, whole files" in out and "KB/s" in out
    assert compile_throughput.main(["--corpus", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out


# ------------------------------------------------------------------ hostile load (issue 12)
def test_hostile_load_attackers_connect_send_and_count() -> None:
    """The attackers of bench/hostile_load.py against a plain listening socket on 127.0.0.1, briefly:
    they connect up to their target, send what their phase sends and count it."""
    import socket
    import threading

    hostile_load = _load("bench/hostile_load.py")
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        port = listener.getsockname()[1]
        for attack in (
            hostile_load.Slowloris(port, 5, 1000.0),
            hostile_load.ScadaPoll(port, 5, 1000.0),
            hostile_load.ScadaWrites(port, 2, 1000.0, 500.0),
        ):
            stop = threading.Event()
            runner = threading.Thread(target=attack.run, args=(stop,))
            runner.start()
            accepted = [listener.accept()[0] for _ in range(attack.target)]
            stop.wait(0.3)
            stop.set()
            runner.join(5)
            for connection in accepted:
                connection.close()
            assert attack.counts["connects"] == attack.target and attack.counts["sent"] >= attack.target
            assert attack.open == {}  # run() closes what it opened


# ------------------------------------------------------------------ sim report identity (issue 17)
def test_sim_report_identity_finds_one_changed_byte_and_ignores_report_file_names(tmp_path: Path) -> None:
    """bench/sim_report_identity.py's comparison of two report folders: equal folders and a
    report.json differing only in its file-name keys are identical; one changed byte in a CSV, a
    changed JSON value, a missing file, another exit status are each found."""
    identity = _load("bench/sim_report_identity.py")
    runs = []
    for label in ("before", "now"):
        folder = tmp_path / label
        folder.mkdir()
        (folder / "series.csv").write_text("t_s,grid_hz\n0,50.001\n0.01,49.999\n")
        report = {"passed": True, "metrics": {"max_dev": [1.5, 2.0]}, "picture": f"{label}/report.svg"}
        (folder / "report.json").write_text(json.dumps(report))
        runs.append({"exit": 0, "stdout": "PASS\n", "stderr": "ALARM x\n", "folder": folder})
    before, now = runs
    assert identity.differences(before, now) == []
    (now["folder"] / "series.csv").write_text("t_s,grid_hz\n0,50.001\n0.01,49.998\n")
    assert identity.differences(before, now) == ["series.csv line 3 col 11: b'0.01,49.999' != b'0.01,49.998'"]
    (now["folder"] / "series.csv").write_bytes((before["folder"] / "series.csv").read_bytes())
    (now["folder"] / "report.json").write_text(
        json.dumps({"passed": True, "metrics": {"max_dev": [1.5, 2.5]}})
    )
    assert identity.differences(before, now) == ["report.json .metrics.max_dev[1]: 2.0 != 2.5"]
    (now["folder"] / "report.json").unlink()
    assert identity.differences(before, now) == [
        "report files ['report.json', 'series.csv'] != ['series.csv']"
    ]
    assert identity.differences(before, {**before, "exit": 1}) == ["exit b'0' != b'1'"]
    assert identity.Case.parse("ffr_ramp@100:ffr").name == "ffr_ramp@100:ffr"
    with pytest.raises(SystemExit, match="no built-in scenario"):
        identity.Case.parse("no_such_grid@10")


def test_fixed_blocks_counts_each_block_and_times_the_scan() -> None:
    fixed = _load("bench/fixed_blocks.py")
    result = fixed.child(str(fixed.WRAPPER), 50)
    assert set(result["bytecodes"]) >= {"FB_ROCOF", "FB_MEAS_VALID", "FB_LOSS_OF_GRID", "P_FIXED_BLOCKS"}
    assert all(n > 0 for n in result["bytecodes"].values()) and result["us"] > 0
    assert 49.9 < result["total"] < 50.1  # two RoCoFs of a stepping meter (small) + the filtered 50 Hz


def test_numpy_step_one_matches_the_compiled_block_and_a_change_is_seen() -> None:
    per_car = _load("bench/numpy_per_car.py")
    numpy_us, compiled_us = per_car.measure(10, 2)  # raises SystemExit on any differing bit
    assert numpy_us > 0 and compiled_us > 0
    original = per_car.st_max
    try:  # a wrong MAX (x + 1): the minimum powers, so c_lo, differ
        per_car.st_max = lambda a, b: a + 1.0
        with pytest.raises(SystemExit, match="differs"):
            per_car.measure(10, 1)
    finally:
        per_car.st_max = original
