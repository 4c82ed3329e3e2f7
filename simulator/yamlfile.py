"""Reading YAML input files safely and turning validation failures into readable lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import InputError, InputErrors

M = TypeVar("M", bound=BaseModel)
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""``yaml.safe_load``'s loader, in C when PyYAML has libyaml (ten times faster: export reads a
persona file per persona, hundreds of them)."""


def load_mapping(path: Path, what: str = "file") -> dict[str, Any]:
    """Parse ``path`` with ``yaml.safe_load`` and insist on a mapping at the top."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(path, f"expected a {what}, found a directory") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        raise InputError(path, _yaml_problem(exc)) from None
    if data is None:
        raise InputError(path, f"empty {what}")
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping of keys at the top, found a {_kind(data)}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise InputError(path, f"key {bad[0]!r} is not a string")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in str(exc):
        problem = "unsupported YAML tag (only plain data is allowed): " + str(problem)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"invalid YAML: {where}{problem}"


def _kind(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def validation_errors(source: Path | str, exc: ValidationError) -> InputError:
    """One line per problem, each naming the key path."""
    errors: list[InputError] = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        is_key = bool(parts) and parts[-1] == "[key]"
        loc = ".".join(p for p in parts if p != "[key]")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{loc}'"
        elif err["type"] == "missing":
            msg = f"missing required key '{loc}'"
        else:
            text = err["msg"].removeprefix("Value error, ")
            text = f"the key itself: {text[:1].lower()}{text[1:]}" if is_key else text
            msg = f"key '{loc}': {text}" if loc else text
        errors.append(InputError(source, msg))
    return errors[0] if len(errors) == 1 else InputErrors(errors)


def parse_model(model: type[M], data: dict[str, Any], source: Path | str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_errors(source, exc) from None
