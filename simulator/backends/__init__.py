"""The backend registry: one table of name -> factory and properties, and building the chat
backend a run uses (with the rate-limit and cache wrappers the config asks for).

Adding a backend is one module implementing :class:`simulator.protocol.ChatBackend` and one
line in :data:`BACKENDS`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from simulator.config import RunConfig
from simulator.personas import Patient, Therapist
from simulator.protocol import ChatBackend

log = logging.getLogger(__name__)

OFFLINE_NOTICE = (
    "offline backend: deterministic replies built from the personas, no model "
    "(run.json and every record say backend: offline)"
)


@dataclass(frozen=True)
class Cast:
    """The personas of a run, for backends that speak from them rather than from a model."""

    patients: tuple[Patient, ...]
    therapist: Therapist


@dataclass(frozen=True)
class BackendKind:
    build: Callable[[RunConfig, Cast], ChatBackend]
    endpoint: Callable[[RunConfig], str]
    """What the response cache files replies under."""
    needs_models: bool
    """Every role needs a model name before the run starts."""
    offline: bool = False
    """No model behind it: run.json says ``offline: true``."""
    notice: str | None = None
    """Logged whenever the backend runs, so nobody mistakes its output for a model's."""
    context_matters: bool = False
    """Replies depend on the request's context, not only on its messages (cache key)."""


def _offline(config: RunConfig, cast: Cast) -> ChatBackend:
    from simulator.backends.offline import OfflineBackend

    return OfflineBackend(cast.patients, cast.therapist, seed=config.seed)


def _openai(config: RunConfig, cast: Cast) -> ChatBackend:
    from simulator.backends.openai import OpenAIBackend

    return OpenAIBackend(
        base_url=config.base_url,
        api_key=os.environ.get(config.api_key_env),
        api_key_env=config.api_key_env,
        retry=config.retry,
        pool_size=config.concurrency,
    )


def _openai_endpoint(config: RunConfig) -> str:
    return config.base_url or os.environ.get("OPENAI_BASE_URL") or "default"


BACKENDS: dict[str, BackendKind] = {
    "offline": BackendKind(
        _offline,
        lambda _: "offline",
        needs_models=False,
        offline=True,
        notice=OFFLINE_NOTICE,
        context_matters=True,
    ),
    "openai": BackendKind(_openai, _openai_endpoint, needs_models=True),
}


def _given(config: RunConfig, cast: Cast) -> ChatBackend:
    raise ValueError("a backend handed to the library is not built from the config")


_GIVEN = BackendKind(_given, lambda _: "given", needs_models=False)
"""The properties of a backend handed in by a caller (tests, embedding): no checks, no notice."""


def kind(name: str) -> BackendKind:
    """The registry entry of ``name``; a backend the registry does not know passes no checks."""
    return BACKENDS.get(name, _GIVEN)


def announce(name: str) -> None:
    """Log the backend's notice, if it has one (the CLI prints it on stderr)."""
    notice = kind(name).notice
    if notice is not None:
        log.warning(notice)


def default_backend(config: RunConfig) -> str:
    """--backend when given; else openai when a key or base URL is configured, else offline."""
    if config.backend is not None:
        return config.backend
    if os.environ.get(config.api_key_env) or config.base_url or os.environ.get("OPENAI_BASE_URL"):
        return "openai"
    return "offline"


def choose_backend(config: RunConfig) -> str:
    """:func:`default_backend`, saying which: the backend's notice, or why it is offline."""
    name = default_backend(config)
    if config.backend is not None:
        announce(name)
    elif name == "offline":
        log.warning(
            "no %s or base URL set; using the offline backend "
            "(deterministic, no model: pass --backend openai to use an endpoint)",
            config.api_key_env,
        )
    return name


def make_backend(config: RunConfig, name: str, cast: Cast) -> ChatBackend:
    """The named backend, wrapped in the rate limiter and the cache when the config asks.
    (Imported here, not at the top: ``validate`` and ``--help`` never build a backend.)"""
    from simulator.backends.cache import CachedBackend
    from simulator.backends.ratelimit import RateLimitedBackend

    entry = BACKENDS[name]
    backend = entry.build(config, cast)
    limits = config.rate_limits
    if limits.requests_per_minute or limits.tokens_per_minute:
        backend = RateLimitedBackend(backend, limits.requests_per_minute, limits.tokens_per_minute)
    if config.cache is not None:
        backend = CachedBackend(
            backend,
            config.cache,
            entry.endpoint(config),
            context_matters=entry.context_matters,
            secrets=config.secrets(),
        )
    return backend
