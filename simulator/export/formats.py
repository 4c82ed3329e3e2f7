"""The output formats: OpenAI chat JSONL, ShareGPT JSONL, the engine's own records, Parquet.

- openai: ``{"messages": [{"role", "content"}, ...]}`` a line, system first when there is one;
- sharegpt: ``{"conversations": [{"from": "human"|"gpt", "value"}, ...], "system": ...}`` a line
  (LLaMA-Factory's ``sharegpt`` formatting with its ``system`` column; Axolotl reads it too);
- records: the session record JSON as the store writes it (no empty ``attempts``), one a line;
- parquet: one row per session with the messages and the session's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.export.example import Example
from simulator.export.options import Format

INSTALL_HINT = "pip install 'simulator[export]'"
SHAREGPT_ROLE = {"user": "human", "assistant": "gpt"}
SUFFIX: dict[Format, str] = {
    "openai": ".jsonl",
    "sharegpt": ".jsonl",
    "records": ".jsonl",
    "parquet": ".parquet",
}
PARQUET_COLUMNS = (
    "run_id",
    "persona_id",
    "therapist_id",
    "session_number",
    "messages",
    "previous_summary",
    "summary",
    "termination_reason",
    "termination_details",
    "flags",
    "models",
    "seed",
    "backend",
)


def openai_line(example: Example) -> str:
    messages = [{"role": t.role, "content": t.content} for t in example.turns]
    return json.dumps({"messages": messages}, ensure_ascii=False)


def sharegpt_line(example: Example) -> str:
    system = [t.content for t in example.turns if t.role == "system"]
    conversations = [
        {"from": SHAREGPT_ROLE[t.role], "value": t.content} for t in example.turns if t.role != "system"
    ]
    line: dict[str, Any] = {"conversations": conversations}
    if system:
        line["system"] = system[0]
    return json.dumps(line, ensure_ascii=False)


def records_line(example: Example) -> str:
    assert example.record_json is not None
    return example.record_json


LINES: dict[str, Callable[[Example], str]] = {
    "openai": openai_line,
    "sharegpt": sharegpt_line,
    "records": records_line,
}


def require_pyarrow() -> None:
    """Parquet needs the ``export`` extra; say how to get it, in one line."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("--format parquet", f"needs pyarrow: {INSTALL_HINT}") from None


def write(fmt: Format, path: Path, examples: Sequence[Example]) -> None:
    """Write one split's file (the caller has made ``path`` a temporary name)."""
    if fmt == "parquet":
        _write_parquet(path, examples)
        return
    encode = LINES[fmt]
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for example in examples:
            handle.write(encode(example))
            handle.write("\n")


def _write_parquet(path: Path, examples: Sequence[Example]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pa.string()
    schema = pa.schema(
        [
            ("run_id", text),
            ("persona_id", text),
            ("therapist_id", text),
            ("session_number", pa.int32()),
            ("messages", pa.list_(pa.struct([("role", text), ("content", text)]))),
            ("previous_summary", text),
            ("summary", text),
            ("termination_reason", text),
            ("termination_details", text),
            ("flags", pa.list_(text)),
            ("models", pa.struct([("therapist", text), ("patient", text), ("summarizer", text)])),
            ("seed", pa.int64()),
            ("backend", text),
        ]
    )
    columns: dict[str, list[Any]] = {name: [] for name in PARQUET_COLUMNS}
    for e in examples:
        row: dict[str, Any] = {
            "run_id": e.run_id,
            "persona_id": e.persona_id,
            "therapist_id": e.therapist_id,
            "session_number": e.session_number,
            "messages": [{"role": t.role, "content": t.content} for t in e.turns],
            "previous_summary": e.previous_summary,
            "summary": e.summary,
            "termination_reason": e.termination_reason,
            "termination_details": e.termination_details,
            "flags": e.flags,
            "models": {role: e.models.get(role) for role in ("therapist", "patient", "summarizer")},
            "seed": e.seed,
            "backend": e.backend,
        }
        for name in PARQUET_COLUMNS:
            columns[name].append(row[name])
    table = pa.table(columns, schema=schema)
    pq.write_table(table, path)
