"""Garbage-collector settings for the length of a run.

A run allocates many short-lived objects per model call (request bodies, parsed replies,
records), so CPython's default generation-0 threshold of 700 triggers hundreds of
collections, each of which also walks everything imported and planned. Measured with
``benchmarks/bench_overhead.py``'s shape 64x1/c64/200 ms: collections took 15% of the run's
CPU with the defaults, 3% with the objects alive at the start frozen and a threshold of
50,000, and CPU per model call fell by about 10%. Both are undone when the run ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RUN_GEN0_THRESHOLD", "run_collector"]

RUN_GEN0_THRESHOLD = 50_000
"""Allocations between two young-generation collections while a run goes (CPython's: 700)."""


@contextmanager
def run_collector() -> Iterator[None]:
    """Freeze what is alive now (modules, plan, templates: never garbage) out of every
    collection, and collect the young generation less often; restore both afterwards."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(RUN_GEN0_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
