"""A small catalogue of typical cars and the seeded generator of random charging sessions.

The entries are generic classes of car, not particular models: battery sizes and charger limits are
typical values (1-phase 32 A = 7.4 kW, 3-phase 16 A = 11 kW, minimum current 6 A per phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CarModel:
    capacity_kwh: float
    p_charge_max_w: float
    p_charge_min_w: float
    p_discharge_max_w: float
    p_discharge_min_w: float
    bidirectional: bool
    weight: float  # relative share among generated cars


ONE_PHASE_MIN_W = 6 * 230.0  # 6 A on one phase
THREE_PHASE_MIN_W = 3 * 6 * 230.0  # 6 A on three phases

CATALOGUE: dict[str, CarModel] = {
    "compact_bidi": CarModel(40.0, 7400.0, ONE_PHASE_MIN_W, 7400.0, ONE_PHASE_MIN_W, True, 2.0),
    "compact_ac": CarModel(45.0, 7400.0, ONE_PHASE_MIN_W, 0.0, 0.0, False, 2.0),
    "midsize_bidi": CarModel(64.0, 11000.0, THREE_PHASE_MIN_W, 11000.0, THREE_PHASE_MIN_W, True, 3.0),
    "midsize_ac": CarModel(60.0, 11000.0, THREE_PHASE_MIN_W, 0.0, 0.0, False, 2.0),
    "large_ac": CarModel(82.0, 11000.0, THREE_PHASE_MIN_W, 0.0, 0.0, False, 1.0),
    "van_bidi": CarModel(75.0, 11000.0, THREE_PHASE_MIN_W, 10000.0, THREE_PHASE_MIN_W, True, 1.0),
}


def model_fields(name: str) -> dict[str, object]:
    """The EvSpec fields a catalogue entry supplies."""
    car = CATALOGUE[name]
    return {
        "capacity_kwh": car.capacity_kwh,
        "p_charge_max_w": car.p_charge_max_w,
        "p_charge_min_w": car.p_charge_min_w,
        "p_discharge_max_w": car.p_discharge_max_w,
        "p_discharge_min_w": car.p_discharge_min_w,
        "bidirectional": car.bidirectional,
        "model": name,
    }


def pick_models(rng: np.random.Generator, names: tuple[str, ...], count: int) -> list[str]:
    """``count`` catalogue names drawn with the entries' weights."""
    weights = np.array([CATALOGUE[name].weight for name in names], dtype=float)
    chosen = rng.choice(len(names), size=count, p=weights / weights.sum())
    return [names[int(i)] for i in chosen]


def random_session(rng: np.random.Generator) -> dict[str, object]:
    """Session values of one generated car: SoC on arrival, V2X floor, target and planned departure."""
    return {
        "soc_pct": round(float(rng.uniform(20.0, 80.0)), 1),
        "min_soc_pct": float(rng.choice([20.0, 30.0, 40.0])),
        "target_soc_pct": float(rng.choice([80.0, 90.0, 100.0])),
        "departure_time_s": float(60 * int(rng.integers(120, 600))),
    }
