"""Synthetic frequency profiles of published grid events, as piecewise-linear (seconds, Hz) points.

Only the key numbers are published (see /work/shared/grid-services.md, "Published grid events"); the
points between them are an illustrative smooth path through those numbers, not a recording. Time 0 is
the moment of the disturbance; the profile starts at 50 Hz and holds its last value afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class EventProfile:
    name: str
    description: str
    points: tuple[tuple[float, float], ...]

    @property
    def duration_s(self) -> float:
        return self.points[-1][0]

    def sample(self, t_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        times = np.array([p[0] for p in self.points])
        values = np.array([p[1] for p in self.points])
        result: npt.NDArray[np.float64] = np.interp(t_s, times, values)
        return result


EVENTS: dict[str, EventProfile] = {
    # Lightning strike and loss of about 1.5 GW: 49.1 Hz within seconds, recovery toward 49.2 Hz,
    # second trip to 48.8 Hz about 76 s after the start (demand disconnection), then minutes to 50 Hz.
    "gb_2019_08_09": EventProfile(
        "gb_2019_08_09",
        "GB 9 Aug 2019: 49.1 Hz within seconds, second trip to 48.8 Hz at ~76 s, slow recovery",
        (
            (0.0, 50.0),
            (2.0, 49.80),
            (5.0, 49.45),
            (9.0, 49.20),
            (13.0, 49.10),
            (20.0, 49.15),
            (35.0, 49.20),
            (56.0, 49.21),
            (60.0, 49.15),
            (68.0, 49.00),
            (76.0, 48.80),
            (80.0, 48.86),
            (95.0, 49.05),
            (130.0, 49.25),
            (180.0, 49.55),
            (240.0, 49.85),
            (280.0, 50.0),
        ),
    ),
    # System split, north-west area: 49.74 Hz within about 15 s, settling near 49.84 Hz.
    "ce_2021_01_08_nw": EventProfile(
        "ce_2021_01_08_nw",
        "Continental Europe 8 Jan 2021, north-west area: 49.74 Hz within ~15 s, settles ~49.84 Hz",
        (
            (0.0, 50.0),
            (3.0, 49.90),
            (8.0, 49.80),
            (15.0, 49.74),
            (25.0, 49.79),
            (40.0, 49.83),
            (60.0, 49.84),
        ),
    ),
    # System split, south-east area: up to 50.6 Hz, settling at 50.2-50.3 Hz.
    "ce_2021_01_08_se": EventProfile(
        "ce_2021_01_08_se",
        "Continental Europe 8 Jan 2021, south-east area: 50.6 Hz, settles at 50.2-50.3 Hz",
        (
            (0.0, 50.0),
            (3.0, 50.30),
            (8.0, 50.55),
            (12.0, 50.60),
            (20.0, 50.45),
            (35.0, 50.30),
            (60.0, 50.25),
        ),
    ),
    # Deterministic frequency deviation: nadir 49.808 Hz, deviation lasting about 9 s.
    "ce_2019_01_10": EventProfile(
        "ce_2019_01_10",
        "Continental Europe 10 Jan 2019: nadir 49.808 Hz, deviation lasting ~9 s",
        (
            (0.0, 50.0),
            (1.5, 49.90),
            (3.5, 49.808),
            (5.5, 49.86),
            (7.5, 49.95),
            (9.0, 49.99),
            (10.0, 50.0),
        ),
    ),
}


def builtin_events() -> list[str]:
    return sorted(EVENTS)
