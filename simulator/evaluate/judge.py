"""Asking the judge: one rubric on one session, one repeat, through the chat-backend protocol.

The request carries the answer schema as ``response_format`` (``json_schema``, strict) in
``extra_body``; the first time a server refuses it (400/422) the judge stops sending it and
relies on the prompt, parsing and validating every reply either way. A reply that does not
parse or validate is sent back with the problem and asked again, up to ``PARSE_ATTEMPTS``
times; items still without a valid answer are ``judge_failed``, the others count. The messages
are laid out like every role's (``roles.judge.message_layout``); a layout the server's chat
template refuses is tightened for the rest of the evaluation and the request sent again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from simulator.config import RoleSettings
from simulator.errors import BackendError, TemplateRejected
from simulator.evaluate.answers import (
    JUDGE_FAILED,
    ItemResult,
    answer_schema,
    parse_json,
    problems,
    ratio,
    read_item,
)
from simulator.evaluate.cases import Case
from simulator.evaluate.evidence import Haystack
from simulator.evaluate.prompts import RETRY, judge_prompt
from simulator.message_layout import Layouts, Prompt, render
from simulator.protocol import ChatBackend, ChatMessage, ChatReply, ChatRequest
from simulator.records import TokenCounts

log = logging.getLogger(__name__)

PARSE_ATTEMPTS = 3
"""Replies asked for per judgment when they do not parse or validate (HTTP retries are apart)."""
FATAL_STATUSES = frozenset({401, 402, 403, 404})
"""The endpoint refuses the key, the account or the model: every other call would fail too."""
SCHEMA_REFUSED = frozenset({400, 422})
_SCHEMA_WORDS = re.compile(r"response_format|json_schema|schema|structured|guided", re.IGNORECASE)
"""A refusal that names one of these is about ``response_format``, not about the prompt."""


@dataclass
class Judgment:
    """One repeat of one case, as recorded."""

    repeat: int
    seed: int
    items: dict[str, ItemResult]
    usage: TokenCounts = field(default_factory=TokenCounts)
    model: str | None = None
    attempts: int = 0
    response_format: str = "json_schema"
    request_ids: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.items.items() if result.status == JUDGE_FAILED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "repeat": self.repeat,
            "seed": self.seed,
            "status": JUDGE_FAILED if self.failed else "ok",
            "model": self.model,
            "attempts": self.attempts,
            "response_format": self.response_format,
            "usage": self.usage.model_dump(),
            "request_ids": self.request_ids,
            "error": self.error,
            "items": {name: result.as_dict() for name, result in self.items.items()},
        }


class Judge:
    """Judges cases with one backend and the ``roles.judge`` settings (model included)."""

    def __init__(self, backend: ChatBackend, settings: RoleSettings, layouts: Layouts | None = None) -> None:
        self.backend = backend
        self.settings = settings
        self.layouts = layouts or Layouts({"judge": settings.message_layout or "alternating"})
        self.structured: bool | None = None
        """Whether the server takes ``response_format``: unknown until the first reply."""

    def seed(self, repeat: int) -> int:
        """Repeat r (1, 2, ...) is asked with the configured seed (0 when none) plus r - 1."""
        return (self.settings.seed or 0) + repeat - 1

    async def judge(self, case: Case, repeat: int) -> Judgment:
        """Raises BackendError only when the endpoint refuses us outright (key, model)."""
        schema = answer_schema(list(case.items), case.bullets)
        prompt = judge_prompt(case.rubric, case.context, list(case.items), case.bullets, schema)
        judgment = Judgment(repeat, self.seed(repeat), {})
        haystack = case.haystack()
        problem = "no reply"
        for attempt in range(1, PARSE_ATTEMPTS + 1):
            judgment.attempts = attempt
            try:
                reply = await self._send(case, prompt, schema, judgment)
            except BackendError as exc:
                if exc.status in FATAL_STATUSES:
                    raise
                problem = judgment.error = str(exc)
                break
            problem = self._read(case, reply.content, schema, haystack, judgment.items)
            if problem and reply.finish_reason == "length":
                problem = "it was cut at the token limit (raise roles.judge.max_tokens)"
            if not problem:
                break
            log.info("%s %s session %d: judge reply unusable (%s)", *case.key, problem)
            prompt = prompt.plus(("assistant", reply.content), ("user", RETRY.format(problem=problem)))
        for item in case.items:
            judgment.items.setdefault(item.id, ItemResult(JUDGE_FAILED, error=problem))
        for item in case.rubric.spec.items:
            if item.kind == "ratio":
                judgment.items[item.id] = ratio(item, judgment.items)
        return judgment

    def _read(
        self,
        case: Case,
        content: str,
        schema: dict[str, Any],
        haystack: Haystack,
        results: dict[str, ItemResult],
    ) -> str:
        """Fill ``results`` with every item that is valid in this reply (the first valid answer
        of an item is kept); return what is still wrong, or '' when nothing is."""
        try:
            value = parse_json(content)
        except ValueError:
            return "it is not a JSON object"
        if not isinstance(value, dict):
            return "it is not a JSON object"
        wrong = problems(value, schema)
        properties = schema["properties"]
        for item in case.items:
            if item.id in results or item.id not in value or problems(value[item.id], properties[item.id]):
                continue
            try:
                results[item.id] = read_item(item, value[item.id], case.bullets, haystack)
            except ValueError as exc:
                wrong.append(str(exc))
        missing = [item.id for item in case.items if item.id not in results]
        if not missing:
            return ""
        return "; ".join(wrong[:5]) or f"no valid answer for {', '.join(missing)}"

    async def _send(
        self, case: Case, prompt: Prompt, schema: dict[str, Any], judgment: Judgment
    ) -> ChatReply:
        structured = self.structured is not False
        try:
            reply = await self._complete(case, prompt, schema, judgment, structured)
        except BackendError as exc:
            if not structured or exc.status not in SCHEMA_REFUSED or not _SCHEMA_WORDS.search(str(exc)):
                raise
            log.info("the judge's endpoint refused response_format (%s); asking by prompt alone", exc)
            self.structured = structured = False
            reply = await self._complete(case, prompt, schema, judgment, False)
        if structured:
            self.structured = True
        judgment.response_format = "json_schema" if structured else "prompt"
        judgment.usage.add(reply.usage, cache_hit=reply.cache_hit)
        judgment.model = reply.model
        if reply.request_id:
            judgment.request_ids.append(reply.request_id)
        return reply

    async def _complete(
        self, case: Case, prompt: Prompt, schema: dict[str, Any], judgment: Judgment, structured: bool
    ) -> ChatReply:
        """One request in the judge's current layout, tightened while the chat template refuses it."""
        while True:
            layout = self.layouts.get("judge")
            request = self._request(case, render(prompt, layout), schema, judgment, structured)
            try:
                return await self.backend.complete(request)
            except TemplateRejected as exc:
                if not self.layouts.tighten("judge", layout, str(exc)):
                    raise

    def _request(
        self,
        case: Case,
        messages: list[ChatMessage],
        schema: dict[str, Any],
        judgment: Judgment,
        structured: bool,
    ) -> ChatRequest:
        extra_body = dict(self.settings.extra_body)
        if structured:
            extra_body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": f"rubric_{case.rubric.name}", "strict": True, "schema": schema},
            }
        settings = self.settings.model_copy(update={"seed": judgment.seed, "extra_body": extra_body})
        return ChatRequest(
            role="judge",
            messages=tuple(messages),
            settings=settings,
            purpose=f"judge:{case.rubric.name}:repeat{judgment.repeat}",
        )
