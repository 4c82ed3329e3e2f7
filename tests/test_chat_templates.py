"""Every request the engine sends, rendered through the real chat templates of popular open
models as vLLM / llama.cpp / ``transformers`` render them (see tests/chat_templates.py).

The message lists come from full two-session runs through the real run command, with a
recording backend whose scripted model makes every kind of request happen: each role's turns,
a cut reply and its continuation, a repetition nudge, an empty reply and its role nudge, the
wrap-up note, the patient's goodbye, a summary retry and a cut summary's continuation.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pytest

from simulator import commands
from simulator.config import (
    DEFAULT_CONTINUE_NOTE,
    DEFAULT_REPETITION_NUDGE,
    DEFAULT_ROLE_NUDGE,
    DEFAULT_WRAP_UP_NOTE,
    RunConfig,
)
from simulator.evaluate import prepare_resume
from simulator.evaluate.settings import resolve
from simulator.message_layout import Layout, rejects_layout
from simulator.protocol import ChatReply, ChatRequest, Usage
from tests.chat_templates import STRICT, SYSTEMLESS, TEMPLATES, render
from tests.conftest import FIVE_SECTIONS, MARCUS, FakeBackend, default_reply, invoke, make_offline_run
from tests.judgekit import JudgeModel
from tests.loopback import RecordedRequest, Reply, default_handler, serve, unauthorized, vllm_error

CLOSING = "That's a good place to stop for today, Marcus. Take care, and see you next week."
CUT_THERAPIST = "That sounds really hard. When did you last notice that"
CUT_SUMMARY = FIVE_SECTIONS.split("Homework assigned:")[0] + "Homework assigned:\n- Write one thought"


def _own_turns(request: ChatRequest) -> int:
    return sum(1 for m in request.messages if m.role == "assistant")


def scripted(request: ChatRequest) -> str | ChatReply:
    """A model that, once per series, does everything the engine has a request for."""
    second = any("2nd CBT session" in m.content for m in request.messages)
    turn = _own_turns(request)
    if request.role == "summarizer":
        if second:
            return FIVE_SECTIONS
        if request.purpose == "summary":
            return "Main topics discussed:\n- Perfectionism at work"  # sections missing: asked again
        if request.purpose == "continuation":
            return FIVE_SECTIONS[len(CUT_SUMMARY) :]
        return ChatReply(CUT_SUMMARY, "scripted", "length", Usage(300, 60, 0))
    if request.role == "therapist":
        if request.purpose == "continuation":
            return "feeling, Marcus?"
        if not second and turn == 0:
            return ChatReply(CUT_THERAPIST, "scripted", "length", Usage(200, 30, 0))
        if not second and turn == 1 and request.purpose == "turn":
            return next(m.content for m in request.messages if m.role == "assistant")  # a repeat
        if second and turn == 3:
            return CLOSING
        return default_reply(request)
    if not second and turn == 1 and request.purpose == "turn":
        return ""  # empty: regenerated with the role nudge
    return default_reply(request)


class Recording(FakeBackend):
    def __init__(self) -> None:
        super().__init__(default=lambda request: "")

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        answer = scripted(request)
        if isinstance(answer, ChatReply):
            return answer
        return ChatReply(content=answer, model="scripted", usage=Usage(100, 20, 40))


@cache
def captured(layout: Layout) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    """(role, purpose, messages) of every request in a two-session run in ``layout``."""
    backend = Recording()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        config = out / "run.yaml"
        config.write_text(f"message_layout: {layout}\nmin_turns: 6\nwrap_up_turns: 4\n", encoding="utf-8")
        flags: dict[str, Any] = {"sessions": 2, "max_turns": 12, "out": out / "runs"}
        code = asyncio.run(commands.run([MARCUS], config, flags, progress=False, backend=backend))
    assert code == 0
    return tuple(
        (r.role, r.purpose, tuple((m.role, m.content) for m in r.messages)) for r in backend.requests
    )


def as_dicts(messages: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in messages]


def test_the_recorded_runs_make_every_kind_of_request() -> None:
    requests = captured("alternating")
    kinds = Counter((role, purpose) for role, purpose, _ in requests)
    assert {
        ("therapist", "turn"),
        ("therapist", "continuation"),
        ("therapist", "regeneration"),
        ("patient", "turn"),
        ("patient", "regeneration"),
        ("summarizer", "summary"),
        ("summarizer", "regeneration"),
        ("summarizer", "continuation"),
    } <= set(kinds)
    texts = [content for _, _, messages in requests for _, content in messages]
    for note in (DEFAULT_WRAP_UP_NOTE, DEFAULT_CONTINUE_NOTE, DEFAULT_REPETITION_NUDGE, DEFAULT_ROLE_NUDGE):
        assert any(note in text for text in texts), note
    assert any(messages[-1][1] == CLOSING for role, _, messages in requests if role == "patient")  # goodbye


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t not in SYSTEMLESS])
def test_every_template_accepts_every_request_in_the_default_layout(template: str) -> None:
    for role, purpose, messages in captured("alternating"):
        prompt = render(template, as_dicts(messages))
        for _, content in messages:  # nothing is dropped on the way to the model
            assert content.strip() in prompt, (role, purpose)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_accepts_every_request_without_a_system_message(template: str) -> None:
    for _, _, messages in captured("alternating_no_system"):
        assert messages[0][0] == "user"
        render(template, as_dicts(messages))


@pytest.mark.parametrize("template", sorted(SYSTEMLESS))
def test_systemless_templates_refuse_the_default_layout_with_a_message_we_recognise(template: str) -> None:
    _, _, messages = captured("alternating")[0]
    with pytest.raises(jinja2.TemplateError) as refused:
        render(template, as_dicts(messages))
    assert rejects_layout(str(refused.value))


@pytest.mark.parametrize("template", sorted(STRICT))
def test_strict_templates_refuse_the_old_system_notes_layout(template: str) -> None:
    """What earlier versions sent (and the ``system_notes`` layout still does) fails here,
    starting with the patient's first request, which opened with its own turn."""
    refused = []
    for role, purpose, messages in captured("system_notes"):
        try:
            render(template, as_dicts(messages))
        except jinja2.TemplateError as exc:
            assert rejects_layout(str(exc)), str(exc)
            refused.append((role, purpose))
    assert ("patient", "turn") in refused
    assert ("therapist", "continuation") in refused


