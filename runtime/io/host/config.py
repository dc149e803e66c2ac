"""The ``[host]`` table of a site configuration: which ST variables get the CPU temperature and the
over-temperature flag, and the alarm threshold. docs/deployment.md describes every key::

    [host]
    cpu_temp = "main.cpu_temp_c"   # REAL or LREAL: the hottest thermal zone, degrees C
    cpu_hot = "main.cpu_hot"       # BOOL: TRUE while the over-temperature alarm is raised
    alarm_c = 85.0                 # raise alarm host:cpu_temp at or above this
    clear_c = 80.0                 # clear it at or below this (default alarm_c - 5)
    zones = ["x86_pkg_temp"]       # only these zone types (default: every zone)
    poll_s = 1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..config_reader import FailFast, TableReader

FLOAT_TYPES = ("REAL", "LREAL")


@dataclass(frozen=True, slots=True)
class HostConfig:
    cpu_temp_path: str | None = None
    cpu_hot_path: str | None = None
    alarm_c: float = 85.0
    clear_c: float = 80.0
    zones: tuple[str, ...] = ()
    poll_s: float = 1.0


def _bound(reader: TableReader, key: str, catalog: Mapping[str, str], types: tuple[str, ...]) -> str | None:
    path = reader.string(key, None)
    if path is None:
        return None
    folded = {p.casefold(): p for p in catalog}
    found = folded.get(path.casefold())
    if found is None:
        reader.fail(key, f"unknown variable '{path}': the program has no such bindable variable")
    st_type = catalog[found].strip().upper()
    if st_type not in types:
        reader.fail(key, f"'{found}' is {st_type}; it must be {' or '.join(types)}")
    return found


def parse_host_config(table: Mapping[str, object], file: str, catalog: Mapping[str, str]) -> HostConfig:
    """Validate the ``[host]`` table of ``file`` against the program's ``catalog``."""
    reader = TableReader(table, "host", FailFast(file))
    cpu_temp = _bound(reader, "cpu_temp", catalog, FLOAT_TYPES)
    cpu_hot = _bound(reader, "cpu_hot", catalog, ("BOOL",))
    alarm_c = reader.number("alarm_c", 85.0, minimum=20.0, maximum=150.0)
    clear_c = reader.number("clear_c", alarm_c - 5.0, minimum=0.0, maximum=150.0)
    if clear_c >= alarm_c:
        reader.fail("clear_c", f"must be below alarm_c ({alarm_c:g} °C), got {clear_c:g} °C")
    zones = tuple(reader.string_list("zones", []))
    poll_s = reader.number("poll_s", 1.0, minimum=0.1, maximum=60.0)
    reader.finish()
    if cpu_temp is None and cpu_hot is None:
        reader.fail("cpu_temp", "bind cpu_temp (a REAL) or cpu_hot (a BOOL) to a program variable")
    return HostConfig(cpu_temp, cpu_hot, alarm_c, clear_c, zones, poll_s)
