"""Prompt templates: Jinja2 in the sandbox, strict about undefined variables.

Persona text reaches templates only as values, never as template source, so a persona
whose background says ``{{ 7*7 }}`` shows exactly that in the prompt.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from simulator import sandbox
from simulator.errors import InputError, InputErrors

TEMPLATE_NAMES = ("therapist.j2", "patient.j2", "opening.j2", "summarizer.j2", "patient_start.j2")


def ordinal(value: int) -> str:
    """8 -> '8th', 21 -> '21st', 112 -> '112th'."""
    number = int(value)
    teens = 10 <= number % 100 <= 20
    suffix = "th" if teens else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def default_prompts_dir() -> Path:
    return Path(str(resources.files("simulator") / "data" / "prompts"))


class Templates:
    """The prompt templates, each from ``override`` when it has that file, else the default."""

    def __init__(self, override: Path | None = None) -> None:
        if override is not None and not override.is_dir():
            raise InputError(override, "--prompts must be a directory of .j2 templates")
        self.paths: dict[str, Path] = {}
        for name in TEMPLATE_NAMES:
            custom = override / name if override is not None else None
            if custom is not None and custom.exists() and not custom.is_file():
                raise InputError(custom, "a template must be a file (this is a directory or device)")
            self.paths[name] = (
                custom if custom is not None and custom.is_file() else default_prompts_dir() / name
            )
        self._setup({})

    def _setup(self, sources: dict[str, str]) -> None:
        self.env = sandbox.LimitedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )
        self.env.filters["ordinal"] = ordinal
        self._compiled: dict[str, jinja2.Template] = {}
        self._over_limit: dict[str, InputError] = {}
        self.sources: dict[str, str] = sources

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as paths and sources (a Ray worker on another machine has no template
        files); compiled again where it is unpickled."""
        self.load()
        return {"paths": dict(self.paths), "sources": dict(self.sources)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.paths = state["paths"]
        self._setup(state["sources"])

    def load(self) -> Templates:
        """Read and compile every template; all problems are reported together."""
        problems: list[InputError] = []
        for name in TEMPLATE_NAMES:
            try:
                self._template(name)
            except InputError as exc:
                problems.append(exc)
        if problems:
            raise problems[0] if len(problems) == 1 else InputErrors(problems)
        return self

    def digests(self) -> dict[str, str]:
        self.load()
        return {
            name: "sha256:" + hashlib.sha256(self.sources[name].encode()).hexdigest()
            for name in TEMPLATE_NAMES
        }

    def _template(self, name: str) -> jinja2.Template:
        if name in self._compiled:
            return self._compiled[name]
        path = self.paths[name]
        try:
            source = self.sources[name] if name in self.sources else path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(path, f"cannot read template: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(path, "template is not UTF-8 text") from None
        try:
            template = self.env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"{path}:{exc.lineno}", f"template syntax error: {exc.message}") from None
        template.filename = str(path)
        self.sources[name] = source
        self._compiled[name] = template
        return template

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template; errors name the template, the line and the variable.

        A template that went over a resource limit once is not rendered again (each try
        could cost the whole time budget): the same error comes back at once."""
        if name in self._over_limit:
            raise self._over_limit[name]
        try:
            return self._render(name, context)
        except InputError as exc:
            if isinstance(exc.__context__, sandbox.TemplateLimitError | RecursionError | MemoryError):
                self._over_limit[name] = exc
            raise

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        template = self._template(name)
        path = self.paths[name]
        try:
            return sandbox.render(template, context).strip()
        except jinja2.UndefinedError as exc:
            raise InputError(_where(path, exc), f"undefined template variable: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            where = path if isinstance(exc, sandbox.TemplateTimeout) else _where(path, exc)
            raise InputError(where, f"blocked by the template sandbox: {exc}") from None
        except jinja2.TemplateError as exc:
            raise InputError(_where(path, exc), f"template error: {exc}") from None
        except (TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            raise InputError(_where(path, exc), f"template error: {exc}") from None
        except RecursionError:
            raise InputError(path, "template error: macros call each other too deeply") from None
        except (MemoryError, OverflowError) as exc:
            problem = "out of memory" if isinstance(exc, MemoryError) else str(exc)
            raise InputError(path, f"template error: it builds a value too large ({problem})") from None


def _where(path: Path, exc: BaseException) -> str:
    """``path:line`` of the innermost template frame that raised, when Jinja kept it."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return f"{path}:{line}" if line is not None else str(path)
