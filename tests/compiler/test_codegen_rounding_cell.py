"""An assignment of LREAL_TO_REAL(x) rounds through the state's float32 cell (``_F32``) like an
implicit REAL rounding, not by a call, with the same values: nearest binary32, overflow to
infinity, NaN kept."""

from __future__ import annotations

import math
from pathlib import Path

from plcrun.compiler.api import compile_file
from plcrun.site import run_cycles

_SOURCE = """PROGRAM p
VAR
  big : LREAL := 1.0E300; third : LREAL := 0.1; nan : LREAL;
  r_big : REAL; r_third : REAL; r_nan : REAL; r_neg : REAL; r_sum : REAL;
END_VAR
nan := SQRT(-1.0);
r_big := LREAL_TO_REAL(big);
r_third := LREAL_TO_REAL(third / 3.0);
r_nan := LREAL_TO_REAL(nan);
r_neg := LREAL_TO_REAL(-big);
r_sum := LREAL_TO_REAL(third) + LREAL_TO_REAL(third * 2.0);
END_PROGRAM
CONFIGURATION c RESOURCE x ON PLC TASK t (INTERVAL := T#10ms, PRIORITY := 1); PROGRAM p WITH t : p;
END_RESOURCE END_CONFIGURATION
"""


def test_lreal_to_real_assignment_rounds_through_the_cell(tmp_path: Path) -> None:
    path = tmp_path / "cell.st"
    path.write_text(_SOURCE)
    program = compile_file(path)
    assert "_F32[0] = self.v_big\n        self.v_r_big = _F32[0]" in program.python_source
    values = run_cycles(program, 1).values["p"]
    assert values["r_big"] == math.inf and values["r_neg"] == -math.inf
    assert values["r_third"] == 0.03333333507180214  # the nearest binary32 of 0.1 / 3
    assert values["r_nan"] is None or math.isnan(values["r_nan"])
    assert values["r_sum"] == 0.30000001192092896
