"""The code of the SECC process (run with the SECC environment's Python, not imported by plcrun) and
the line protocol both sides share (``wire``, standard library only)."""
