"""The judge's prompt: a fixed system message with the answer schema, then the rubric's own
template (rendered in Jinja's sandbox, StrictUndefined) and the items with every anchor.

The items block is written here, not in each template, so a rubric's anchors always reach the
judge exactly as the YAML has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from simulator.errors import InputError
from simulator.evaluate.rubrics import Item, Rubric
from simulator.message_layout import Prompt
from simulator.templates import ordinal

SYSTEM = """You are a careful, critical rater of synthetic therapy sessions for a research dataset.
Score only what the material shows, using the anchor descriptions; do not reward what is merely
plausible. Every rationale is one or two sentences. Every evidence entry is a short verbatim quote
of at least three words copied exactly from the material (no paraphrase, no ellipsis, no speaker
label needed).
Answer with one JSON object and nothing else. It must match this JSON schema:
{schema}"""

RETRY = (
    "That reply could not be used: {problem}. Answer again with only the JSON object, "
    "matching the schema exactly."
)
"""Sent after a reply that did not parse or validate, with that reply, so the retry differs."""

_KIND_FORMAT = {
    "rating": '{{"score": <one of the scale points>, "rationale": "...", "evidence": ["quote", ...]}}',
    "count": '{{"count": <integer, 0 or more>, "rationale": "...", "evidence": ["one quote per instance", ...]}}',
    "bullets": (
        '{{"bullets": [{{"bullet": <number>, "label": <one of {labels}>, "rationale": "...", '
        '"evidence": ["quote", ...]}}, ... one entry per bullet]}}'
    ),
    "list": '{{"found": [{{"text": "...", "evidence": ["quote", ...]}}, ...]}}  (an empty list when none)',
}


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["ordinal"] = ordinal
    return env


_ENV = _environment()


def compile_prompt(rubric: Rubric) -> jinja2.Template:
    """The rubric's template, compiled; a syntax error names the file and line."""
    try:
        return _ENV.from_string(rubric.prompt)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            f"{rubric.prompt_path}:{exc.lineno}", f"template syntax error: {exc.message}"
        ) from None


def render_prompt(rubric: Rubric, context: Mapping[str, Any]) -> str:
    """Render the rubric's template; problems are InputErrors naming the template."""
    template = compile_prompt(rubric)
    try:
        return template.render(**context).strip()
    except jinja2.UndefinedError as exc:
        raise InputError(rubric.prompt_path, f"undefined template variable: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise InputError(rubric.prompt_path, f"blocked by the template sandbox: {exc}") from None
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(rubric.prompt_path, f"template error: {exc}") from None


def items_block(items: list[Item], bullets: int) -> str:
    """The items to score, each with its question, scale anchors and answer shape."""
    lines = ["Score these items. The JSON object has one key per item id:"]
    for item in items:
        shape = _KIND_FORMAT[item.kind].format(labels=" / ".join(item.labels))
        lines.append(f"\n- {item.id} ({item.name}): {item.question}")
        if item.kind == "rating":
            lines.extend(f"    {point} = {text}" for point, text in item.anchors.items())
        elif item.kind == "bullets":
            lines.append(f"    Label each of the {bullets} numbered summary bullets:")
            lines.extend(f"    {label} = {text}" for label, text in item.anchors.items())
        lines.append(f"    Answer: {shape}")
    return "\n".join(lines)


def judge_prompt(
    rubric: Rubric, context: Mapping[str, Any], items: list[Item], bullets: int, schema: dict[str, Any]
) -> Prompt:
    """The judge's side of the conversation: laid out for the server's chat template like every
    other role's (:func:`simulator.message_layout.render`)."""
    system = SYSTEM.format(schema=json.dumps(schema, separators=(",", ":")))
    user = render_prompt(rubric, context) + "\n\n" + items_block(items, bullets)
    return Prompt(system, (("user", user),))
