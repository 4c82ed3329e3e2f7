"""``simulator evaluate`` as a library call: read the run, plan the cases, judge them
concurrently into the evaluation folder, and write eval.json.

:func:`prepare` (and :func:`prepare_resume`) check every input and render every prompt before
anything is written, so bad input leaves nothing behind; :meth:`Evaluation.execute` then does
the work under the folder's lock. A case's record is written as soon as its repeats are
judged, so a killed evaluation resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.backends import Cast
from simulator.backends.ratelimit import CHARS_PER_TOKEN
from simulator.errors import InputError, RunStateError
from simulator.evaluate.answers import JUDGE_FAILED, UNSUPPORTED_EVIDENCE, answer_schema
from simulator.evaluate.cases import Case, SeriesSession, make_case
from simulator.evaluate.folder import JUDGED, RESERVED, EvalFolder
from simulator.evaluate.judge import Judge, Judgment
from simulator.evaluate.metrics import session_metrics
from simulator.evaluate.prompts import judge_prompt
from simulator.evaluate.report import build_report, case_scores, count_status
from simulator.evaluate.rubrics import Rubric, load_rubrics
from simulator.evaluate.settings import EvalSettings, resolve
from simulator.layout import EVAL_DIR, new_run_id
from simulator.message_layout import Layout, Layouts
from simulator.personas import Patient, Therapist, load_persona
from simulator.protocol import ChatBackend
from simulator.reader import Run, RunSession, read_run
from simulator.records import TokenCounts
from simulator.session import now

log = logging.getLogger(__name__)

DAMAGED = "damaged"
"""The skipped status of a session whose record does not parse."""
MISSING = "missing"
"""The skipped status of a session run.json lists as ended but whose record is not on disk."""
REPLY_TOKENS_PER_ANSWER = 120
"""A rationale, a quote or two and the JSON around them: the dry run's guess per answer."""


@dataclass(frozen=True)
class EvalEvent:
    """A case finished: for progress lines."""

    done: int
    total: int
    case: Case
    status: str
    tokens: int


@dataclass(frozen=True)
class Estimate:
    """What judging would cost, before anything is spent."""

    cases: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


@dataclass
class Outcome:
    report: dict[str, Any]
    folder: EvalFolder

    @property
    def exit_code(self) -> int:
        """1 when some item stayed ``judge_failed``, else 0."""
        return 1 if self.report["summary"]["judge"][JUDGE_FAILED] else 0


Listener = Callable[[EvalEvent], None]


