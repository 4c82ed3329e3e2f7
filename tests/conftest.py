"""Shared fixtures: a queue-driven fake backend that plugs in through the same protocol as
the real ones, and helpers to run the real CLI."""

from __future__ import annotations

import random
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from simulator.cli import main
from simulator.errors import BackendError
from simulator.protocol import ChatReply, ChatRequest, Usage
from tests.serieskit import VOCABULARY

REPO = Path(__file__).resolve().parent.parent
PERSONAS = REPO / "personas"
MARCUS = PERSONAS / "marcus_thompson.yaml"

FIVE_SECTIONS = """Main topics discussed:
- Perfectionism at work

Techniques/exercises introduced:
- Thought record

Things that appeared helpful:
- Naming the critical thought

Homework assigned:
- Write one thought record a day

Insights/realizations:
- Marcus holds himself to a harsher standard than others"""


def default_reply(request: ChatRequest) -> str:
    """Distinct, in-role, complete sentences, so no guard fires unless a test wants it to:
    each turn draws its own words, so no two replies share a run of four words."""
    turn = sum(1 for m in request.messages if m.role == "assistant")
    if request.role == "summarizer":
        return FIVE_SECTIONS
    rng = random.Random(f"{request.role}:{turn}")
    words = rng.sample(VOCABULARY, 8)
    if request.role == "therapist":
        return f"{' '.join(words[:4]).capitalize()}, turn {turn}. {' '.join(words[4:]).capitalize()}?"
    return f"{' '.join(words[:4]).capitalize()} {turn}. {' '.join(words[4:]).capitalize()}."


Reply = str | ChatReply | Exception


class FakeBackend:
    """Queue per role; when a queue is empty the ``default`` function answers."""

    name = "fake"

    def __init__(self, default: Callable[[ChatRequest], str] = default_reply) -> None:
        self.queues: dict[str, deque[Reply]] = {
            "therapist": deque(),
            "patient": deque(),
            "summarizer": deque(),
        }
        self.requests: list[ChatRequest] = []
        self.default = default
        self.closed = False

    def enqueue(self, role: str, *replies: Reply) -> FakeBackend:
        self.queues[role].extend(replies)
        return self

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        queue = self.queues[request.role]
        item: Reply = queue.popleft() if queue else self.default(request)
        if isinstance(item, Exception):
            raise item
        if isinstance(item, str):
            return ChatReply(content=item, model=f"fake-{request.role}", usage=Usage(100, 20, 40))
        return item

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    base_env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    return runner.invoke(
        main, [str(a) for a in args], env={**base_env, **(env or {})}, catch_exceptions=False
    )


def make_offline_run(out: Path, *personas: Path, sessions: int, run_id: str) -> Path:
    """A finished offline run in ``out/run_id``: the run several test files read and judge."""
    result = invoke(
        "run",
        *personas,
        "--sessions",
        str(sessions),
        "--backend",
        "offline",
        "--out",
        out,
        "--run-id",
        run_id,
    )
    assert result.exit_code == 0, result.output
    return out / run_id


@pytest.fixture
def personas_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped personas, safe to edit."""
    target = tmp_path / "personas"
    shutil.copytree(PERSONAS, target)
    return target


__all__ = ["MARCUS", "PERSONAS", "REPO", "BackendError", "FakeBackend", "invoke"]
