"""Scan-time diagnostics dashboard served by the runtime itself."""
