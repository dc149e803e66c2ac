"""cli_native: while ``plcrun run --native`` builds (30-50 s, before the session's handlers exist), a
SIGHUP is ignored with a word instead of ending the process (its default action); afterwards the
previous handler is back."""

from __future__ import annotations

import os
import signal

import pytest
from plcrun.cli_native import hangups_ignored


def test_a_hangup_during_the_build_is_ignored_with_a_word(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGHUP)
    with hangups_ignored():
        os.kill(os.getpid(), signal.SIGHUP)
    assert "SIGHUP ignored: the native build is running" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGHUP) is before
