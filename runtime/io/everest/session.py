"""What one EVSE has reported, and the EV_SESSION fields (with qualities) the program gets from it.

Messages update *facts* (``state``, ``soc``, ``car_charge_max_w``, ...); the record fields are derived
from the facts and the EVSE's configuration. A message that cannot be used marks the facts of its topic
BAD (values unchanged); a later good message of that topic clears them. Used under the driver's lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...executor.driver_api import Quality, Sample
from .config import EvseConfig

# which record fields each fact feeds
FACT_FIELDS: dict[str, tuple[str, ...]] = {
    "state": ("connected", "bidirectional_allowed", "p_discharge_max_w"),
    "present_w": ("p_present_w",),
    "soc": ("soc_pct", "e_max_wh", "e_min_wh"),
    "departure": ("departure_time",),
    "car_charge_max_w": ("p_charge_max_w",),
    "car_discharge_max_w": ("p_discharge_max_w", "bidirectional_allowed"),
    "remaining_wh": ("e_target_wh",),
    "capacity_wh": ("e_max_wh", "e_min_wh"),
    "bpt": ("bidirectional_allowed", "p_discharge_max_w"),
}
# which facts each topic carries
TOPIC_FACTS: dict[str, tuple[str, ...]] = {
    "session_info": ("state", "present_w"),
    "ev_info": ("soc", "departure", "car_charge_max_w", "car_discharge_max_w", "remaining_wh", "capacity_wh"),
    "powermeter": ("present_w",),
    "supported_energy_transfer_modes": ("bpt",),
}
_EV_FACTS = TOPIC_FACTS["ev_info"]
# ev_info is a snapshot of what is known about the car: a key it leaves out is no longer known
_SNAPSHOT_TOPICS = frozenset({"ev_info"})


class EvseSession:
    """Facts, derived fields and reporting state of one EVSE."""

    def __init__(self, config: EvseConfig, connected_states: tuple[str, ...]) -> None:
        self.config = config
        self.connected_states = frozenset(connected_states)
        self.facts: dict[str, object] = {}
        self.bad: dict[str, str] = {}  # fact -> why it is unusable
        self.stamps: dict[str, int] = {}  # field -> acquisition time (driver clock, ns)
        self.heard_ns: int | None = None
        self.dirty = False
        self.reported_liveness: Quality | None = None
        self.sent: dict[str, tuple[object, Quality, int | None]] = {}  # path -> what the program last got

    # ------------------------------------------------------------ messages (network thread)
    def heard(self, now_ns: int) -> None:
        """Any message of the module, heartbeats included: EVerest publishes on change only, so a module
        that is heard vouches for its last published state; every field is fresh as of now."""
        for field in self.config.inputs:
            self.stamps[field] = now_ns
        self.dirty = True
        self.heard_ns = now_ns

    def update(
        self, topic: str, facts: Mapping[str, object], problems: Mapping[str, str], now_ns: int
    ) -> None:
        """Apply one message of ``topic`` (already checked) received at ``now_ns``."""
        self.heard(now_ns)
        was_connected = self.connected
        for fact in TOPIC_FACTS[topic]:
            self.bad.pop(fact, None)
            if topic in _SNAPSHOT_TOPICS and fact not in facts and fact not in problems:
                self.facts.pop(fact, None)
        self.bad.update(problems)
        for fact, value in facts.items():
            self.facts[fact] = value
            for field in FACT_FIELDS[fact]:
                self.stamps[field] = now_ns
        if was_connected and not self.connected:
            for fact in _EV_FACTS:  # the car left: nothing it said applies any more
                self.facts.pop(fact, None)
                self.bad.pop(fact, None)
        self.dirty = True

    def unusable(self, topic: str, reason: str, now_ns: int) -> None:
        """A message of ``topic`` that could not be read at all: its facts turn BAD."""
        self.heard(now_ns)
        for fact in TOPIC_FACTS[topic]:
            self.bad[fact] = reason
        self.dirty = True

    # ------------------------------------------------------------ derived record
    @property
    def connected(self) -> bool:
        return self.facts.get("state") in self.connected_states

    def fields(self) -> dict[str, object]:
        """Every record field the EVSE fills, from the current facts (typed zeros when unknown)."""
        facts = self.facts
        config = self.config
        connected = self.connected
        soc = _real(facts.get("soc"))
        capacity = _real(facts.get("capacity_wh"))
        discharge_possible = connected and config.allow_discharge and bool(facts.get("bpt"))
        car_discharge = facts.get("car_discharge_max_w")
        discharge_max = _real(car_discharge) if car_discharge is not None else config.max_discharge_w
        if not discharge_possible:
            discharge_max = 0.0
        min_soc = config.min_soc_pct or 0.0
        known_soc = "soc" in facts
        departure = facts.get("departure")
        return {
            "connected": connected,
            "bidirectional_allowed": discharge_possible and discharge_max > 0.0,
            "soc_pct": soc,
            "min_soc_pct": min_soc,
            "departure_time": departure if isinstance(departure, int) else 0,
            "p_charge_max_w": _real(facts.get("car_charge_max_w")),
            "p_discharge_max_w": discharge_max,
            "e_target_wh": _real(facts.get("remaining_wh")),
            "e_min_wh": capacity * max(0.0, min_soc - soc) / 100.0 if known_soc else 0.0,
            "e_max_wh": capacity * (100.0 - soc) / 100.0 if known_soc else 0.0,
            "p_present_w": _real(facts.get("present_w")),
        }

    def bad_fields(self) -> set[str]:
        return {field for fact in self.bad for field in FACT_FIELDS[fact]}

    # ------------------------------------------------------------ reporting (scan thread)
    def liveness(
        self, now_ns: int, stale_ns: int, broker_up: bool, up_since_ns: int | None
    ) -> Quality | None:
        """GOOD while the EVSE is heard; STALE when it went quiet; COMM_LOST without a broker or when
        never heard within the freshness limit; None while it may still introduce itself."""
        if not broker_up:
            return Quality.COMM_LOST
        if self.heard_ns is None:
            if up_since_ns is not None and now_ns - up_since_ns > stale_ns:
                return Quality.COMM_LOST
            return None
        return Quality.STALE if now_ns - self.heard_ns > stale_ns else Quality.GOOD

    def samples(self, liveness: Quality, out: dict[str, Sample]) -> None:
        """Add the samples whose value, quality or time (a GOOD field heard again) changed since the
        program last got them."""
        values = self.fields() if self.heard_ns is not None else {}
        bad = self.bad_fields() if liveness is Quality.GOOD else set()
        for field, path in self.config.inputs.items():
            value = values.get(field)
            quality = (
                liveness if liveness is not Quality.GOOD else Quality.BAD if field in bad else Quality.GOOD
            )
            if quality is not Quality.GOOD and path in self.sent:
                value = self.sent[path][0]  # a value that is not GOOD keeps the last one the program had
            stamp = self.stamps.get(field, 0)
            key = (value, quality, stamp if quality is Quality.GOOD else None)
            if self.sent.get(path) != key:
                self.sent[path] = key
                out[path] = Sample(value, quality, stamp)
        self.dirty = False
        self.reported_liveness = liveness


def _real(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
