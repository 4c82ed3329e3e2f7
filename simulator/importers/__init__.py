"""Importers: third-party persona data to patient-persona dicts and YAML files.

One converter per source format turns one record into a dict that validates as
:class:`simulator.personas.Patient`. Fields with a home in our schema go there; everything
else stays under ``extra`` (snake_case keys named after the source fields), with
``extra.source`` naming the dataset, the file and the record, so that nothing is lost, and
``extra.license`` the licence of the file it came from (the export's dataset card shows both).

Formats (see ``FORMATS``):

- ``patient-psi``: Patient-Ψ cognitive conceptualisation diagrams (``patient-psi/profiles.json``,
  ``patienthub/patientPsi.json``).
- ``talkdep``: TalkDep depression profiles (``patienthub/talkDep.json``).
- ``consistent-mi``: ConsistentMI motivational-interviewing clients (``patienthub/consistentMI.json``);
  written in the second person ("You smoke weed..."), turned into the first person here.
- ``eeyore``: Eeyore depression profiles (``patienthub/eeyore.json``); the structured ``profile``
  is used, and when a record has none its profile lines are parsed out of the system prompt.

Sources without names (ConsistentMI, Eeyore) get a gender-neutral first name, picked
deterministically from the record id, because transcripts open with "Hi, I'm NAME".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.errors import InputError
from simulator.importers.common import RecordError, _kind, make_id, unique_id
from simulator.importers.consistent_mi import from_consistent_mi, you_to_i
from simulator.importers.eeyore import from_eeyore, parse_profile_prompt
from simulator.importers.patient_psi import from_patient_psi
from simulator.importers.talkdep import from_talkdep
from simulator.personas import ID_PATTERN, Patient
from simulator.store import atomic_write
from simulator.yamlfile import validation_errors

__all__ = [
    "FORMATS",
    "LICENSES",
    "RecordError",
    "dump_persona",
    "from_consistent_mi",
    "from_eeyore",
    "from_patient_psi",
    "from_talkdep",
    "import_file",
    "make_id",
    "parse_profile_prompt",
    "write_personas",
    "you_to_i",
]

Converter = Callable[..., dict[str, Any]]

FORMATS: dict[str, Converter] = {
    "patient-psi": from_patient_psi,
    "talkdep": from_talkdep,
    "consistent-mi": from_consistent_mi,
    "eeyore": from_eeyore,
}

LICENSES: dict[str, str] = {fmt: "MIT" for fmt in FORMATS}
"""SPDX licence of the files each format reads, as published: PatientHub (Sahandfer/PatientHub)
and Patient-Ψ (ruiyiw/patient-psi) are MIT. The datasets behind them may carry their own terms;
``simulator import --license`` records another licence."""


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "expected a JSON file, found a directory") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def import_file(fmt: str, path: Path, *, license: str | None = None) -> list[dict[str, Any]]:
    """Every record of ``path`` (a JSON list in format ``fmt``) as a patient-persona dict;
    ids are unique within the file; ``extra.license`` is ``license``, else the format's
    (:data:`LICENSES`). Problems raise :class:`InputError` naming the file."""
    converter = FORMATS.get(fmt)
    if converter is None:
        raise InputError(path, f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    data = _read_json(path)
    if not isinstance(data, list):
        raise InputError(path, f"expected a JSON list of {fmt} records, found {_kind(data)}")
    if not data:
        raise InputError(path, "no records: the JSON list is empty")
    personas: list[dict[str, Any]] = []
    used: set[str] = set()
    for index, record in enumerate(data):
        if not isinstance(record, dict):
            raise InputError(path, f"record {index}: expected a JSON object, found {_kind(record)}")
        try:
            persona = converter(record, file=path.name, index=index)
        except RecordError as exc:
            raise InputError(path, f"record {index}: {exc}") from None
        persona["id"] = unique_id(persona["id"], used)
        persona["extra"]["license"] = license or LICENSES[fmt]
        _check(persona, f"{path} (record {index})")
        personas.append(persona)
    return personas


def _check(persona: Mapping[str, Any], source: str) -> Patient:
    try:
        return Patient.model_validate(persona)
    except ValidationError as exc:
        raise validation_errors(source, exc) from None


def dump_persona(persona: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(persona), sort_keys=False, allow_unicode=True)


def write_personas(
    personas: Sequence[Mapping[str, Any]], out_dir: Path, *, force: bool = False
) -> list[Path]:
    """One ``ID.yaml`` per persona in ``out_dir``, each written atomically. Nothing is written
    if any file exists already (unless ``force``) or two personas share an id."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "output path exists and is not a directory")
    targets: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for number, persona in enumerate(personas):
        ident = persona.get("id")
        if not isinstance(ident, str) or not ID_PATTERN.fullmatch(ident):
            raise InputError(out_dir, f"persona {number}: invalid or missing id {ident!r}")
        if ident in seen:
            raise InputError(out_dir, f"two personas have the id {ident!r}")
        seen.add(ident)
        path = out_dir / f"{ident}.yaml"
        _check(persona, str(path))
        if path.is_dir():
            raise InputError(path, "exists and is a directory")
        if path.exists() and not force:
            raise InputError(path, "already exists; pass --force to overwrite")
        targets.append((path, dump_persona(persona)))
    written: list[Path] = []
    for path, text in targets:
        try:
            atomic_write(path, text)
        except OSError as exc:
            raise InputError(path, f"cannot write: {exc.strerror or exc}") from None
        written.append(path)
    return written
