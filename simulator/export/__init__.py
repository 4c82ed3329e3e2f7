"""``simulator export``: run folders to training and evaluation datasets (OpenAI chat JSONL,
ShareGPT, the engine's records, Parquet with a Hugging Face dataset card)."""

from simulator.export.exporter import export_dataset
from simulator.export.options import (
    FORMATS,
    ExportOptions,
    check_chat_flags,
    check_license,
    parse_flag_names,
    parse_score_rule,
    parse_splits,
)
from simulator.export.report import ExportReport

__all__ = [
    "FORMATS",
    "ExportOptions",
    "ExportReport",
    "check_chat_flags",
    "check_license",
    "export_dataset",
    "parse_flag_names",
    "parse_score_rule",
    "parse_splits",
]
