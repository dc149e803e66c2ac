"""Batching: which registers to read in one request.

Every point needs one or more register runs ("items": its value, maybe a scale-factor register).
Items of the same table that touch or overlap are read together, up to the Modbus request limit;
``max_gap`` lets a request span a few unused registers. Items known to raise an exception are left
out and never covered by a gap, so one unsupported register cannot spoil the whole request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .model import BIT_TABLES, MAX_READ_BITS, Table


@dataclass(frozen=True, slots=True, order=True)
class Item:
    """A run of registers (or bits) a point needs."""

    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Block:
    """One read request and the items it serves."""

    table: Table
    address: int
    count: int
    items: tuple[Item, ...]


def plan_blocks(
    items: Iterable[Item], max_registers: int, max_gap: int, exclude: frozenset[Item]
) -> list[Block]:
    """Group ``items`` (minus ``exclude``) into as few read requests as the limits allow."""
    wanted = sorted({item for item in items if item not in exclude})
    blocks: list[Block] = []
    current: list[Item] = []
    start = end = 0
    for item in wanted:
        limit = MAX_READ_BITS if item.table in BIT_TABLES else max_registers
        if current and current[0].table == item.table:
            gap_ok = item.address <= end + max_gap and not any(
                bad.table == item.table and bad.address < item.address and bad.end > end for bad in exclude
            )
            if gap_ok and max(end, item.end) - start <= limit:
                current.append(item)
                end = max(end, item.end)
                continue
        if current:
            blocks.append(Block(current[0].table, start, end - start, tuple(current)))
        current, start, end = [item], item.address, item.end
    if current:
        blocks.append(Block(current[0].table, start, end - start, tuple(current)))
    return blocks
