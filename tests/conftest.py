"""Suite-wide hooks. With pytest-xdist (the README's ``-n 2 --dist loadfile``) the files marked
``slow`` are handed out first, so the two processes do not end with one of them still running a
long file alone; a plain ``pytest`` keeps the collection order."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: nothing to balance
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    # stable: every worker computes the same order, which xdist requires
    items.sort(key=lambda item: item.path not in slow_files)
