"""Request routing of the dashboard's JSON API: a table of (method, path pattern) -> handler.

Handlers take a ``Request`` and return ``(status, json_value)`` or raise ``ApiError``, which the
server turns into ``{"error": "..."}`` with that status. Patterns are literal paths with ``<name>``
segments (``/api/tasks/<name>/restart``). Routes flagged ``write`` need the token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..errors import PlcrunError


class ApiError(PlcrunError):
    """A request the API refuses: HTTP ``status`` and a message for the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    def text(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def texts(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if raw == "":
            return default
        try:
            number = int(raw)
        except ValueError:
            raise ApiError(400, f"query parameter '{name}' must be an integer, got '{raw}'") from None
        if not low <= number <= high:
            raise ApiError(400, f"query parameter '{name}' must be in {low}..{high}, got {number}")
        return number


Handler = Callable[[Request], tuple[int, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    write: bool
    summary: str
    regex: re.Pattern[str]


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, summary: str, *, write: bool = False) -> None:
        regex = re.compile("^" + re.sub(r"<([a-z_]+)>", r"(?P<\1>[^/]+)", pattern) + "$")
        self.routes.append(Route(method, pattern, handler, write, summary, regex))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method path``; ``ApiError`` 404 (unknown path) or 405 (other method)."""
        allowed: list[str] = []
        for route in self.routes:
            found = route.regex.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                f"{method} is not allowed on {path} (use {', '.join(sorted(set(allowed)))})",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, f"no such endpoint: {path} (GET /api lists them)")

    def index(self) -> list[dict[str, object]]:
        return [
            {"method": r.method, "path": r.pattern, "token": r.write, "summary": r.summary}
            for r in self.routes
        ]
