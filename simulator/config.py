"""Run settings: defaults, the YAML ``--config`` file, and flags on top (flags win)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from simulator.endings import DEFAULT_PATIENT_END_PHRASES, DEFAULT_THERAPIST_END_PHRASES, compile_phrases
from simulator.errors import InputError, InputErrors
from simulator.guards import DEFAULT_REPETITION_THRESHOLD
from simulator.layout import run_id_problem
from simulator.limits import MAX_SESSION
from simulator.message_layout import Layout
from simulator.protocol import Role
from simulator.yamlfile import load_mapping, validation_errors

ROLES: tuple[Role, ...] = ("therapist", "patient", "summarizer")
DEFAULT_MAX_TOKENS = {"therapist": 512, "patient": 512, "summarizer": 1024}
"""Per-role reply limits when the config sets none; ``max_tokens: null`` asks for no limit."""

DEFAULT_WRAP_UP_NOTE = (
    "Time check: only a few exchanges remain in this session. Begin wrapping up now: "
    "agree on homework, briefly summarise, and close the session warmly."
)
DEFAULT_REPETITION_NUDGE = (
    "Your draft of this reply repeated something you already said earlier in this session. "
    "Say something new that moves the conversation forward, in a few sentences."
)
DEFAULT_CONTINUE_NOTE = "Continue exactly where you stopped, finishing the sentence. Do not repeat."
DEFAULT_ROLE_NUDGE = (
    "Write only your own next message in this conversation, in your own voice: no lines for the "
    "other person, no labels, no comments about the conversation."
)
DEFAULT_SUMMARY_RETRY_NOTE = (
    "Rewrite the summary with exactly the five sections, in order, as 'Heading:' lines followed by "
    "'- ' bullets, and nothing before or after them. Missing or out of order: {missing}."
)


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user or password (such a URL is never saved)."""
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def strip_credentials(url: str) -> str:
    """``http://user:pass@host/v1`` -> ``http://host/v1``: what may be written to a file."""
    if not has_credentials(url):
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def env_base_url() -> str | None:
    """$OPENAI_BASE_URL when it may be pinned in saved settings, so a resume reaches the same
    server (never when it carries credentials: then it is read from the environment each time)."""
    url = os.environ.get("OPENAI_BASE_URL") or None
    return None if url is None or has_credentials(url) else url


def url_password(url: str | None) -> str | None:
    return urlsplit(url).password if url else None


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSettings(_Settings):
    """How to call the model for one agent. ``None`` means: leave it to the server
    (``max_tokens`` defaults per role, see :data:`DEFAULT_MAX_TOKENS`)."""

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    message_layout: Layout | None = None
    """Overrides the run's ``message_layout`` for this role."""
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    base_urls: list[str] = Field(default_factory=list)
    """Several endpoints serving the same model (vLLM replicas): requests are spread across them."""
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    omit_params: list[Literal["temperature", "top_p", "seed", "stop", "max_tokens"]] = Field(
        default_factory=list
    )
    """Parameters this server rejects; they are never sent."""

    @field_serializer("base_urls")
    def _no_credentials(self, urls: list[str]) -> list[str]:
        return [strip_credentials(url) for url in urls]


class EndPhrases(_Settings):
    therapist: list[str] = Field(default_factory=lambda: list(DEFAULT_THERAPIST_END_PHRASES))
    patient: list[str] = Field(default_factory=lambda: list(DEFAULT_PATIENT_END_PHRASES))
    after_wrap_up: bool = True
    """A patient's short thanks or goodbye right after the therapist wraps up ends the session
    too (the two-message rule, :func:`simulator.endings.detect_end`); false: only the phrases do."""

    @field_validator("therapist", "patient")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        """Checked by the function the detector compiles them with, so what passes here runs."""
        compile_phrases(patterns)
        return patterns


