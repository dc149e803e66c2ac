"""Child of test_threads.py: runs the simulated site as ``plcrun run`` does (``SiteRuntime``, dashboard
on a free port) for a moment and prints, as JSON, the stack size of every thread the runtime started
(read back with ``pthread_getattr_np``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
import threading
from pathlib import Path

from plcrun.compiler.api import compile_file
from plcrun.site import DashboardOptions, SiteRuntime

ROOT = Path(__file__).resolve().parents[2]


def stack_size_of(ident: int) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    attr = ctypes.create_string_buffer(128)
    if libc.pthread_getattr_np(ctypes.c_ulong(ident), attr) != 0:
        return -1
    size = ctypes.c_size_t()
    libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
    libc.pthread_attr_destroy(attr)
    return size.value


def main() -> None:
    before = {thread.ident for thread in threading.enumerate()}
    found: dict[str, int] = {}

    def probe() -> None:
        for thread in threading.enumerate():
            if thread.ident not in before and thread.ident is not None and thread.is_alive():
                found[thread.name] = stack_size_of(thread.ident)

    program = compile_file(ROOT / "programs" / "freq_response.st")
    site = SiteRuntime.build(program, scenario="quiet_grid", dashboard=DashboardOptions(port=0))
    site.run_realtime(0.2, on_started=probe)  # the probe runs once every thread has started
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
