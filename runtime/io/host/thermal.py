"""The kernel's thermal zones (``/sys/class/thermal/thermal_zone*/{type,temp}``, millidegrees C).

``root`` is the file-system root the tree is read under (``/`` on a gateway, a fake tree in tests).
Some zones fail to read (ACPI zones answer EIO or ENODATA on many boards): such a zone carries its
error instead of a temperature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

THERMAL_DIR = Path("sys/class/thermal")
_ZONE = re.compile(r"^thermal_zone(\d+)$")


@dataclass(frozen=True, slots=True)
class ThermalZone:
    name: str  # thermal_zone0
    type: str  # x86_pkg_temp, cpu-thermal, acpitz ...
    temp_c: float | None
    error: str = ""


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace").strip()


def read_thermal_zones(root: Path = Path("/"), types: tuple[str, ...] = ()) -> list[ThermalZone]:
    """Every zone (or those whose type is in ``types``), in zone-number order."""
    base = root / THERMAL_DIR
    try:
        entries = [(int(m.group(1)), p) for p in base.iterdir() if (m := _ZONE.match(p.name))]
    except OSError:
        return []
    zones = []
    for _number, path in sorted(entries):
        try:
            kind = _read(path / "type")
        except OSError:
            kind = "?"
        if types and kind not in types:
            continue
        try:
            zones.append(ThermalZone(path.name, kind, int(_read(path / "temp")) / 1000.0))
        except OSError as error:
            zones.append(ThermalZone(path.name, kind, None, error.strerror or str(error)))
        except ValueError:
            zones.append(ThermalZone(path.name, kind, None, "not a number"))
    return zones


def hottest_zone(zones: list[ThermalZone]) -> ThermalZone | None:
    readable = [z for z in zones if z.temp_c is not None]
    return max(readable, key=lambda z: z.temp_c or 0.0) if readable else None
