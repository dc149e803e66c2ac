"""plcrun: run IEC 61131-3 Structured Text control programs in a deterministic scan cycle."""

__version__ = "0.1.0"
