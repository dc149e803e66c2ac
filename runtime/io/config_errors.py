"""The error raised for a bad site configuration: it names the file, the key and the problem."""

from __future__ import annotations

from ..errors import PlcrunError


class ConfigError(PlcrunError):
    """A configuration problem found before anything starts.

    ``key`` is the dotted TOML path of the offending entry, e.g. ``devices.site-meter.port``.
    """

    file: str
    key: str

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
