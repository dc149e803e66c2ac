"""Suite-wide hooks. With pytest-xdist (the README's ``-n 2 --dist loadfile``) the files marked
``slow`` are handed out first, the others by their number of tests, so the two processes do not end
with one of them still running a long file alone; a plain ``pytest`` keeps the collection order.

xdist (3.x) itself orders the files by their number of tests, largest first ("loadscope reorder"):
that put the ISO 15118 files (3-6 tests, a minute or more each) among the last. It is switched off
here (unless ``--loadscope-reorder`` is given), so the order below is the one the files go out in."""

from __future__ import annotations

from collections import Counter

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if (
        hasattr(config.option, "loadscopereorder")
        and "--loadscope-reorder" not in config.invocation_params.args
    ):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: nothing to balance
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    per_file = Counter(item.path for item in items)
    # stable: every worker computes the same order, which xdist requires
    items.sort(key=lambda item: (False, 0) if item.path in slow_files else (True, -per_file[item.path]))
