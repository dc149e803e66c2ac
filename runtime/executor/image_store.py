"""How the process image stores input values fast: a value of the variable's own Python type that
fits is stored straight into the object that holds the variable (``fast_store``), a group of values
that share quality and stamp in a few C-level passes (``GroupEntry.fit``), and the ages of the EV
sessions' SoCs from one array of stamps (``Ages``). Each gives exactly what the general path
(``input_range.misfit``, then ``accessor.set``) gives; anything it cannot vouch for takes that path.
"""

from __future__ import annotations

import sys
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..compiler import st_types as T
from ..state.program import Accessor

SLOW, LREAL, REAL, INT, BOOL = range(5)
FLOATS = 5  # a group of REAL and LREAL variables (never a single input's kind)


def fast_store(acc: Accessor) -> tuple[int, int, int, Callable[[Any], Any] | None]:
    """(kind, low, high, store) of the process image's fast path for ``acc``: LREAL takes a finite
    float as it is, REAL a float that rounds to a finite binary32, an integer type an int inside its
    range, BOOL True/False; exactly what ``misfit`` accepts and ``accessor.set`` stores for them.
    Anything else (enumerations, strings, other Python types, misfits) takes ``accessor.set``."""
    if acc.holder is None or acc.key is None:
        return SLOW, 0, 0, None
    store = (
        partial(acc.holder.__setitem__, acc.key)
        if isinstance(acc.key, int)
        else partial(setattr, acc.holder, acc.key)
    )
    u = T.underlying(acc.type)
    if u is T.LREAL:
        return LREAL, 0, 0, store
    if u is T.REAL:
        return REAL, 0, 0, store
    if u is T.BOOL:
        return BOOL, 0, 0, store
    if isinstance(u, T.ElementaryType) and u.kind in ("int", "bits", "time", "date"):
        limits = T.int_range(acc.type)
        if limits is not None:
            return INT, limits[0], limits[1], store
    return SLOW, 0, 0, None


_FLOAT = {float}
_INTEGER = {int}
_BOOLEAN = {bool}


def fit(
    kind: int, low: int, high: int, values: Sequence[Any], lreal: Sequence[bool] = ()
) -> Sequence[Any] | None:
    """The values to store for a group of variables of one fast ``kind`` (FLOATS: REAL where
    ``lreal`` is False, LREAL where it is True), or None when any value would not take the fast path
    on its own (then each value takes the per-value path)."""
    types = set(map(type, values))
    if kind == FLOATS:
        if types != _FLOAT:
            return None
        singles: list[float] = array("f", values).tolist()
        mixed = [
            value if keep else single for value, single, keep in zip(values, singles, lreal, strict=True)
        ]
        total = sum(mixed)
        return mixed if total - total == 0.0 else None
    if kind == REAL:
        if types != _FLOAT:
            return None
        rounded: list[float] = array("f", values).tolist()  # binary32, as the per-value cell
        total = sum(rounded)  # finite only if every value is (an overflowing sum: the slow path)
        return rounded if total - total == 0.0 else None
    if kind == LREAL:
        if types != _FLOAT:
            return None
        total = sum(values)
        return values if total - total == 0.0 else None
    if kind == INT:
        return values if types == _INTEGER and min(values) >= low and max(values) <= high else None
    if kind == BOOL:
        return values if types == _BOOLEAN else None
    return None


