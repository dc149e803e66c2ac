"""``plcrun`` called in this process (``cli.main``), with its output captured: what a subprocess
would show, without starting a new interpreter per call (the suite makes hundreds of such calls).
Commands that run in real time (signal handlers, real-time setup) are tested as subprocesses."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

from plcrun.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or os.getcwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse: --help, usage errors
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return subprocess.CompletedProcess(["plcrun", *args], code, out.getvalue(), err.getvalue())
