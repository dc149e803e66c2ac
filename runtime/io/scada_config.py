"""The ``[server]`` table of the site configuration: where the SCADA-facing Modbus TCP server listens.

``parse_server_config(table, file)`` turns the raw TOML table into a frozen ``ScadaConfig`` or raises
``ConfigError(file, "server.<key>", problem)``. The server listens on loopback unless the engineer
opts in to remote access with ``allow_remote = true``. docs/scada-server.md describes every key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from .config_reader import FailFast, ProblemPolicy, TableReader, is_loopback

DEFAULT_PORT = 1502  # 502 needs root; SCADA masters can be pointed at any port
DEFAULT_MEMORY_BASE = 1000


REGISTER_TYPES: dict[str, tuple[str, int]] = {  # register type -> (IEC type of its raw value, registers)
    "int16": ("INT", 1),
    "uint16": ("UINT", 1),
    "int32": ("DINT", 2),
    "uint32": ("UDINT", 2),
    "float32": ("REAL", 2),
}


@dataclass(frozen=True)
class NamedRegister:
    """A program variable served by name: ``[server.registers] "main.status" = { address = 0, ... }``."""

    path: str
    key: str
    address: int  # first holding register
    type: str  # int16, uint16, int32, uint32, float32
    scale: float = 1.0  # register = value x scale (a write: value = register / scale)
    writable: bool = False  # access = "rw": SCADA may write it (it reaches the program at the next scan)


@dataclass(frozen=True)
class ScadaConfig:
    """Validated server settings. ``port = 0`` asks the OS for a free port (tests)."""

    file: str = "<defaults>"
    bind: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unit: int = 1  # 0 answers every unit id
    memory_base: int = DEFAULT_MEMORY_BASE  # %M addresses start here in the coil and holding tables
    word_order: str = "big"  # "big": most significant register first
    allow_remote: bool = False
    max_connections: int = 16  # more are closed at once
    max_requests_per_s: float = 50.0  # per connection; more are answered 06 SERVER DEVICE BUSY
    registers: tuple[NamedRegister, ...] = ()  # variables served by name (holding registers)


def parse_server_config(
    table: Mapping[str, object] | None, file: str, problems: ProblemPolicy | None = None
) -> ScadaConfig:
    """Validate the ``[server]`` table of ``file`` (None: all defaults)."""
    if table is None:
        return ScadaConfig(file=file)
    reader = TableReader(table, "server", problems or FailFast(file))
    allow_remote = reader.boolean("allow_remote", False)
    bind = reader.string("bind", "127.0.0.1")
    if bind != "localhost":
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            reader.fail("bind", f"{bind!r} is not an IP address (e.g. '127.0.0.1')")
    if not is_loopback(bind) and not allow_remote:
        reader.fail(
            "bind",
            f"{bind} is not a loopback address: serving the process image to other hosts must be "
            "enabled explicitly with allow_remote = true",
        )
    port = reader.integer("port", DEFAULT_PORT, minimum=0, maximum=65535)
    unit = reader.integer("unit", 1, minimum=0, maximum=255)
    memory_base = reader.integer("memory_base", DEFAULT_MEMORY_BASE, minimum=1, maximum=65535)
    word_order = reader.string("word_order", "big", choices=("big", "little"))
    max_connections = reader.integer("max_connections", 16, minimum=1, maximum=1000)
    max_requests = reader.number("max_requests_per_s", 50.0, minimum=1.0, maximum=100_000.0)
    registers = _named_registers(reader.table("registers"))
    reader.finish()
    return ScadaConfig(
        file=file,
        bind=bind,
        port=port,
        unit=unit,
        memory_base=memory_base,
        word_order=word_order,
        allow_remote=allow_remote,
        max_connections=max_connections,
        max_requests_per_s=max_requests,
        registers=registers,
    )


def _named_registers(table: TableReader | None) -> tuple[NamedRegister, ...]:
    if table is None:
        return ()
    found: list[NamedRegister] = []
    for path, entry in table.sub_tables():
        address = entry.integer("address", None, required=True, minimum=0, maximum=65535)
        kind = entry.string("type", "uint16", choices=tuple(REGISTER_TYPES)) or "uint16"
        scale = entry.number("scale", 1.0) or 1.0
        access = entry.string("access", "r", choices=("r", "rw"))
        entry.finish()
        if address is None:
            continue
        if address + REGISTER_TYPES[kind][1] - 1 > 65535:
            table.problem(path, f"a {kind} at {address} would pass register 65535")
            continue
        found.append(NamedRegister(path.strip().lower(), entry.key, address, kind, scale, access == "rw"))
    return tuple(found)