def _template_server(template: str, seen: list[RecordedRequest]) -> Any:
    """A loopback handler that renders each request with ``template`` and, like vLLM, answers
    400 with the template's own message when it raises."""

    def handler(request: RecordedRequest) -> Reply:
        seen.append(request)
        try:
            render(template, request.json["messages"])
        except jinja2.TemplateError as exc:
            return vllm_error(str(exc))
        return default_handler(request)

    return handler


ROLES = ("therapist", "patient", "summarizer")


@pytest.mark.parametrize(
    ("template", "start", "final", "changed", "refusals"),
    [
        # Mistral takes a system prompt but not a late one, nor a history opening with assistant;
        # the summarizer's requests always alternated.
        ("mistralai-Mistral-Nemo-Instruct-2407", "system_notes", "alternating", ("therapist", "patient"), 2),
        ("google-gemma-2-2b-it", "alternating", "alternating_no_system", ROLES, 3),
        ("google-gemma-2-2b-it", "system_notes", "alternating_no_system", ROLES, 6),
    ],
)
def test_a_refused_layout_is_tightened_said_on_stderr_and_kept_for_resume(
    tmp_path: Path, template: str, start: str, final: str, changed: tuple[str, ...], refusals: int
) -> None:
    seen: list[RecordedRequest] = []
    config = tmp_path / "run.yaml"
    config.write_text(f"message_layout: {start}\nmax_turns: 8\nmin_turns: 8\n", encoding="utf-8")
    with serve(_template_server(template, seen)) as server:
        result = invoke(
            "run", MARCUS, "--config", config, "--model", "m", "--out", tmp_path, "--run-id", "r",
            "--no-progress", env={"OPENAI_BASE_URL": server.base_url},
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["sessions"]["marcus_thompson"]["1"]["status"] == "complete"
    for role in ROLES:
        assert run["settings"]["roles"][role]["message_layout"] == (final if role in changed else None)
        said = f"simulator: {role}: the server's chat template refused the '{start}' message layout"
        assert (said in result.stderr) == (role in changed)
    assert {c["role"] for c in run["layout_changes"]} == set(changed)
    assert all(rejects_layout(c["server_said"]) for c in run["layout_changes"])
    # Each role is refused once per step, then never again: the change holds for the run.
    refused = 0
    for request in seen:
        try:
            render(template, request.json["messages"])
        except jinja2.TemplateError:
            refused += 1
    assert refused == refusals
    # Resume starts with the saved layouts.
    saved = RunConfig.model_validate(run["settings"])
    assert {role: saved.layout(role) for role in ROLES} == {
        role: final if role in changed else start for role in ROLES
    }
    record = json.loads((tmp_path / "r" / "marcus_thompson" / "session_01.json").read_text())
    assert not any(DEFAULT_WRAP_UP_NOTE in m["content"] for m in record["messages"])


# ---- simulator evaluate: the judge's requests -------------------------------------------------


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_offline_run(tmp_path_factory.mktemp("judged"), MARCUS, sessions=2, run_id="r")


def _evaluate(run_dir: Path, handler: Any, *args: str | Path) -> tuple[Any, list[RecordedRequest]]:
    with serve(handler) as server:
        result = invoke(
            "evaluate", run_dir, "--backend", "openai", "--base-url", server.base_url, "--judge-model", "j",
            "--rubric", "ctrs", "--rubric", "summary_faithfulness", "--concurrency", "1", *args,
        )  # fmt: skip
        return result, server.requests


@cache
def judge_requests(run_dir: Path, layout: Layout | None) -> tuple[list[dict[str, str]], ...]:
    """The judge's messages in a real evaluation, a retry after an unusable reply included."""
    judge = JudgeModel(invalid_once={"ctrs"})
    config = run_dir.parent / f"eval-{layout}.yaml"
    config.write_text(f"roles: {{judge: {{message_layout: {layout}}}}}\n" if layout else "{}\n")
    result, requests = _evaluate(run_dir, judge, "--config", config)
    assert result.exit_code == 0, result.output
    return tuple(r.json["messages"] for r in requests)


def test_the_judge_sends_the_default_layout_and_retries_alternate(judged_run: Path) -> None:
    requests = judge_requests(judged_run, None)
    assert max(len(m) for m in requests) == 4  # a retry: the unusable reply and the problem
    for messages in requests:
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"][: len(messages)]


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t not in SYSTEMLESS])
def test_every_template_accepts_the_judge_requests(judged_run: Path, template: str) -> None:
    for messages in judge_requests(judged_run, None):
        prompt = render(template, messages)
        assert all(m["content"].strip() in prompt for m in messages)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_accepts_the_judge_requests_without_a_system_message(
    judged_run: Path, template: str
) -> None:
    requests = judge_requests(judged_run, "alternating_no_system")
    assert all(messages[0]["role"] == "user" for messages in requests)
    assert max(len(m) for m in requests) == 3
    for messages in requests:
        render(template, messages)


