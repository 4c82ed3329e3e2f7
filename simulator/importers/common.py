"""What every importer shares: ids and invented names, typed access to one record
(every problem a :class:`RecordError` naming the key), and assembling a persona dict in the
order of a hand-written one. Package-internal: the format modules import these helpers."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from simulator.personas import ID_PATTERN

ID_MAX = 64

_NAMES = (
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Casey",
    "Riley",
    "Morgan",
    "Jamie",
    "Avery",
    "Quinn",
    "Robin",
    "Drew",
    "Charlie",
    "Jesse",
    "Kai",
    "Reese",
    "Rowan",
    "Sage",
    "Emerson",
    "Frankie",
)

_PERSONA_KEYS = (
    "role",
    "id",
    "name",
    "modality",
    "age",
    "pronouns",
    "occupation",
    "presenting_problems",
    "background",
    "personality",
    "speech_style",
    "goals",
    "core_beliefs",
    "intermediate_beliefs",
    "coping_strategies",
    "extra",
)


class RecordError(ValueError):
    """One record does not have the shape its format needs (message without the file)."""


_TRANSLIT = str.maketrans({"æ": "ae", "ø": "o", "đ": "d", "ł": "l", "œ": "oe", "þ": "th", "ð": "d"})


def slug(text: str) -> str:
    """``"José O'Brien"`` -> ``jose_obrien``: ASCII letters and digits joined by ``_``."""
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_TRANSLIT)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"['’‘`´ʼ]", "", text)
    text = re.sub(r"[^a-z0-9]+", "_", text)
    return text.strip("_")


def make_id(prefix: str, *parts: str) -> str:
    """A persona id ``prefix_part_part`` that matches ``ID_PATTERN``; parts with no ASCII
    letters or digits at all (a name in another script) become a short hash."""
    pieces = [slug(prefix)]
    for part in parts:
        piece = slug(part)
        if not piece and part.strip():
            piece = "u" + hashlib.sha256(part.strip().encode()).hexdigest()[:8]
        if piece:
            pieces.append(piece)
    ident = "_".join(p for p in pieces if p)[:ID_MAX].rstrip("_-") or "persona"
    assert ID_PATTERN.fullmatch(ident), ident
    return ident


def unique_id(ident: str, used: set[str]) -> str:
    """``ident``, or ``ident_2``, ``ident_3``, ... (kept within 64 characters)."""
    candidate, n = ident, 1
    while candidate in used:
        n += 1
        suffix = f"_{n}"
        candidate = ident[: ID_MAX - len(suffix)].rstrip("_-") + suffix
    used.add(candidate)
    return candidate


def _invented_name(key: str) -> str:
    return _NAMES[hashlib.sha256(key.encode()).digest()[0] % len(_NAMES)]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
_NUMBERED = re.compile(r"\(\d+\)\s*")


def _items(text: str | None) -> list[str]:
    """Prose to a list of items: one per line, numbered ``(1) ... (2) ...`` parts kept whole,
    other lines split into sentences."""
    items: list[str] = []
    for line in (text or "").splitlines():
        if _NUMBERED.search(line):
            items += [p.strip() for p in _NUMBERED.split(line) if p.strip()]
        else:
            items += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return items


def _join(parts: Iterable[str | None]) -> str | None:
    """Sentences to one paragraph; a part without final punctuation gets a full stop."""
    sentences = [p.strip() for p in parts if p and p.strip()]
    text = " ".join(s if s[-1] in ".!?\"'”’)" else s + "." for s in sentences)
    return text or None


def _pronouns(gender: str | None) -> str | None:
    key = (gender or "").strip().lower()
    if key in ("male", "man", "m", "boy"):
        return "he/him"
    if key in ("female", "woman", "f", "girl"):
        return "she/her"
    if key in ("non-binary", "nonbinary", "nb"):
        return "they/them"
    return None


def _age(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value < 130:
        return value
    if isinstance(value, str) and value.strip().isdigit() and 0 < int(value) < 130:
        return int(value)
    return None


def _key(name: str) -> str:
    """Source field name to an ``extra`` key: ``"Acceptable Plans"`` -> ``acceptable_plans``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _lower_title(text: str) -> str:
    """``"Sleep Disturbances"`` -> ``"sleep disturbances"``; acronyms stay as they are."""
    return " ".join(w.lower() if w[1:] == w[1:].lower() else w for w in text.split())


# typed access to one record; every problem is a RecordError naming the key


def _require(record: Mapping[str, Any], keys: Sequence[str], fmt: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        found = ", ".join(repr(k) for k in list(record)[:6]) or "none"
        raise RecordError(f"not a {fmt} record: missing key {missing[0]!r} (keys found: {found})")


def _text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f"key {key!r} must be text, found {_kind(value)}")
    return str(value).strip() or None


def _texts(record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise RecordError(f"key {key!r} must be a list of text, found {_kind(value)}")
    return [str(v).strip() for v in value if str(v).strip()]


def _mapping(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"key {key!r} must be an object, found {_kind(value)}")
    return value


def _records(record: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RecordError(f"key {key!r} must be a list of objects, found {_kind(value)}")
    return value


def _name(record: Mapping[str, Any], key: str = "name") -> str:
    name = _text(record, key)
    if not name:
        raise RecordError(f"key {key!r} is missing or empty")
    return " ".join(name.split())


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "null" if value is None else type(value).__name__


def _persona(
    *, extra: dict[str, Any], unmapped: Mapping[str, Any], source: str, **fields: Any
) -> dict[str, Any]:
    """Keys in the order of a hand-written persona, empty values left out. ``unmapped`` source
    fields join ``extra`` (prefixed ``original_`` if a key is taken, ``source`` and ``license``
    included: the importer writes those); ``extra.source`` comes last."""
    merged = {k: v for k, v in extra.items() if not _empty(v)}
    for key, value in unmapped.items():
        if not _empty(value):
            taken = key in merged or key in ("source", "license")
            merged[_free(f"original_{key}" if taken else key, merged)] = value
    merged["source"] = source
    fields["extra"] = merged
    return {k: fields[k] for k in _PERSONA_KEYS if not _empty(fields.get(k))}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _unmapped(record: Mapping[str, Any], mapped: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key not in mapped:
            out[_free(_key(key) or "field", out)] = value
    return out


def _free(key: str, taken: Mapping[str, Any]) -> str:
    """``key``, or ``key_2``, ``key_3``, ... whichever is not in ``taken``."""
    candidate, n = key, 1
    while candidate in taken:
        n += 1
        candidate = f"{key}_{n}"
    return candidate
