"""ISO 15118 sessions with the cars (plcrun as the SECC): EV data into EV_SESSION records, setpoints out
as the SECC's charge-loop targets. The SECCs run in a separate process with their own Python
environment (``secc_process/``, files run by that Python, not a package of plcrun: they import only
the standard library, the iso15118 package and ``wire.py``). See
docs/iso15118.md.

The site-configuration loader calls ``parse_iso15118_config``; the executor sees ``Iso15118Driver``.
"""

from __future__ import annotations

from .config import DEFAULT_PYTHON, EvseConfig, Iso15118Config, parse_iso15118_config
from .driver import Iso15118Driver

__all__ = ["DEFAULT_PYTHON", "EvseConfig", "Iso15118Config", "Iso15118Driver", "parse_iso15118_config"]