class Ages:
    """The ``soc_age`` companions of one task's ``soc_pct`` inputs, written every scan: the age of
    every input that has a stamp. ``stamps`` mirrors the inputs' ``stamp_ns`` (the image sets both);
    when no input lacks a stamp (0), none is stamped after now and every age fits the variables, the
    ages are written by straight-line code made for these variables (``_ages_writer``: at 100
    sessions 2.5 µs, against 5.2 for a numpy subtraction and ``map(setattr)``); else one by one
    through the accessors (which convert, e.g. wrap a value beyond the variable's range)."""

    def __init__(self) -> None:
        self.points: list[Any] = []  # the soc_pct InputPoints
        self.accessors: list[Accessor] = []
        self.holders: list[Any] = []
        self.keys: list[str] = []
        self.high = -1  # the largest age the fast pass may store; -1: no fast pass
        self.stamps: list[int] = []
        self._unstamped = 0  # stamps equal to 0
        self._latest = 0  # no stamp is later than this
        self._earliest = 0  # no stamp is earlier than this
        self._write: Callable[[int, list[int]], None] | None = None  # made at the first fast pass

    def add(self, point: Any, age: Accessor) -> int:
        """Adds a soc_pct input and its age variable; returns its index in ``stamps``."""
        kind, _, high, _ = fast_store(age)
        fast = kind == INT and type(age.key) is str and (not self.points or self.high >= 0)
        self.high = min(high, self.high if self.points else high) if fast else -1
        self.points.append(point)
        self.accessors.append(age)
        self.holders.append(age.holder)
        self.keys.append(sys.intern(age.key) if type(age.key) is str else "")
        self._write = None  # made again for the new list of ages
        self.stamps = [int(p.stamp_ns) for p in self.points]
        self._unstamped = self.stamps.count(0)
        self._latest, self._earliest = max(self.stamps), min(self.stamps)
        return len(self.points) - 1

    def stamp(self, index: int | list[int], stamp_ns: int) -> None:
        """Input(s) ``index`` (one, or a list) were stamped ``stamp_ns``."""
        stamps = self.stamps
        if isinstance(index, list):
            for one in index:
                stamps[one] = stamp_ns
        else:
            stamps[index] = stamp_ns
        if self._unstamped or not stamp_ns:
            self._unstamped = stamps.count(0)
        if stamp_ns > self._latest:
            self._latest = stamp_ns
        elif stamp_ns < self._earliest:
            self._earliest = stamp_ns

    def update(self, clock_ns: int) -> None:
        if (
            not self._unstamped
            and self.high >= 0
            and self._latest <= clock_ns
            and clock_ns - self._earliest <= self.high
        ):
            write = self._write
            if write is None:
                write = self._write = _ages_writer(self.holders, self.keys)
            write(clock_ns, self.stamps)
            return
        for point, age in zip(self.points, self.accessors, strict=True):
            stamp = point.stamp_ns
            if stamp:
                age.set(clock_ns - stamp if clock_ns > stamp else 0)


def attribute_reader(holders: Sequence[Any], keys: Sequence[str]) -> Callable[[], list[Any]]:
    """``read()``: the list of ``getattr(holders[i], keys[i])``, by straight-line code made for
    them (at 100 outputs 0.8 µs against 3.0 for ``list(map(getattr))``); keys that are not plain
    names fall back to ``map(getattr)``."""
    if not all(key.isidentifier() for key in keys):
        return lambda: list(map(getattr, holders, keys))
    args = ", ".join(f"h{i}=holders[{i}]" for i in range(len(keys)))
    items = ", ".join(f"h{i}.{key}" for i, key in enumerate(keys))
    namespace: dict[str, Any] = {}
    source = f"def make(holders):\n  def read({args}):\n    return [{items}]\n  return read"
    exec(source, namespace)  # code made here from names checked above
    read: Callable[[], list[Any]] = namespace["make"](list(holders))
    return read


