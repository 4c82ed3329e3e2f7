"""The response cache (``--cache FILE``): what makes two requests the same, that a repeated
request costs nothing and says the same, counting of hits, and many users at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.backends.cache import CachedBackend, request_key
from simulator.config import RoleSettings
from simulator.errors import BackendError, InputError
from simulator.protocol import ChatMessage, ChatReply, ChatRequest, Context, Usage
from tests.conftest import MARCUS, FakeBackend, invoke
from tests.loopback import serve
from tests.serieskit import CONFIG, ROLE_MODELS, run_json, scripted, write_personas

BASE = ChatRequest(
    role="therapist",
    messages=(ChatMessage("system", "You are Nova."), ChatMessage("user", "Hi, I'm Marcus.")),
    settings=RoleSettings(model="m1", temperature=0.7, seed=3),
)


def test_key_covers_everything_that_shapes_a_reply() -> None:
    key = request_key(BASE, "http://a/v1")
    variants = [
        request_key(BASE, "http://b/v1"),
        request_key(replace(BASE, settings=RoleSettings(model="m2", temperature=0.7, seed=3)), "http://a/v1"),
        request_key(replace(BASE, settings=RoleSettings(model="m1", temperature=0.8, seed=3)), "http://a/v1"),
        request_key(replace(BASE, settings=RoleSettings(model="m1", temperature=0.7, seed=4)), "http://a/v1"),
        request_key(
            replace(BASE, settings=RoleSettings(model="m1", temperature=0.7, seed=3, max_tokens=9)),
            "http://a/v1",
        ),
        request_key(replace(BASE, messages=(*BASE.messages, ChatMessage("user", "more"))), "http://a/v1"),
        request_key(replace(BASE, role="patient"), "http://a/v1"),
    ]
    assert len({key, *variants}) == len(variants) + 1
    replicas = RoleSettings(model="m1", temperature=0.7, seed=3, base_urls=["http://r1/v1", "http://r2/v1"])
    assert request_key(replace(BASE, settings=replicas), "http://a/v1") == key, "replicas share replies"
    assert request_key(BASE, "http://a/v1") == key, "stable"


def test_key_covers_purpose_and_for_the_offline_backend_persona_and_session() -> None:
    """The offline backend answers from the persona and the session, not the messages alone:
    its key must tell them apart (else one persona's cached reply answers another), while an
    endpoint's key ignores where in the run a request comes from (identical requests share)."""
    at = Context(persona_id="marcus", session_number=1, turn=1)
    elsewhere = [
        replace(at, persona_id="priya"),
        replace(at, session_number=2),
    ]
    offline = request_key(replace(BASE, context=at), "offline", context_matters=True)
    assert (
        len(
            {
                offline,
                *(request_key(replace(BASE, context=c), "offline", context_matters=True) for c in elsewhere),
            }
        )
        == 3
    )
    assert request_key(replace(BASE, context=replace(at, turn=5)), "offline", context_matters=True) == offline
    endpoint = request_key(replace(BASE, context=at), "http://a/v1")
    assert {request_key(replace(BASE, context=c), "http://a/v1") for c in elsewhere} == {endpoint}
    assert request_key(replace(BASE, purpose="continuation"), "http://a/v1") != request_key(
        BASE, "http://a/v1"
    )


async def test_a_repeated_request_costs_nothing_and_says_the_same(tmp_path: Path) -> None:
    inner = FakeBackend()
    cache = CachedBackend(inner, tmp_path / "c.sqlite", "http://a/v1")
    first = await cache.complete(BASE)
    again = await cache.complete(BASE)
    assert len(inner.requests) == 1
    assert again.content == first.content and again.model == first.model
    assert again.cache_hit and not first.cache_hit
    assert again.usage == Usage() and again.extra["cached_usage"]["prompt_tokens"] == 100
    assert (cache.hits, cache.misses) == (1, 1)
    await cache.aclose()
    reopened = CachedBackend(FakeBackend(), tmp_path / "c.sqlite", "http://a/v1")
    assert (await reopened.complete(BASE)).content == first.content, "kept on disk"
    await reopened.aclose()


async def test_failures_are_not_cached(tmp_path: Path) -> None:
    inner = FakeBackend().enqueue("therapist", BackendError("therapist: server error 500"))
    cache = CachedBackend(inner, tmp_path / "c.sqlite", "e")
    with pytest.raises(BackendError):
        await cache.complete(BASE)
    reply = await cache.complete(BASE)
    assert not reply.cache_hit and len(inner.requests) == 2


class SlowBackend(FakeBackend):
    """Replies after a few loop turns, so requests overlap."""

    def __init__(self, fail_first: bool = False) -> None:
        super().__init__()
        self.fail_first = fail_first

    async def complete(self, request: ChatRequest) -> ChatReply:
        for _ in range(3):
            await asyncio.sleep(0)
        if self.fail_first and not self.requests:
            self.requests.append(request)
            raise BackendError("boom")
        return await super().complete(request)


async def test_many_sessions_at_once_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    inner_a, inner_b = SlowBackend(), SlowBackend()
    a = CachedBackend(inner_a, path, "e")
    b = CachedBackend(inner_b, path, "e")  # a second process, as far as SQLite is concerned
    requests = [replace(BASE, messages=(ChatMessage("user", f"question {i % 10}"),)) for i in range(60)]
    replies = await asyncio.gather(
        *(a.complete(r) for r in requests[:30]), *(b.complete(r) for r in requests[30:])
    )
    assert len(inner_a.requests) == 10, "identical requests in flight are sent once"
    assert a.hits == 20 and a.misses == 10
    by_question: dict[str, set[str]] = {}
    for request, reply in zip(requests, replies, strict=True):
        by_question.setdefault(request.messages[0].content, set()).add(reply.content)
    assert all(len(texts) == 1 for texts in by_question.values()), "one text per request, whoever asked"
    assert len(inner_b.requests) + b.hits == 30
    await a.aclose()
    await b.aclose()


async def test_a_failed_first_asker_does_not_fail_the_others(tmp_path: Path) -> None:
    inner = SlowBackend(fail_first=True)
    cache = CachedBackend(inner, tmp_path / "c.sqlite", "e")
    first, second = await asyncio.gather(cache.complete(BASE), cache.complete(BASE), return_exceptions=True)
    assert isinstance(first, BackendError)
    assert isinstance(second, ChatReply) and not second.cache_hit
    await cache.aclose()


def test_not_a_database_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not SQLite pages " * 100)
    with pytest.raises(InputError, match="cannot use as a response cache"):
        CachedBackend(FakeBackend(), path, "e")


def test_second_run_is_all_cache_hits_and_identical(tmp_path: Path) -> None:
    cache = tmp_path / "replies.sqlite"
    for run_id in ("one", "two"):
        result = invoke(
            "run", MARCUS, "--backend", "offline", "--sessions", "2", "--cache", cache,
            "--out", tmp_path, "--run-id", run_id, "--no-progress",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    first, second = run_json(tmp_path / "one"), run_json(tmp_path / "two")
    assert first["totals"]["cache_hits"] == 0 and first["totals"]["prompt_tokens"] > 0
    totals = second["totals"]
    assert totals["requests"] == first["totals"]["requests"] == totals["cache_hits"]
    assert totals["prompt_tokens"] == totals["completion_tokens"] == 0
    assert all(c["cache_hits"] == c["requests"] for c in second["usage"].values())
    for number in (1, 2):
        name = f"marcus_thompson/session_0{number}.txt"
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()
    assert "cache hits" in result.stderr


def test_cached_endpoint_run_sends_nothing_the_second_time(tmp_path: Path) -> None:
    personas = write_personas(tmp_path / "personas", 2)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    with serve(scripted) as server:
        for run_id in ("one", "two"):
            result = invoke(
                "run", *personas, "--sessions", "2", "--backend", "openai", "--base-url", server.base_url,
                *ROLE_MODELS, "--config", config, "--cache", tmp_path / "c.sqlite", "--out", tmp_path,
                "--run-id", run_id, "--no-progress",
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            if run_id == "one":
                sent = len(server.requests)
        assert len(server.requests) == sent > 0
    assert run_json(tmp_path / "two")["totals"]["cache_hits"] == sent
