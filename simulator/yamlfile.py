"""Reading YAML input files safely and turning validation failures into readable lines.

Persona and config files are data from strangers, so the loader has hard limits, each a
clear error naming the file and line: no aliases (an alias bomb of a few hundred bytes
expands to gigabytes), limited nesting depth and file size (:mod:`simulator.limits`), and no
key given twice in one mapping (YAML would silently keep the last one). libyaml's C parser
is used when PyYAML has it, with the same checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import InputError, InputErrors
from simulator.limits import MAX_INPUT_BYTES, MAX_YAML_DEPTH

M = TypeVar("M", bound=BaseModel)
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""``yaml.safe_load``'s loader, in C when PyYAML has libyaml (ten times faster: export reads a
persona file per persona, hundreds of them)."""


class _StrictLoader(SafeLoader):  # type: ignore[valid-type,misc]
    """Safe loading that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor says so
            if first is not None:
                raise _Refused(
                    key_node.start_mark.line + 1, f"key {key!r} is given twice (first on line {first})"
                )
            seen[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


class _Refused(yaml.YAMLError):
    """A limit this loader enforces, found on ``line`` (a ``YAMLError``, so callers that catch
    bad YAML catch it too)."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}")


def _check_events(text: str) -> None:
    """One pass over the parser's events, before anything is built: aliases and depth."""
    try:
        _walk_events(text)
    except yaml.MarkedYAMLError as exc:
        if exc.problem_mark is not None and "nesting depth" in str(exc.problem):
            # libyaml's own ceiling (1,000 levels), hit while scanning ahead of the events
            raise _Refused(exc.problem_mark.line + 1, _too_deep()) from None
        raise


def _too_deep() -> str:
    return f"nested more than {MAX_YAML_DEPTH} levels deep (the limit is {MAX_YAML_DEPTH})"


def _walk_events(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                line, f"YAML aliases (*{event.anchor}) are not allowed: write the value out in full"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise _Refused(
                    line, f"nested more than {MAX_YAML_DEPTH} levels deep (the limit is {MAX_YAML_DEPTH})"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with this module's limits (no aliases, depth, duplicate keys);
    raises :class:`yaml.YAMLError`."""
    _check_events(text)
    return yaml.load(text, Loader=_StrictLoader)


def load_mapping(path: Path, what: str = "file") -> dict[str, Any]:
    """Parse ``path`` safely, within the limits, and insist on a mapping at the top."""
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES and path.is_file():
            raise InputError(
                path,
                f"{what} is {size / 1024 / 1024:.1f} MB; the limit is {MAX_INPUT_BYTES // 1024 // 1024} MB",
            )
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
        data = parse_yaml(text)
    except _Refused as exc:
        raise InputError(path, str(exc)) from None
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
