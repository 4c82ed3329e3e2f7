"""An evaluation's settings: the run config format (``--config``, ``roles.judge``, retries,
rate limits, cache, prices) plus the evaluate flags, resolved once and saved in the evaluation
folder so that ``--resume`` judges the rest exactly as the start did.

A model is called only when ``--judge-model`` names one and the backend is an endpoint; the
offline backend has no model to judge with, so it never produces judge scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulator.backends import Cast, default_backend, kind, make_backend
from simulator.config import (
    Price,
    RateLimits,
    RetrySettings,
    RoleSettings,
    RunConfig,
    env_base_url,
    load_config,
)
from simulator.cost import priced
from simulator.protocol import ChatBackend
from simulator.records import TokenCounts

NO_JUDGE_MODEL = "no --judge-model: model-free metrics only, no model is called and no judge scores are given"
OFFLINE_JUDGE = (
    "{backend} backend: it has no model to judge with, so this computes model-free metrics only "
    "and gives no judge scores"
)


class EvalSettings(BaseModel):
    """Everything that shapes an evaluation; saved (without secrets) as settings.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rubrics: list[str]
    repeats: int = Field(default=1, ge=1)
    backend: str
    """A name from the backend registry (``offline``, ``openai``, ...)."""
    judge_model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    judge: RoleSettings = Field(default_factory=RoleSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    cache: Path | None = None
    concurrency: int = Field(default=4, ge=1)
    prices: dict[str, Price] = Field(default_factory=dict)

    @property
    def judging(self) -> bool:
        return self.judge_model is not None and not kind(self.backend).offline

    @property
    def notice(self) -> str | None:
        """Why no model will be called, when none will."""
        if self.judge_model is None:
            return NO_JUDGE_MODEL
        if kind(self.backend).offline:
            return OFFLINE_JUDGE.format(backend=self.backend)
        return None

    def role(self) -> RoleSettings:
        """``roles.judge`` with the judge model in it."""
        return self.judge.model_copy(update={"model": self.judge_model})

    def make_backend(self, cast: Cast) -> ChatBackend:
        """The same backend stack as ``run``, from the registry: endpoint, retries, rate
        limits, cache."""
        config = RunConfig(
            backend=self.backend,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            retry=self.retry,
            rate_limits=self.rate_limits,
            cache=self.cache,
        )
        return make_backend(config, self.backend, cast)

    def cost(self, counts: TokenCounts) -> float | None:
        """US dollars at the judge model's price in ``prices`` (None when it has none)."""
        price = self.prices.get(self.judge_model or "")
        return priced(counts, price) if price is not None else None


def resolve(
    config_file: Path | None, flags: dict[str, Any], rubrics: list[str], repeats: int
) -> EvalSettings:
    """Defaults, then the config file, then the flags that were given (flags win)."""
    flags = dict(flags)
    judge_model = flags.pop("judge_model", None)
    config = load_config(config_file, flags)
    judge = config.roles.get("judge", RoleSettings())
    if judge.seed is None and config.seed is not None:
        judge = judge.model_copy(update={"seed": config.seed})
    if judge.message_layout is None:
        judge = judge.model_copy(update={"message_layout": config.message_layout})
    base_url = config.base_url or env_base_url()
    return EvalSettings(
        rubrics=rubrics,
        repeats=repeats,
        backend=default_backend(config),
        judge_model=judge_model,
        base_url=base_url,
        api_key_env=config.api_key_env,
        judge=judge,
        retry=config.retry,
        rate_limits=config.rate_limits,
        cache=config.cache.resolve() if config.cache is not None else None,
        concurrency=config.concurrency,
        prices=config.prices,
    )
