"""The Hugging Face ``features`` of a session record, for the dataset card of ``--format records``.

``datasets`` types each JSONL split on its own and then casts the others to the first one's
types, so a field that is null in every session of one split (the seed of a run made without
one, the offline backend's models) fails the load of the whole folder. Declared in the card,
every split is read with the same types. They are derived from :class:`SessionRecord` itself,
so they follow the record's fields; maps keyed by role (``usage``, ``models``) list the roles.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel

from simulator.config import ROLES
from simulator.records import SessionRecord

DTYPES: dict[Any, str] = {int: "int64", float: "float64", bool: "bool", str: "string"}


def record_features() -> list[dict[str, Any]]:
    """``dataset_info.features`` in the card's YAML form (a list of named fields)."""
    return _fields(SessionRecord)


def _fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    return [{"name": name, **_feature(field.annotation)} for name, field in model.model_fields.items()]


def _feature(annotation: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _feature(inner)
    if origin is Literal:
        return {"dtype": DTYPES[type(args[0])]}
    if origin is list:
        item = _feature(args[0])
        return {"list": item.get("struct", item.get("dtype"))}
    if origin is dict:
        return {"struct": [{"name": role, **_feature(args[1])} for role in ROLES]}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"struct": _fields(annotation)}
    return {"dtype": DTYPES[annotation]}
