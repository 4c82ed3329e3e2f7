"""Choosing and building the chat backend for a run."""

from __future__ import annotations

import os
import sys

from simulator.backend import ChatBackend
from simulator.cache import CachedBackend
from simulator.config import RunConfig
from simulator.offline import OfflineBackend
from simulator.ratelimit import RateLimitedBackend

OFFLINE_NOTICE = (
    "simulator: offline backend: deterministic replies built from the personas, no model "
    "(run.json and every record say backend: offline)"
)


def choose_backend(config: RunConfig) -> str:
    """--backend when given; else openai when a key or base URL is configured, else offline."""
    if config.backend == "offline":
        print(OFFLINE_NOTICE, file=sys.stderr)
    if config.backend is not None:
        return config.backend
    if os.environ.get(config.api_key_env) or config.base_url or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    print(
        f"simulator: no {config.api_key_env} or base URL set; using the offline backend "
        "(deterministic, no model: pass --backend openai to use an endpoint)",
        file=sys.stderr,
    )
    return "offline"


def make_backend(config: RunConfig, name: str) -> ChatBackend:
    backend: ChatBackend
    if name == "offline":
        backend = OfflineBackend(seed=config.seed)
    else:
        from simulator.openai_backend import OpenAIBackend

        backend = OpenAIBackend(
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env),
            api_key_env=config.api_key_env,
            retry=config.retry,
        )
    limits = config.rate_limits
    if limits.requests_per_minute or limits.tokens_per_minute:
        backend = RateLimitedBackend(backend, limits.requests_per_minute, limits.tokens_per_minute)
    if config.cache is not None:
        endpoint = (
            name if name == "offline" else config.base_url or os.environ.get("OPENAI_BASE_URL") or "default"
        )
        backend = CachedBackend(backend, config.cache, endpoint, config.secrets())
    return backend
