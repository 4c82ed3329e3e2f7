"""Aggregation: means, percentile bootstrap 95% intervals, and Krippendorff's alpha.

Intervals resample sessions (the unit a dataset is made of), 2,000 draws with seed 0, so the
same scores always give the same interval. Agreement between repeated judgments is
Krippendorff's alpha with the interval metric (the ``krippendorff`` package), repeats as
coders and sessions as units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import krippendorff
import numpy as np

BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def bootstrap_ci(
    values: Sequence[float], *, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean: resample the values (one per session) with
    replacement ``draws`` times and take the 2.5th and 97.5th percentiles of the means."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(draws, len(data)))
    means = data[picks].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def interval_alpha(ratings: Sequence[Sequence[float | None]]) -> float | None:
    """Krippendorff's alpha (interval) for ``ratings[coder][unit]`` (None: missing).

    None when it is undefined: fewer than two coders, no unit rated twice, or no variation
    at all (every value the same, so there is no disagreement to expect).
    """
    if len(ratings) < 2:
        return None
    data = np.array([[math.nan if v is None else float(v) for v in row] for row in ratings], dtype=float)
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    if not pairable.any():
        return None
    values = data[:, pairable]
    if np.unique(values[~np.isnan(values)]).size < 2:
        return None
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement="interval"))
