"""Rubrics as files: ``NAME.yaml`` (metadata, items, scales, anchors) beside ``NAME.j2`` (the
prompt that shows the judge the material).

Bundled rubrics are package data; ``--rubrics DIR`` overrides them by name and adds new ones.
A rubric is validated like a persona (``yaml.safe_load``, pydantic with unknown keys refused),
and every scale point of every rated item must have an anchor description, so a judge never
scores against a bare number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from simulator.errors import InputError
from simulator.personas import validate_id
from simulator.yamlfile import load_mapping, parse_model

AppliesTo = Literal["therapist", "patient", "summary", "series"]
"""What one judgment looks at: the therapist's or the patient's side of a session, a session's
summary against its transcript, or session k of a series against the sessions before it."""
ItemKind = Literal["rating", "count", "ratio", "bullets", "list"]
ANY_MODALITY = "any"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(_Strict):
    """One thing the judge scores (or, for ``ratio``, one number derived from counts).

    - ``rating``: an integer on ``scale: [min, max]``, one anchor per point;
    - ``count``: how many times something happens (judge-counted, labelled so);
    - ``ratio``: sum of ``numerator`` counts over sum of ``denominator`` counts, not asked;
    - ``bullets``: the judge labels every summary bullet with one of the ``anchors`` keys;
      the score is the share labelled ``positive``;
    - ``list``: the judge lists findings (each with evidence); the score is how many.
    """

    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    name: Text
    kind: ItemKind = "rating"
    question: Text | None = None
    scale: tuple[int, int] | None = None
    anchors: dict[int | str, Text] = Field(default_factory=dict)
    positive: str | None = None
    numerator: list[str] = Field(default_factory=list)
    denominator: list[str] = Field(default_factory=list)
    requires: Literal["session_notes"] | None = None
    """Asked only for sessions that have this (``session_notes``: the persona's scripted event)."""

    @model_validator(mode="after")
    def _check_kind(self) -> Item:
        if self.kind != "ratio" and self.question is None:
            raise ValueError(f"item {self.id!r}: a {self.kind} item needs a 'question'")
        if self.kind == "rating":
            self._check_scale()
        elif self.kind == "bullets":
            labels = [str(label) for label in self.anchors]
            if len(labels) < 2:
                raise ValueError(f"item {self.id!r}: a bullets item needs an anchor for each of 2+ labels")
            if self.positive not in labels:
                raise ValueError(f"item {self.id!r}: 'positive' must be one of its anchor labels {labels}")
        elif self.kind == "ratio" and (not self.numerator or not self.denominator):
            raise ValueError(f"item {self.id!r}: a ratio item needs 'numerator' and 'denominator'")
        unused = {
            "scale": self.scale is not None and self.kind != "rating",
            "anchors": bool(self.anchors) and self.kind not in ("rating", "bullets"),
            "positive": self.positive is not None and self.kind != "bullets",
            "numerator": bool(self.numerator) and self.kind != "ratio",
            "denominator": bool(self.denominator) and self.kind != "ratio",
        }
        for key, wrong in unused.items():
            if wrong:
                raise ValueError(f"item {self.id!r}: '{key}' does not apply to a {self.kind} item")
        return self

    def _check_scale(self) -> None:
        if self.scale is None:
            raise ValueError(f"item {self.id!r}: a rating item needs 'scale: [min, max]'")
        low, high = self.scale
        if not 0 <= low < high <= 100:
            raise ValueError(f"item {self.id!r}: scale must be [min, max] with 0 <= min < max <= 100")
        points = set(range(low, high + 1))
        given = set(self.anchors)
        missing = sorted(points - given)
        if missing:
            raise ValueError(
                f"item {self.id!r}: scale point(s) {', '.join(map(str, missing))} have no anchor "
                "description (every point of the scale needs one)"
            )
        extra = sorted(str(point) for point in given - points)
        if extra:
            raise ValueError(f"item {self.id!r}: anchor(s) {', '.join(extra)} are outside the scale")

    @property
    def asked(self) -> bool:
        """Whether the judge answers this item (ratios are computed from counts)."""
        return self.kind != "ratio"

    @property
    def labels(self) -> list[str]:
        return [str(label) for label in self.anchors]

    @property
    def label(self) -> str:
        """How the item's number is labelled in eval.json and the table."""
        if self.kind == "rating":
            assert self.scale is not None
            return f"judge rating {self.scale[0]}-{self.scale[1]}"
        return {
            "count": "judge-counted",
            "ratio": "derived from judge counts",
            "bullets": f"share of summary bullets the judge marked {self.positive}",
            "list": "number of findings the judge listed",
        }[self.kind]


class RubricSpec(_Strict):
    """The content of ``NAME.yaml``."""

    title: Text
    description: Text
    applies_to: AppliesTo
    modalities: list[Text] = Field(min_length=1)
    """Persona modalities the rubric suits (case-insensitive), or ``[any]``."""
    source: Text
    """Where the instrument comes from, and that this is the project's own wording of it."""
    items: list[Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_items(self) -> RubricSpec:
        ids = [item.id for item in self.items]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"item id(s) used twice: {', '.join(duplicated)}")
        counts = {item.id for item in self.items if item.kind == "count"}
        for item in self.items:
            for part in (*item.numerator, *item.denominator):
                if part not in counts:
                    raise ValueError(f"item {item.id!r}: {part!r} is not a count item of this rubric")
        if any(item.kind == "bullets" for item in self.items) and self.applies_to != "summary":
            raise ValueError("bullets items only apply to summaries (applies_to: summary)")
        return self


@dataclass(frozen=True)
class Rubric:
    """A loaded rubric: its spec, its prompt template source, and where both came from."""

    name: str
    spec: RubricSpec
    prompt: str
    path: Path
    prompt_path: Path

    @property
    def digest(self) -> str:
        blob = self.path.read_bytes() + b"\0" + self.prompt.encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    @property
    def asked_items(self) -> list[Item]:
        return [item for item in self.spec.items if item.asked]

    def suits(self, modality: str) -> bool:
        wanted = {m.lower() for m in self.spec.modalities}
        return ANY_MODALITY in wanted or modality.lower() in wanted


def bundled_rubrics_dir() -> Path:
    return Path(str(resources.files("simulator") / "data" / "rubrics"))


def available(override: Path | None = None) -> dict[str, Path]:
    """Rubric name -> its YAML file: the bundled ones, then ``override``'s on top."""
    found = {path.stem: path for path in sorted(bundled_rubrics_dir().glob("*.yaml"))}
    if override is not None:
        if not override.is_dir():
            raise InputError(override, "--rubrics must be a directory of NAME.yaml + NAME.j2 rubric files")
        found.update({path.stem: path for path in sorted(override.glob("*.yaml"))})
    return found


def load_rubric(path: Path) -> Rubric:
    """Load and validate one rubric; every problem is an InputError naming the file."""
    name = validate_id(path.stem, f"{path} (the rubric name is the file name)")
    spec = parse_model(RubricSpec, load_mapping(path, "rubric file"), path)
    prompt_path = path.with_suffix(".j2")
    try:
        prompt = prompt_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(prompt_path, f"rubric {name!r} has no prompt template beside its YAML") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(prompt_path, f"cannot read the rubric prompt: {exc}") from None
    return Rubric(name, spec, prompt, path, prompt_path)


def load_rubrics(names: list[str], override: Path | None = None) -> list[Rubric]:
    """The named rubrics (all available ones when ``names`` is empty), in the order given."""
    found = available(override)
    for name in names:
        if name not in found:
            raise InputError("--rubric", f"unknown rubric {name!r} (available: {', '.join(sorted(found))})")
    return [load_rubric(found[name]) for name in dict.fromkeys(names or sorted(found))]
