"""Render real chat templates (tests/data/chat-templates/) the way servers do.

Hugging Face ``transformers`` (which vLLM uses) compiles a model's template in jinja2's
``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols``
extension, a ``tojson`` filter that keeps non-ASCII text, and the globals ``raise_exception``
(raises ``TemplateError``) and ``strftime_now``; it renders with ``messages``, ``tools``,
``documents``, ``add_generation_prompt`` and the special tokens. llama.cpp (``--jinja``) runs the
same templates with the same globals. A template that raises is what a server answers 400 to.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES_DIR = Path(__file__).parent / "data" / "chat-templates"
TEMPLATES = sorted(path.stem for path in TEMPLATES_DIR.glob("*.jinja"))
SYSTEMLESS = frozenset({"google-gemma-2-2b-it"})
"""Templates that refuse any system message ("System role not supported")."""
STRICT = frozenset(
    {"google-gemma-2-2b-it", "mistralai-Mistral-Nemo-Instruct-2407", "Mistral-Small-3.2-24B-Instruct-2506"}
)
"""Templates that raise unless user and assistant alternate after the system message."""


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@cache
def compiled(name: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string((TEMPLATES_DIR / f"{name}.jinja").read_text(encoding="utf-8"))


def render(name: str, messages: list[dict[str, str]]) -> str:
    """The prompt text the server would tokenize; raises ``TemplateError`` when it refuses."""
    return compiled(name).render(
        messages=messages,
        tools=None,
        documents=None,
        add_generation_prompt=True,
        bos_token="<s>",
        eos_token="</s>",
    )
