"""Persona files: typed models for patients and therapists, loaded with ``yaml.safe_load``."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from simulator.errors import InputError
from simulator.layout import RESERVED_NAMES
from simulator.limits import MAX_SESSION
from simulator.yamlfile import load_mapping, parse_model

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Characters that reorder text on screen (a name could show one thing and be another)."""


def id_problem(value: str) -> str | None:
    if value in RESERVED_NAMES:
        return f"invalid id {value!r}: the name is reserved for the run folder's own files"
    if ID_PATTERN.fullmatch(value):
        return None
    return (
        f"invalid id {value!r}: use 1-64 lowercase letters, digits, '_' or '-', "
        "starting with a letter or digit"
    )


def _check_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _single_line(value: str) -> str:
    """Names and labels end up inside lines of a transcript or prompt: no line breaks, no
    control characters, no bidi overrides, so no value can forge a ``Therapist:`` line."""
    for char in value:
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise ValueError(
                f"must be one line of plain text; found the character U+{ord(char):04X} "
                f"({unicodedata.name(char, 'a control character').lower()})"
            )
    return value


def _session_number(value: int) -> int:
    if not 1 <= value <= MAX_SESSION:
        raise ValueError(f"session {value} is out of range: sessions are numbered 1 to {MAX_SESSION}")
    return value


PersonaId = Annotated[str, AfterValidator(_check_id)]
Line = Annotated[str, AfterValidator(_single_line)]
SessionNumber = Annotated[int, AfterValidator(_session_number)]


def validate_id(value: str, source: Path | str | None = None) -> str:
    """Ids become folder names: refuse anything that could escape or collide."""
    problem = id_problem(value)
    if problem is not None:
        raise InputError(source, problem)
    return value


def _text_or_list(value: Any) -> Any:
    if isinstance(value, list):
        return [str(v) for v in value]
    return value


TextOrList = Annotated[str | list[str], BeforeValidator(_text_or_list)]


class _Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: Line = Field(min_length=1)
    id: PersonaId | None = None
    modality: Line = "CBT"
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        assert self.id is not None, "loaded personas always carry an id"
        return self.id


class Patient(_Persona):
    role: Literal["patient"]
    age: int | None = None
    pronouns: Line | None = None
    occupation: Line | None = None
    presenting_problems: list[str] = Field(default_factory=list)
    background: str | None = None
    personality: str | None = None
    speech_style: str | None = None
    goals: list[str] = Field(default_factory=list)
    core_beliefs: TextOrList = Field(default_factory=list)
    intermediate_beliefs: TextOrList = Field(default_factory=list)
    coping_strategies: TextOrList = Field(default_factory=list)
    sessions: dict[SessionNumber, str] = Field(default_factory=dict)

    def notes_for(self, session_number: int) -> str | None:
        return self.sessions.get(session_number)


class Therapist(_Persona):
    role: Literal["therapist"]
    style: str | None = None
    techniques: list[str] = Field(default_factory=list)
    guidelines: str | None = None


class LoadedPersona(BaseModel):
    """A persona with where it came from, for digests in run.json."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    persona: Patient | Therapist
    path: Path
    digest: str
    text: str


def load_persona(path: Path) -> LoadedPersona:
    """Load one persona file; every problem becomes an :class:`InputError` naming the file."""
    data = load_mapping(path, "persona file")
    role = data.get("role")
    if role not in ("patient", "therapist"):
        raise InputError(path, f"key 'role' must be 'patient' or 'therapist', found {role!r}")
    data.setdefault("id", path.stem)
    if not isinstance(data["id"], str):
        raise InputError(path, "key 'id' must be a string")
    validate_id(data["id"], f"{path} (key 'id', default: the file name)")
    model: type[Patient] | type[Therapist] = Patient if role == "patient" else Therapist
    persona = parse_model(model, data, path)
    text = path.read_text(encoding="utf-8")
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return LoadedPersona(persona=persona, path=path, digest=digest, text=text)


def load_therapist(path: Path) -> LoadedPersona:
    loaded = load_persona(path)
    if not isinstance(loaded.persona, Therapist):
        raise InputError(path, "this is a patient persona; --therapist takes a therapist persona")
    return loaded
