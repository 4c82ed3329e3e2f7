"""Render a run as one self-contained HTML page and write it atomically.

The template renders in Jinja's sandbox with autoescape on and StrictUndefined; every string
from personas, models and run files reaches the page escaped. Session bodies go in as gzipped
JSON in base64 (no ``<`` can occur) in ``<script type="application/gzip">`` data blocks, which
the page's script unpacks and lays out with DOM text nodes only when a session is opened (or
searched), so a 2,000-session page stays small and quick to load. A Content-Security-Policy with the hashes of the
page's own style and script blocks keeps anything else from running or loading.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from simulator import __version__
from simulator.errors import InputError
from simulator.evaluate.results import read_evals
from simulator.personas import ID_PATTERN
from simulator.reader import Run, read_run
from simulator.store import atomic_write
from simulator.view.charts import bar_chart, histogram
from simulator.view.overview import build_overview
from simulator.view.sessions import SessionView, packed, read_series
from simulator.yamlfile import parse_yaml

DEFAULT_NAME = "report.html"
TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Series:
    """One patient persona's sessions, as the page's timeline shows them."""

    persona_id: str
    name: str
    sessions: list[SessionView]


def _asset(name: str) -> str:
    return (resources.files("simulator.view") / "templates" / name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=PackageLoader("simulator.view", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["packed"] = packed
    return env


def _name(path: Path, fallback: str) -> str:
    """The persona's display name from the run's snapshot; its id when the file is unreadable
    (or when the id is not one, so no path is built from it)."""
    if not ID_PATTERN.fullmatch(fallback):
        return fallback
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return fallback
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.strip() else fallback


def page_context(run: Run) -> dict[str, Any]:
    """Everything the template shows, read through the run reader."""
    persona_ids = list(dict.fromkeys([*run.persona_ids, *run.index.sessions]))
    series = [Series(pid, _name(run.persona_file(pid), pid), read_series(run, pid)) for pid in persona_ids]
    views = [view for s in series for view in s.sessions]
    overview = build_overview(run.index, views)
    css, js = _asset("report.css"), _asset("report.js")
    return {
        "run": run.index,
        "therapist_name": _name(run.therapist_file, run.index.inputs.therapist.id),
        "overview": overview,
        "series": series,
        "evals": read_evals(run.path),
        "reason_chart": bar_chart(overview.reasons, title="Sessions by end reason"),
        "length_chart": histogram(overview.lengths, title="Messages per session"),
        "repair_chart": bar_chart(overview.repairs, title="Guard repairs by kind"),
        "css": Markup(css),
        "js": Markup(js),
        "csp": f"default-src 'none'; img-src data:; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
    }


def render_report(run: Run) -> str:
    """The whole page as one string."""
    return _environment().get_template(TEMPLATE).render(page_context(run))


def _run_file(run_dir: Path, target: Path) -> bool:
    """True for an existing file of the run folder that is not a page (a session record, run.json,
    an input snapshot): a mistyped ``--out`` must never overwrite finished data."""
    if not target.is_file() or target.suffix.lower() in {".html", ".htm"}:
        return False
    return target.resolve().is_relative_to(run_dir.resolve())


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Read ``run_dir`` and write its page to ``out`` (default ``RUN_DIR/report.html``)."""
    target = out if out is not None else run_dir / DEFAULT_NAME
    if target.is_dir():
        raise InputError(target, "--out is a directory; give a file name such as report.html")
    if _run_file(run_dir, target):
        raise InputError(target, "--out would replace one of the run's own files; give an .html file")
    page = render_report(read_run(run_dir))
    try:
        atomic_write(target, page, sync=False)
    except OSError as exc:
        raise InputError(target, f"cannot write the page: {exc.strerror or exc}") from None
    return target
