"""RealtimeSession.reload_program: a reload asked for while one runs (SIGHUP during a native build of
30-50 s) is not lost: the running one reads the file again when it ends, once however many came."""

from __future__ import annotations

import threading
from pathlib import Path

from plcrun.compiler.api import compile_file
from plcrun.executor.clock import VirtualClock
from plcrun.executor.engine import Executor
from plcrun.executor.runner import RealtimeSession
from plcrun.state.program import CompiledProgram

PROGRAMS = Path(__file__).parent / "programs"


def test_reloads_asked_for_during_a_reload_make_it_read_the_file_once_more() -> None:
    executor = Executor(compile_file(PROGRAMS / "online_v1.st"), clock=VirtualClock())
    executor.run(max_scans=2)
    building = threading.Event()
    finish = threading.Event()
    versions: list[str] = []

    def reload() -> CompiledProgram:
        versions.append("v2" if versions else "v1")
        if len(versions) == 1:  # the first reload is a long build
            building.set()
            assert finish.wait(30)
        return compile_file(PROGRAMS / f"online_{versions[-1]}.st")

    session = RealtimeSession(executor, reload=reload)
    first = threading.Thread(target=session.reload_program)
    first.start()
    assert building.wait(30)
    session.reload_program()  # both return at once: one reload runs
    session.reload_program()
    assert versions == ["v1"]
    finish.set()
    first.join(30)
    assert not first.is_alive()
    assert versions == ["v1", "v2"]  # read once more, after the first
    executor.run(max_scans=1)
    assert executor.read("main.added") == 42  # the second version is the one running
