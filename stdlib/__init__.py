"""Grid standard library written in Structured Text (installed as package data)."""