@dataclass
class Evaluation:
    run: Run
    rubrics: list[Rubric]
    settings: EvalSettings
    sessions: list[SeriesSession]
    skipped: list[dict[str, Any]]
    cases: list[Case]
    folder: EvalFolder | None = None
    """An existing evaluation folder (``--resume``); None makes a new one."""
    prompt_chars: int = 0
    not_applicable: dict[str, int] = field(default_factory=dict)

    @property
    def unused(self) -> list[Rubric]:
        """Rubrics that apply to no session of the run (modality, scope)."""
        used = {case.rubric.name for case in self.cases}
        return [rubric for rubric in self.rubrics if rubric.name not in used]

    def estimate(self) -> Estimate:
        """First-attempt calls and tokens (prompt characters / 4; a reply of ``max_tokens``, or
        when unset about ``REPLY_TOKENS_PER_ANSWER`` per item, and per summary bullet for
        bullet items), and their cost at the judge model's ``prices``."""
        repeats = self.settings.repeats
        limit = self.settings.judge.max_tokens
        replies = sum(
            limit or REPLY_TOKENS_PER_ANSWER * sum(c.bullets if i.kind == "bullets" else 1 for i in c.items)
            for c in self.cases
        )
        prompt = self.prompt_chars // CHARS_PER_TOKEN * repeats
        completion = replies * repeats
        return Estimate(
            len(self.cases),
            len(self.cases) * repeats,
            prompt,
            completion,
            self.settings.cost(TokenCounts(prompt_tokens=prompt, completion_tokens=completion)),
        )

    async def execute(self, listener: Listener | None = None, backend: ChatBackend | None = None) -> Outcome:
        """Judge what is not judged yet and write eval.json. ``backend`` replaces the configured
        one (tests, embedding). Raises BackendError when the endpoint refuses the key or model."""
        owned = backend is None and self.settings.judging and bool(self.cases)
        chat = self.settings.make_backend(self._cast()) if owned else backend  # fails before any write
        try:
            folder = self.folder
            if folder is None:
                folder = EvalFolder(self.run.path, new_run_id())
                folder.create(self.settings, self.rubrics)
                self.folder = folder
            with folder.lock():
                report = await self._execute(folder, listener, chat)
        finally:
            if owned and chat is not None:
                await chat.aclose()
        return Outcome(report, folder)

    def _cast(self) -> Cast:
        """The run's personas, for a registry backend that speaks from them."""
        patients = {s.persona_id: s.patient for s in self.sessions}
        return Cast(tuple(patients.values()), self.sessions[0].therapist)

    async def _execute(
        self, folder: EvalFolder, listener: Listener | None, chat: ChatBackend | None
    ) -> dict[str, Any]:
        created = _created_at(folder)
        head = self._head(folder, "running", created, None)
        folder.write_report(build_report(head, self.rubrics, [], [], repeats=self.settings.repeats))
        status = "failed"
        judge: Judge | None = None
        try:
            judge = await self._judge_all(folder, listener, chat)
            status = "complete"
        except (asyncio.CancelledError, KeyboardInterrupt):
            status = "interrupted"
            raise
        finally:
            report = self._report(folder, created, status, judge)
            folder.write_report(report)
        return report

    async def _judge_all(
        self, folder: EvalFolder, listener: Listener | None, chat: ChatBackend | None
    ) -> Judge | None:
        todo = [c for c in self.cases if not folder.is_judged(*c.key)] if self.settings.judging else []
        if not todo or chat is None:
            return None
        layouts = Layouts({"judge": self.settings.judge.message_layout or "alternating"})
        layouts.listeners.append(lambda _role, old, new, _said: self._layout_changed(folder, old, new))
        judge = Judge(chat, self.settings.role(), layouts)
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        done = 0

        async def repeat(case: Case, number: int) -> Judgment:
            async with semaphore:
                return await judge.judge(case, number)

        async def one(case: Case) -> None:
            nonlocal done
            numbers = range(1, self.settings.repeats + 1)
            judgments = list(await asyncio.gather(*(repeat(case, n) for n in numbers)))
            record = self._record(case, judgments)
            folder.write_record(record)
            done += 1
            if listener is not None:
                tokens = record["usage"]["prompt_tokens"] + record["usage"]["completion_tokens"]
                listener(EvalEvent(done, len(todo), case, record["status"], tokens))

        tasks = [asyncio.create_task(one(case)) for case in todo]
        try:
            finished, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failure = next((t.exception() for t in finished if not t.cancelled() and t.exception()), None)
            if failure is not None:
                raise failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return judge

    def _layout_changed(self, folder: EvalFolder, old: Layout, new: Layout) -> None:
        """The server's chat template refused ``old``: keep ``new`` for --resume and say so."""
        judge = self.settings.judge.model_copy(update={"message_layout": new})
        self.settings = self.settings.model_copy(update={"judge": judge})
        folder.save_settings(self.settings)
        log.warning(
            "judge: the server's chat template refused the '%s' message layout; "
            "using '%s' for the rest of the evaluation (saved in settings.json)",
            old,
            new,
        )

    def _record(self, case: Case, judgments: list[Judgment]) -> dict[str, Any]:
        data = [j.as_dict() for j in judgments]
        usage = TokenCounts()
        for judgment in judgments:
            usage.merge(judgment.usage)
        failed = count_status(data, flag=JUDGE_FAILED)
        return {
            "rubric": case.rubric.name,
            "rubric_digest": case.rubric.digest,
            "applies_to": case.rubric.spec.applies_to,
            "persona_id": case.session.persona_id,
            "session_number": case.session.number,
            "status": JUDGE_FAILED if failed else JUDGED,
            "backend": self.settings.backend,
            "model": self.settings.judge_model,
            "items": [item.id for item in case.scored],
            "scores": case_scores(data, case.scored),
            "flags": {
                UNSUPPORTED_EVIDENCE: count_status(data, flag=UNSUPPORTED_EVIDENCE),
                JUDGE_FAILED: failed,
            },
            "usage": usage.model_dump(),
            "judged_at": now(),
            "judgments": data,
        }

    def _head(self, folder: EvalFolder, status: str, created: str, judge: Judge | None) -> dict[str, Any]:
        settings = self.settings
        structured = None if judge is None or judge.structured is None else judge.structured
        return {
            "eval_id": folder.eval_id,
            "run_id": self.run.run_id,
            "run_dir": str(self.run.path),
            "status": status,
            "created_at": created,
            "ended_at": None if status == "running" else now(),
            "judge": {
                "judging": settings.judging,
                "notice": settings.notice,
                "backend": settings.backend,
                "model": settings.judge_model,
                "repeats": settings.repeats,
                "seeds": [(settings.judge.seed or 0) + r for r in range(settings.repeats)],
                "response_format": None
                if structured is None
                else ("json_schema" if structured else "prompt"),
                "settings": settings.role().model_dump(mode="json"),
            },
            "rubrics": {r.name: _describe(r) for r in self.rubrics},
            "not_applicable": self.not_applicable,
            "skipped": self.skipped,
        }

    def _report(self, folder: EvalFolder, created: str, status: str, judge: Judge | None) -> dict[str, Any]:
        records = [r for c in self.cases if (r := folder.read_record(*c.key)) is not None]
        metrics = [session_metrics(s.record) for s in self.sessions]
        head = self._head(folder, status, created, judge)
        if status == "complete" and any(r["status"] == JUDGE_FAILED for r in records):
            head["status"] = JUDGE_FAILED
        return build_report(
            head, self.rubrics, metrics, records, repeats=self.settings.repeats, cost=self.settings.cost
        )


