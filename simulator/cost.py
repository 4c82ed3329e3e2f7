"""What a run cost in US dollars, from the token counts and the ``prices`` in the config."""

from __future__ import annotations

from simulator.config import Price, RunConfig
from simulator.records import TokenCounts


def priced(counts: TokenCounts, price: Price) -> float:
    """US dollars for ``counts`` at one model's ``price`` (cached prompt tokens at the cached
    price when it has one)."""
    cached_price = price.cached if price.cached is not None else price.prompt
    uncached = counts.prompt_tokens - counts.cached_tokens
    return (
        uncached * price.prompt
        + counts.cached_tokens * cached_price
        + counts.completion_tokens * price.completion
    ) / 1e6


def estimate_cost(totals: dict[str, TokenCounts], config: RunConfig) -> float | None:
    """US dollars for the tokens by role, from ``prices`` in the config (None without prices)."""
    if not config.prices:
        return None
    cost = 0.0
    for role, counts in totals.items():
        price = config.prices.get(config.role(role).model or "")
        if price is not None:
            cost += priced(counts, price)
    return cost
