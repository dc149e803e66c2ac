"""The parser's LALR tables, kept between processes.

Lark's analysis of the ST grammar takes 0.2-0.3 s, in every process that compiles (each ``plcrun``
command, each sweep worker). Its result is kept in the user's cache folder (``$PLCRUN_PARSER_CACHE``,
else ``$XDG_CACHE_HOME/plcrun``, else ``~/.cache/plcrun``) under a name made from the grammar, the
parser's options and the versions of lark and Python, and loaded from there by the next process.

The file is lark's own ``Lark.save`` (a pickle), so it is used only in a folder that belongs to this
user and that nobody else may write to. It is written whole (a new file renamed over the old one); a
file that cannot be read or loaded is made again. Where nothing can be written (a read-only home),
the tables are computed in every process, as without a cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import lark
from lark import Lark

CACHE_ENV = "PLCRUN_PARSER_CACHE"


def cache_folder() -> Path | None:
    """The folder for the tables, made if missing (mode 0700); None when it cannot be made or is not
    this user's alone."""
    configured = os.environ.get(CACHE_ENV)
    try:
        if configured:
            folder = Path(configured)
        else:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            folder = Path(base) / "plcrun"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except (OSError, RuntimeError, KeyError):  # no home, a read-only file system
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None  # another user could put a file there
    return folder


def cached_lark(grammar: str, transformer: Any, **options: Any) -> Lark:
    """``Lark(grammar, transformer=transformer, **options)``, its tables from the cache when there."""
    folder = cache_folder()
    path = None if folder is None else folder / f"parser-{_key(grammar, options)}.lark"
    if path is not None:
        # missing, partly written, damaged, from a lark whose loading changed: made again below
        with contextlib.suppress(Exception), path.open("rb") as file:
            loaded = Lark.__new__(Lark)  # as Lark(cache=...) loads, with our transformer
            return loaded._load(file, transformer=transformer)
    parser = Lark(grammar, transformer=transformer, **options)
    if path is not None:
        _save(parser, path)
    return parser


def _key(grammar: str, options: dict[str, Any]) -> str:
    described = sorted(
        (name, f"{value.__module__}.{value.__qualname__}" if isinstance(value, type) else repr(value))
        for name, value in options.items()
    )
    text = repr((grammar, described, lark.__version__, sys.version_info[:2]))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _save(parser: Lark, path: Path) -> None:
    """Written to a new file in the same folder, then renamed over ``path``: a reader finds the old
    file or the new one, whole. A folder that cannot be written is no error (no cache)."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".parser-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            parser.save(file, exclude_options=("transformer",))
        os.replace(name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name)