def unchanged_reader(
    holders: Sequence[Any], keys: Sequence[str], paths: Sequence[str]
) -> Callable[[], dict[str, Any]] | None:
    """``read()``: {paths[i]: getattr(holders[i], keys[i])} in one function made for them, which
    gives the mapping of the last call again when every value equals the last ones (the outputs of
    a driver that takes them by value: the mapping is never changed after it was handed over).
    None when a key is not a plain name."""
    if not all(key.isidentifier() for key in keys):
        return None
    args = ", ".join(f"h{i}=holders[{i}]" for i in range(len(keys)))
    items = ", ".join(f"h{i}.{key}" for i, key in enumerate(keys))
    source = "\n".join(
        [
            "def make(holders, paths):",
            "  last = [None, {}]",  # the last values and the mapping made of them
            f"  def read({args}):",
            f"    values = [{items}]",
            "    if values == last[0]:",
            "      return last[1]",
            "    last[0], last[1] = values, dict(zip(paths, values, strict=True))",
            "    return last[1]",
            "  return read",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # code made here from names checked above
    read: Callable[[], dict[str, Any]] = namespace["make"](list(holders), list(paths))
    return read


def _ages_writer(holders: Sequence[Any], keys: Sequence[str]) -> Callable[[int, list[int]], None]:
    """``write(clock_ns, stamps)``: every age variable set to ``clock_ns - stamps[i]`` in
    straight-line code (for a few sessions cheaper than a list of ages and ``map(setattr)``); keys
    that are not plain names fall back to ``setattr``."""
    if not keys or not all(key.isidentifier() for key in keys):

        def write_each(clock_ns: int, stamps: list[int]) -> None:
            deque(map(setattr, holders, keys, [clock_ns - stamp for stamp in stamps]), maxlen=0)

        return write_each
    args = ", ".join(f"h{i}=holders[{i}]" for i in range(len(keys)))
    body = [
        "def make(holders):",
        f"  def write(clock_ns, stamps, {args}):",
        "    " + "".join(f"s{i}, " for i in range(len(keys))) + "= stamps",  # one unpack, not n subscripts
        *(f"    h{i}.{key} = clock_ns - s{i}" for i, key in enumerate(keys)),
        "  return write",
    ]
    namespace: dict[str, Any] = {}
    exec("\n".join(body), namespace)  # code made here from names checked above
    write: Callable[[int, list[int]], None] = namespace["make"](list(holders))
    return write


class GroupEntry:
    """What the image knows about one tuple of input paths a driver delivers as a group: its points
    (None for a path the image does not bind), where their variables live and, when every one is an
    attribute of the same fast kind, that kind and the range its values must fit."""

    __slots__ = (
        "age_index",
        "ages",
        "high",
        "holders",
        "keys",
        "kind",
        "low",
        "lreal",
        "paths",
        "points",
        "store",
    )  # fmt: skip

    def __init__(self, paths: tuple[str, ...], points: list[Any], ages: Ages | None) -> None:
        self.paths = paths  # held: the image looks entries up by the tuple's id
        self.points = points
        kinds = {p.kind if p is not None else SLOW for p in points}
        accessors = [p.accessor for p in points if p is not None]
        attributes = all(type(a.key) is str and a.holder is not None for a in accessors)
        self.kind = SLOW
        if attributes and points and len(kinds) == 1:
            self.kind = next(iter(kinds))
        elif attributes and kinds == {REAL, LREAL}:
            self.kind = FLOATS
        self.lreal = [p.kind == LREAL for p in points if p is not None]
        bound = [p for p in points if p is not None]
        made = (
            group_store(
                [p.kind for p in bound], [p.low for p in bound], [p.high for p in bound], bound, paths
            )
            if len(bound) == len(points) and len(set(paths)) == len(paths)
            else None
        )
        self.store = made or no_store  # no_store: every delivery takes the slower paths
        self.low = max((p.low for p in points if p is not None), default=0)
        self.high = min((p.high for p in points if p is not None), default=0)
        self.holders = [a.holder for a in accessors]
        self.keys = [sys.intern(str(a.key)) for a in accessors]
        self.age_index = [p.age_index for p in points if p is not None and p.age_index >= 0]
        self.ages = ages if self.age_index and ages is not None else None


_STORE_MAX = 64  # groups of up to this many inputs get a store function of their own
_ROUND_AT_ONCE = 4  # a group of this many REALs or more is rounded by one array('f')


def no_store(values: Sequence[Any], stamp: int, stamps: dict[str, int], cell: Any) -> bool:
    """The store of a group that has none made for it: it stores nothing."""
    return False


def group_store(
    kinds: Sequence[int],
    lows: Sequence[int],
    highs: Sequence[int],
    points: Sequence[Any],
    paths: Sequence[str],
) -> Callable[[Sequence[Any], int, dict[str, int], Any], bool] | None:
    """A function that stores one delivery of a group of GOOD values, straight-line code made for
    these inputs (each one's type check, binary32 rounding and finiteness test exactly as the
    per-value fast path does them): ``store(values, stamp_ns, stamps, cell)`` writes the
    variables, each point's ``value`` and ``stamp_ns`` and ``stamps[path]``, or returns False
    having written nothing when any value would not take the fast path or ``values`` is not one
    value per input. None when a point is not an attribute of the object that holds it (or the
    group is too large to be worth it)."""
    n = len(points)
    if not n or n > _STORE_MAX or any(k not in (LREAL, REAL, INT, BOOL) for k in kinds):
        return None
    keys = [p.accessor.key for p in points]
    if any(
        type(k) is not str or not k.isidentifier() or p.accessor.holder is None
        for k, p in zip(keys, points, strict=True)
    ):
        return None
    checks: list[str] = []
    rounding: list[str] = []
    stored: list[str] = []
    for i, kind in enumerate(kinds):
        if kind == LREAL:
            checks.append(f"type(v{i}) is float")
            stored.append(f"v{i}")
        elif kind == REAL:
            checks.append(f"type(v{i}) is float")
            rounding.append(f"cell[0] = v{i}")
            rounding.append(f"r{i} = cell[0]")
            stored.append(f"r{i}")
        elif kind == INT:
            checks.append(f"type(v{i}) is int and {lows[i]} <= v{i} <= {highs[i]}")
            stored.append(f"v{i}")
        else:
            checks.append(f"(v{i} is True or v{i} is False)")
            stored.append(f"v{i}")
    if len(rounding) >= 2 * _ROUND_AT_ONCE and all(kind == REAL for kind in kinds):
        # every value a REAL: all rounded to binary32 by one array (the same cast as the cell's)
        rounding = [f"{', '.join(stored)}, = array('f', values).tolist()"]
    floats = [name for name, kind in zip(stored, kinds, strict=True) if kind in (LREAL, REAL)]
    # every stored float finite: one sum is (a NaN or an infinity in it makes the sum one; a sum that
    # overflows only sends the group to the slower paths, which store the same)
    finite = [f"{floats[0]} - {floats[0]} == 0.0"] if len(floats) == 1 else []
    if len(floats) > 1:
        rounding.append(f"total = {' + '.join(floats)}")
        finite = ["total - total == 0.0"]
    names = ", ".join(f"v{i}" for i in range(n))
    args = ", ".join(f"p{i}=points[{i}], h{i}=holders[{i}]" for i in range(n))
    body = [
        "def make(points, holders):",
        f"  def store(values, stamp, stamps, cell, {args}):",
        "    try:",
        f"      {names}, = values",
        "    except ValueError:",  # not one value per input (no cost when there is)
        "      return False",
        f"    if not ({' and '.join(checks)}):",
        "      return False",
        *(f"    {line}" for line in rounding),
        *([f"    if not ({' and '.join(finite)}):", "      return False"] if finite else []),
        *(f"    h{i}.{key} = {value}" for i, (key, value) in enumerate(zip(keys, stored, strict=True))),
        *(f"    p{i}.value = v{i}" for i in range(n)),
        "    " + " = ".join([f"p{i}.stamp_ns" for i in range(n)] + ["stamp"]),
        "    " + " = ".join([f"stamps[{path!r}]" for path in paths] + ["stamp"]),
        "    return True",
        "  return store",
    ]
    namespace: dict[str, Any] = {}
    namespace["array"] = array
    exec("\n".join(body), namespace)  # code made here from names checked above
    made: Callable[[Sequence[Any], int, dict[str, int], Any], bool] = namespace["make"](
        list(points), [p.accessor.holder for p in points]
    )
    return made