class GuardSettings(_Settings):
    repetition_threshold: float = Field(default=DEFAULT_REPETITION_THRESHOLD, gt=0, le=1)
    max_regenerations: int = Field(default=2, ge=0)
    max_continuations: int = Field(default=1, ge=0)
    summary_retries: int = Field(default=1, ge=0)
    repetition_nudge: str = DEFAULT_REPETITION_NUDGE
    continue_note: str = DEFAULT_CONTINUE_NOTE
    role_nudge: str = DEFAULT_ROLE_NUDGE
    """Sent with a regeneration when the last attempt was empty or entirely out of role."""
    summary_retry_note: str = DEFAULT_SUMMARY_RETRY_NOTE
    """Sent when the summary lacks sections; ``{missing}`` becomes their names."""


class RetrySettings(_Settings):
    attempts: int = Field(default=6, ge=1)
    initial_wait_s: float = Field(default=1.0, ge=0)
    max_wait_s: float = Field(default=60.0, ge=0)
    """Cap on one backoff sleep, Retry-After included."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Per-request timeout."""


class RateLimits(_Settings):
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)


class Price(_Settings):
    """US dollars per million tokens."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)
    cached: float | None = Field(default=None, ge=0)


class RunConfig(_Settings):
    """Everything that shapes a run. Saved (without secrets) in run.json for resume."""

    sessions: int = Field(default=1, ge=1)
    start: int = Field(default=1, ge=1)
    previous_summary: Path | None = None
    therapist: Path | None = None
    prompts: Path | None = None
    backend: str | None = None
    """A name in :data:`simulator.backends.BACKENDS`; None chooses by the environment."""
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    model: str | None = None
    therapist_model: str | None = None
    patient_model: str | None = None
    summarizer_model: str | None = None
    max_turns: int = Field(default=40, ge=2)
    min_turns: int = Field(default=8, ge=1)
    seed: int | None = None
    concurrency: int = Field(default=4, ge=1)
    out: Path = Path("runs")
    run_id: str | None = None
    cache: Path | None = None
    shard: str | None = None
    executor: Literal["local", "ray"] = "local"
    """Where sessions run: this process, or the workers of a Ray cluster (the driver writes)."""
    workers: int | None = Field(default=None, ge=1)
    """Ray workers; None: one per CPU of the cluster. run.json records the number used."""
    ray_address: str | None = None
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; None: $RAY_ADDRESS, else a local Ray."""
    end_phrases: EndPhrases = Field(default_factory=EndPhrases)
    patient_goodbye: bool = True
    wrap_up_turns: int = Field(default=6, ge=0)
    """The therapist gets the wrap-up note once this few messages remain before max_turns."""
    wrap_up_note: str = DEFAULT_WRAP_UP_NOTE
    message_layout: Layout = "alternating"
    """How each request's messages are laid out (see :mod:`simulator.message_layout`)."""
    notes_role: Literal["system", "user"] = "system"
    """Role of the notes (wrap-up, nudges, continue) in the ``system_notes`` layout."""
    guards: GuardSettings = Field(default_factory=GuardSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    roles: dict[Literal["therapist", "patient", "summarizer", "judge"], RoleSettings] = Field(
        default_factory=dict
    )
    """Per-role request settings; ``judge`` is read by ``simulator evaluate`` only."""
    prices: dict[str, Price] = Field(default_factory=dict)

    @field_serializer("base_url")
    def _no_credentials(self, url: str | None) -> str | None:
        """Saved settings never carry a user or password from the URL (they stay in memory
        for this process; a resume reaches the server without them)."""
        return strip_credentials(url) if url is not None else None

    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a file: the API key and passwords in URLs."""
        urls = [self.base_url, os.environ.get("OPENAI_BASE_URL")]
        urls += [url for role in self.roles.values() for url in role.base_urls]
        found = [os.environ.get(self.api_key_env)] + [url_password(url) for url in urls]
        return tuple(dict.fromkeys(value for value in found if value))

    @field_validator("sessions", "start")
    @classmethod
    def _at_most_max_session(cls, value: int) -> int:
        if value > MAX_SESSION:
            raise ValueError(
                f"{value} is over the limit of {MAX_SESSION} (session files are numbered up to "
                f"session_{MAX_SESSION})"
            )
        return value

    @field_validator("run_id")
    @classmethod
    def _check_run_id(cls, value: str | None) -> str | None:
        problem = run_id_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, value: str | None) -> str | None:
        from simulator.backends import BACKENDS  # the registry imports this module

        if value is not None and value not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, found {value!r}")
        return value

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = re.fullmatch(r"(\d+)/(\d+)", value)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError(f"shard must look like I/N with 1 <= I <= N, found {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.min_turns > self.max_turns and "min_turns" not in self.model_fields_set:
            object.__setattr__(self, "min_turns", self.max_turns)
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) exceeds max_turns ({self.max_turns})")
        last = self.start + self.sessions - 1
        if last > MAX_SESSION:
            raise ValueError(
                f"sessions {self.start} to {last} go past session {MAX_SESSION}, the highest number a "
                f"session can have"
            )
        object.__setattr__(self, "roles", _with_default_limits(self.roles))
        return self

    def role(self, role: str) -> RoleSettings:
        """Settings for one agent, with the model flags folded in (per-role flag > --model)."""
        base: RoleSettings = self.roles.get(role, RoleSettings())  # type: ignore[call-overload]
        flag_model = getattr(self, f"{role}_model") or self.model
        updates: dict[str, Any] = {}
        if flag_model:
            updates["model"] = flag_model
        if base.seed is None and self.seed is not None:
            updates["seed"] = self.seed
        return base.model_copy(update=updates) if updates else base

    def layout(self, role: str) -> Layout:
        """The message layout ``role`` starts with: its own setting, else the run's."""
        return self.role(role).message_layout or self.message_layout

    def shard_parts(self) -> tuple[int, int] | None:
        if self.shard is None:
            return None
        index, total = self.shard.split("/")
        return int(index), int(total)


def _with_default_limits(roles: dict[Any, RoleSettings]) -> dict[Any, RoleSettings]:
    """Every role with its ``max_tokens`` set: the default unless the config gave one (``null``
    included). Filled in here so that run.json saves the limit a run used and resume keeps it.
    Other roles (``judge``) are kept as given."""
    filled: dict[Any, RoleSettings] = dict(roles)
    for role in ROLES:
        settings = roles.get(role) or RoleSettings()
        if "max_tokens" not in settings.model_fields_set:
            data = {**settings.model_dump(exclude_unset=True), "max_tokens": DEFAULT_MAX_TOKENS[role]}
            settings = RoleSettings.model_validate(data)
        filled[role] = settings
    return filled


def no_model_message(roles: Sequence[str]) -> str:
    """What to do when a role has no model name: the run's check and the backend's say the same."""
    flags = " or ".join(f"--{role}-model" for role in roles)
    keys = " / ".join(f"`roles.{role}.model`" for role in roles)
    return f"no model set for the {', '.join(roles)}: pass --model or {flags}, or set {keys} in the config"


def load_config(
    path: Path | None, overrides: dict[str, Any], *, settings: dict[str, Any] | None = None
) -> RunConfig:
    """Defaults, then ``settings`` (already checked: a replay's inherited ones), then the config
    file, then flags that were actually given (``overrides``, keyed like the config).
    A problem with a flag's value names the flag (``--sessions: ...``), one from the file the key."""
    data: dict[str, Any] = load_mapping(path, "config file") if path is not None else {}
    source = path if path is not None else "command line"
    if path is not None:
        for key in ("previous_summary", "therapist", "prompts", "out", "cache"):
            value = data.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                data[key] = str(path.parent / value)
    flags = {k: v for k, v in overrides.items() if v is not None}
    try:
        return RunConfig.model_validate({**(settings or {}), **data, **flags})
    except ValidationError as exc:
        raise _name_flags(validation_errors(source, exc), exc, flags) from None


def _name_flags(error: InputError, exc: ValidationError, flags: dict[str, Any]) -> InputError:
    """``error``'s lines, with each one about a flag's value told as ``--flag: problem``."""
    problems = error.problems
    named: list[InputError] = []
    for problem, detail in zip(problems, exc.errors(), strict=True):
        key = str(detail["loc"][0]) if detail["loc"] else None
        if key in flags:
            prefix = f"key '{key}': "
            text = problem.message.removeprefix(prefix)
            problem = InputError("--" + key.replace("_", "-"), text)
        named.append(problem)
    return named[0] if len(named) == 1 else InputErrors(named)