def _describe(rubric: Rubric) -> dict[str, Any]:
    spec = rubric.spec
    return {
        "title": spec.title,
        "applies_to": spec.applies_to,
        "modalities": spec.modalities,
        "source": spec.source,
        "digest": rubric.digest,
        "items": {
            item.id: {"name": item.name, "kind": item.kind, "label": item.label, "scale": item.scale}
            for item in spec.items
        },
    }


def _created_at(folder: EvalFolder) -> str:
    """When the evaluation began: kept from the first eval.json across resumes."""
    try:
        earlier = json.loads(folder.eval_file.read_text(encoding="utf-8"))
        return str(earlier["created_at"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return now()


def _series(run: Run) -> tuple[list[SeriesSession], list[dict[str, Any]]]:
    """Every complete session with its personas and the complete sessions before it; the
    others are listed as skipped with their status (``damaged`` and the problem for a session
    file that does not parse: the rest of the run is still evaluated)."""
    therapist = load_persona(run.therapist_file).persona
    if not isinstance(therapist, Therapist):
        raise InputError(run.therapist_file, "the run's therapist snapshot is not a therapist persona")
    sessions: list[SeriesSession] = []
    skipped: list[dict[str, Any]] = []
    for persona_id in run.persona_ids:
        patient = load_persona(run.persona_file(persona_id)).persona
        if not isinstance(patient, Patient):
            raise InputError(run.persona_file(persona_id), "the run's persona snapshot is not a patient")
        earlier: list[Any] = []
        for number in sorted(run.index.sessions.get(persona_id, {})):
            where: dict[str, Any] = {"persona_id": persona_id, "session_number": number}
            try:
                found = run.session(persona_id, number)
            except RunStateError as exc:
                skipped.append({**where, "status": DAMAGED, "problem": str(exc)})
                continue
            if not found.complete or found.record is None:
                skipped.append({**where, "status": found.status if found.record else _without_record(found)})
                continue
            sessions.append(SeriesSession(patient, therapist, found.record, tuple(earlier)))
            earlier.append(found.record)
    if skipped:
        kinds = Counter(s["status"] for s in skipped)
        log.warning(
            "%d session(s) not complete, not evaluated (%s): listed under skipped in eval.json",
            len(skipped),
            ", ".join(f"{n} {status}" for status, n in sorted(kinds.items())),
        )
    for damaged in (s for s in skipped if s["status"] == DAMAGED):
        log.warning("%s", damaged["problem"])
    return sessions, skipped


def _without_record(found: RunSession) -> str:
    """A session with no record on disk: ``missing`` when run.json says it ended, else its
    status there (``pending``, ``running``), as `simulator view` marks it."""
    return MISSING if found.entry.status in ("complete", "failed", "interrupted") else found.entry.status


def _plan(run: Run, rubrics: list[Rubric], settings: EvalSettings, folder: EvalFolder | None) -> Evaluation:
    for rubric in rubrics:
        if rubric.name in RESERVED:
            raise InputError(rubric.path, f"a rubric cannot be named {rubric.name!r}")
    sessions, skipped = _series(run)
    evaluation = Evaluation(run, rubrics, settings, sessions, skipped, [], folder)
    for rubric in rubrics:
        for session in sessions:
            case = make_case(rubric, session)
            if case is None:
                evaluation.not_applicable[rubric.name] = evaluation.not_applicable.get(rubric.name, 0) + 1
                continue
            schema = answer_schema(list(case.items), case.bullets)
            prompt = judge_prompt(rubric, case.context, list(case.items), case.bullets, schema)
            evaluation.prompt_chars += len(prompt.system) + sum(len(text) for _, text in prompt.parts)
            evaluation.cases.append(case)
    return evaluation


def prepare(
    run_dir: Path,
    *,
    rubric_names: list[str],
    rubrics_dir: Path | None,
    config_file: Path | None,
    flags: dict[str, Any],
    repeats: int,
) -> Evaluation:
    """Check the run folder, rubrics and settings and render every prompt; writes nothing."""
    run = read_run(run_dir)
    rubrics = load_rubrics(rubric_names, rubrics_dir)
    settings = resolve(config_file, flags, [r.name for r in rubrics], repeats)
    return _plan(run, rubrics, settings, None)


def prepare_resume(run_dir: Path, eval_id: str, *, concurrency: int | None = None) -> Evaluation:
    """An interrupted evaluation with its own saved settings and rubric snapshot."""
    run = read_run(run_dir)
    try:
        folder = EvalFolder(run_dir, eval_id)
    except InputError:
        raise InputError(
            "--resume", f"invalid evaluation id {eval_id!r} (the ids are the folders in {run_dir / EVAL_DIR})"
        ) from None
    if not folder.path.is_dir():
        raise InputError(folder.path, f"no evaluation {eval_id!r} in {run_dir / EVAL_DIR}")
    settings = folder.settings()
    if concurrency is not None:
        settings = settings.model_copy(update={"concurrency": concurrency})
    rubrics = load_rubrics(settings.rubrics, folder.rubrics_dir)
    return _plan(run, rubrics, settings, folder)