def test_a_judge_refused_by_gemma_2_drops_the_system_message_and_resume_keeps_it(
    judged_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(judged_run, run_dir, ignore=shutil.ignore_patterns("eval"))
    judge = JudgeModel()

    def gemma(request: RecordedRequest) -> Reply:
        try:
            render("google-gemma-2-2b-it", request.json["messages"])
        except jinja2.TemplateError as exc:
            return vllm_error(str(exc))
        return judge(request)

    result, requests = _evaluate(run_dir, gemma)
    assert result.exit_code == 0, result.output
    assert (
        "simulator: judge: the server's chat template refused the 'alternating' message layout; "
        "using 'alternating_no_system' for the rest of the evaluation (saved in settings.json)"
    ) in result.stderr
    assert [r.json["messages"][0]["role"] for r in requests] == ["system"] + ["user"] * (len(requests) - 1)
    (folder,) = (run_dir / "eval").iterdir()
    data = json.loads((folder / "eval.json").read_text())
    assert data["status"] == "complete" and data["summary"]["judge"]["judge_failed"] == 0
    assert data["judge"]["settings"]["message_layout"] == "alternating_no_system"
    saved = json.loads((folder / "settings.json").read_text())
    assert saved["judge"]["message_layout"] == "alternating_no_system"
    assert prepare_resume(run_dir, folder.name).settings.judge.message_layout == "alternating_no_system"


def test_resume_starts_with_the_layout_the_run_saved(tmp_path: Path) -> None:
    """Session 2 fails for another reason (a refused key); `simulator resume` then sends Gemma 2
    only what it accepts, from its first request."""
    refused: list[bool] = []
    key_refused = [True]

    def handler(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        try:
            render("google-gemma-2-2b-it", messages)
        except jinja2.TemplateError as exc:
            refused.append(True)
            return vllm_error(str(exc))
        refused.append(False)
        if key_refused[0] and any("2nd CBT session" in m["content"] for m in messages):
            return unauthorized()
        return default_handler(request)

    config = tmp_path / "run.yaml"
    config.write_text("max_turns: 6\nmin_turns: 6\n", encoding="utf-8")
    with serve(handler) as server:
        env = {"OPENAI_BASE_URL": server.base_url}
        first = invoke(
            "run", MARCUS, "--config", config, "--model", "m", "--sessions", "2", "--out", tmp_path,
            "--run-id", "r", "--no-progress", env=env,
        )  # fmt: skip
        assert first.exit_code == 1 and any(refused)
        run = json.loads((tmp_path / "r" / "run.json").read_text())
        assert run["sessions"]["marcus_thompson"]["2"]["status"] == "failed"
        key_refused[0] = False
        before = len(refused)
        resumed = invoke("resume", tmp_path / "r", env=env)
    assert resumed.exit_code == 0, resumed.stderr
    assert len(refused) > before and not any(refused[before:])
    assert "refused the" not in resumed.stderr


@pytest.mark.parametrize(
    ("config", "layout"),
    [
        ("{}\n", "alternating"),
        ("message_layout: alternating_no_system\n", "alternating_no_system"),
        (
            "message_layout: alternating_no_system\nroles: {judge: {message_layout: alternating}}\n",
            "alternating",
        ),
    ],
)
def test_the_judge_takes_the_run_layout_unless_roles_judge_says_otherwise(
    tmp_path: Path, config: str, layout: str
) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text(config, encoding="utf-8")
    assert resolve(path, {}, ["ctrs"], 1).judge.message_layout == layout
