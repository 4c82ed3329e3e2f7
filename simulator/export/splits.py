"""Deterministic splits: by persona (no persona in two splits) or, with a leakage warning, by
session.

Units (persona ids, or session keys) are ordered by a SHA-256 of the seed and the unit, so a
unit's place does not depend on which other units are present, and the split sizes are the
fractions of the unit count, rounded by largest remainder.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from simulator.errors import InputError
from simulator.export.options import Split, SplitBy

DEFAULT_SPLIT = (Split("train", 1.0),)
SESSION_SPLIT_WARNING = (
    "--split-by session puts sessions of the same persona in different splits: "
    "scores on a held-out split will be inflated by persona leakage"
)


def sizes(count: int, splits: tuple[Split, ...]) -> list[int]:
    """``count`` units shared by the fractions; remainders go to the largest fractional parts."""
    exact = [s.fraction * count for s in splits]
    base = [math.floor(x) for x in exact]
    order = sorted(range(len(splits)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[: count - sum(base)]:
        base[i] += 1
    return base


def assign(units: Iterable[str], splits: tuple[Split, ...], seed: int, split_by: SplitBy) -> dict[str, str]:
    """Unit -> split name; :class:`InputError` when a split would get no unit."""
    ordered = sorted(set(units), key=lambda u: hashlib.sha256(f"{seed}\0{u}".encode()).hexdigest())
    result: dict[str, str] = {}
    start = 0
    for split, size in zip(splits, sizes(len(ordered), splits), strict=True):
        if size == 0:
            spec = ",".join(f"{s.name}={s.fraction:g}" for s in splits)
            raise InputError(
                "--split",
                f"split {split.name!r} would get no {split_by}: {len(ordered)} {split_by}(s) "
                f"after filters for {spec}",
            )
        for unit in ordered[start : start + size]:
            result[unit] = split.name
        start += size
    return result
