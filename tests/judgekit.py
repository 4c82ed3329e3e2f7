"""A judge model for the loopback server: it answers rubric requests from the schema it is
sent, with scores that depend on the case and on the request's seed (so repeats disagree a
little and agreement is measured), quotes taken from the transcript it was shown, and faults
on demand: invalid JSON, evidence-less answers, invented quotes, a refused ``response_format``.

Every answer it gives is logged, so tests check eval.json against what the judge really said.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import RecordedRequest, Reply, bad_request, completion

RUBRIC_NAME = re.compile(r"rubric_([a-z0-9_-]+)")
TRANSCRIPT_LINE = re.compile(r"^(?:Patient|Therapist): (.+)$", re.MULTILINE)
INVENTED = "I have never once felt anything like this in my whole life"


def _digest(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


@dataclass
class JudgeModel:
    """The handler. ``invalid``: rubrics answered with prose forever; ``invalid_once``: rubrics
    answered with prose only on the first attempt; ``no_evidence`` / ``invented``: rubrics
    whose ratings carry no quote / a quote nobody said; ``refuse_schema``: 400 whenever a
    request carries ``response_format``."""

    invalid: set[str] = field(default_factory=set)
    invalid_once: set[str] = field(default_factory=set)
    no_evidence: set[str] = field(default_factory=set)
    invented: set[str] = field(default_factory=set)
    refuse_schema: bool = False
    answers: list[dict[str, Any]] = field(default_factory=list)
    """(rubric, case digest, seed, answer) for every valid answer given."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: RecordedRequest) -> Reply:
        body = request.json
        messages = body["messages"]
        if self.refuse_schema and "response_format" in body:
            return bad_request(
                "response_format 'json_schema' is not supported by this server", param="response_format"
            )
        schema = _schema(body)
        rubric = _rubric(body)
        user = next(m["content"] for m in messages if m["role"] == "user")  # any message layout
        retry = messages[-1]["content"] != user
        if rubric in self.invalid or (rubric in self.invalid_once and not retry):
            return self._reply(request, "Sure! Overall I would say the therapist did a great job.")
        seed = int(body.get("seed", 0))
        case = _digest(user)
        answer = {
            name: self._item(rubric, case, seed, name, part, _quotes(user))
            for name, part in schema["properties"].items()
        }
        with self._lock:
            self.answers.append({"rubric": rubric, "case": case, "seed": seed, "answer": answer})
        return self._reply(request, "```json\n" + json.dumps(answer) + "\n```")

    def _item(
        self, rubric: str, case: int, seed: int, name: str, schema: dict[str, Any], quotes: list[str]
    ) -> dict[str, Any]:
        props = schema["properties"]
        evidence = [] if rubric in self.no_evidence else [INVENTED] if rubric in self.invented else quotes[:1]
        if "score" in props:
            points = props["score"]["enum"]
            # The case sets the level, the seed moves it by at most one point: agreement is high, not perfect.
            level = _digest(case, name) % len(points)
            wobble = _digest(case, name, seed) % 3 - 1
            score = points[min(max(level + wobble, 0), len(points) - 1)]
            return {"score": score, "rationale": f"{name} seen in the transcript", "evidence": evidence}
        if "count" in props:
            count = _digest(case, name, seed) % 4 + 1
            return {"count": count, "rationale": f"{count} instances", "evidence": evidence}
        if "bullets" in props:
            numbers = props["bullets"]["items"]["properties"]["bullet"]["enum"]
            return {
                "bullets": [
                    {
                        "bullet": n,
                        "label": "supported" if _digest(case, n, seed) % 4 else "unsupported",
                        "rationale": "checked",
                        "evidence": evidence,
                    }
                    for n in numbers
                ]
            }
        return {"found": []}

    @staticmethod
    def _reply(request: RecordedRequest, content: str) -> Reply:
        return completion(
            content,
            model=str(request.json.get("model")),
            completion_id=f"chatcmpl-judge-{request.index}",
            headers={"x-request-id": f"req-judge-{request.index}"},
            usage={"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020},
        )


def _schema(body: dict[str, Any]) -> dict[str, Any]:
    """The answer schema: from ``response_format`` when sent, else from the system prompt."""
    if "response_format" in body:
        return dict(body["response_format"]["json_schema"]["schema"])
    system = body["messages"][0]["content"]  # or the first user message it is folded into
    return dict(json.loads(system[system.index("{") :].splitlines()[0]))


def _rubric(body: dict[str, Any]) -> str:
    if "response_format" in body:
        return str(body["response_format"]["json_schema"]["name"]).removeprefix("rubric_")
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    found = RUBRIC_NAME.search(user)
    return found[1] if found else _guess(user)


def _guess(user: str) -> str:
    """Without response_format, tell the rubric from the words its template starts with."""
    starts = {
        "Rate the therapist": "ctrs",
        "Code the therapist": "mi",
        "Judge how faithfully": "persona_fidelity",
        "Check the summary": "summary_faithfulness",
        "Judge whether session": "continuity",
        "Judge how real": "realism",
    }
    return next((name for start, name in starts.items() if user.startswith(start)), "custom")


def _quotes(user: str) -> list[str]:
    """Verbatim pieces of the transcript the judge was shown (eight words of a message)."""
    return [" ".join(line.split()[:8]) for line in TRANSCRIPT_LINE.findall(user)] or ["(no transcript)"]
