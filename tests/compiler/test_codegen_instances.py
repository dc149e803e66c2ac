"""An instance's outputs read after its call in the same statement list come from the local the call
put the instance in (``self.v_after_a = _fb1.v_n``); reads the call does not dominate (after an IF
branch, in a REPEAT's UNTIL, after a call with EN) read the instance. Values:
``conformance/instance_reads.st``."""

from __future__ import annotations

from pathlib import Path

from plcrun.compiler.api import compile_file

CASE = Path(__file__).parent / "conformance" / "instance_reads.st"


def test_only_reads_after_an_unconditional_call_use_its_local() -> None:
    source = compile_file(CASE).python_source
    body = source[source.index("    def _body", source.index("class P_P:")) :]
    assert "self.v_after_a = _fb1.v_n" in body
    assert "self.v_in_branch = _fb2.v_n" in body
    assert "self.v_after_b = self.v_b.v_n" in body
    assert "if (self.v_c.v_n >= 4):" in body
    assert "self.v_after_d = self.v_d.v_n" in body
