"""``simulator export``: run folders in, a dataset out.

Sessions are read through :func:`simulator.reader.read_run`, filtered, turned into examples
and checked against the format's rules, deduplicated, split, and written atomically. Nothing
is written until every session has been read and every example built, so bad input (a
template that fails to render, say) exits 2 without leaving anything behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from simulator.errors import InputError
from simulator.export import formats
from simulator.export.card import render_card
from simulator.export.chat import conversation, problem
from simulator.export.dedupe import NearDuplicates, method
from simulator.export.example import Example
from simulator.export.filters import SessionFilter, check_flag_names, session_flags
from simulator.export.options import ExportOptions
from simulator.export.output import check_out, staged
from simulator.export.report import ExportReport
from simulator.export.scores import Scores, load_scores
from simulator.export.source import RunSource
from simulator.export.splits import DEFAULT_SPLIT, SESSION_SPLIT_WARNING, assign
from simulator.layout import RUN_FILE
from simulator.reader import Run, read_run
from simulator.records import SessionRecord

CARD = "README.md"


def export_dataset(options: ExportOptions) -> ExportReport:
    runs = _open_runs(options)
    check_out(options.out, force=options.force, run_dirs=options.run_dirs)
    if options.fmt == "parquet":
        formats.require_pyarrow()
    duplicates = NearDuplicates(options.dedupe_threshold) if options.dedupe else None
    check_flag_names(options.exclude_flags, [flag for run in runs for flag in run.index.flags])
    scores = load_scores(runs, options.eval_ids)
    scores.check_rules(options.min_scores, runs)
    sources = [RunSource(run, options.system_file) for run in runs]
    kept, excluded = _collect(options, sources, scores, duplicates)
    report = ExportReport(options, _split(options, kept), {}, excluded)
    report.dedupe = method(options.dedupe_threshold) if options.dedupe else None
    if options.splits and options.split_by == "session":
        report.warnings.append(SESSION_SPLIT_WARNING)
    later = sum(1 for e in kept if e.previous_summary)
    if later and not options.series_context and options.fmt != "records":
        report.notes.append(
            f"{later} example(s) continue a series; --series-context gives them the previous "
            "summary the way the run's templates did"
        )
    _write(report, sources, scores)
    return report


def _collect(
    options: ExportOptions, sources: list[RunSource], scores: Scores, duplicates: NearDuplicates | None
) -> tuple[list[Example], Counter[str]]:
    """The examples that export, in order, and how many sessions each reason left out."""
    excluded: Counter[str] = Counter()
    kept: list[Example] = []
    for found in _examples(options, sources, scores):
        if isinstance(found, str):
            excluded[found] += 1
            continue
        example, text = found
        if duplicates is not None and duplicates.check(example.key, text) is not None:
            excluded["near-duplicate"] += 1
            continue
        kept.append(example)
    if not kept:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(excluded.items())) or "the runs have no sessions"
        raise InputError(None, f"nothing to export: every session was left out ({reasons})")
    return kept, excluded


def _open_runs(options: ExportOptions) -> list[Run]:
    runs: list[Run] = []
    for path in options.run_dirs:
        _check_not_a_parent(path)
        run = read_run(path)
        if any(r.run_id == run.run_id for r in runs):
            raise InputError(path, f"run {run.run_id!r} is given twice")
        runs.append(run)
    return runs


def _check_not_a_parent(path: Path) -> None:
    """``simulator run --out runs`` makes ``runs/RUN_ID``: given ``runs``, name the run folders."""
    if not path.is_dir() or (path / RUN_FILE).exists():
        return
    inside = sorted(child.name for child in path.iterdir() if (child / RUN_FILE).is_file())
    if inside:
        shown = ", ".join(inside[:3]) + (", ..." if len(inside) > 3 else "")
        raise InputError(
            path,
            f"not a run folder, but it holds {len(inside)} run folder(s) ({shown}): give those as RUN_DIR",
        )


def _examples(
    options: ExportOptions, sources: list[RunSource], scores: Scores
) -> Iterator[tuple[Example, str] | str]:
    """Every session of every run, in order: its example with its text for ``--dedupe``, or
    the reason it is left out."""
    keep = SessionFilter(options, scores)
    for source in sources:
        run_id = source.run.run_id
        for session in source.run.sessions():
            reason = keep.reason(run_id, session)
            if reason is not None or session.record is None:
                yield reason or "no record"
                continue
            record = session.record
            found = _example(options, source, record)
            if isinstance(found, str):
                yield found
            else:
                yield found, " ".join(m.content for m in record.messages[1:]) if options.dedupe else ""


def _example(options: ExportOptions, source: RunSource, record: SessionRecord) -> Example | str:
    """The session as an example, or why it cannot be one."""
    turns = []
    record_json = None
    if options.fmt == "records":
        record_json = record.model_dump_json(exclude=None if record.attempts else {"attempts"})
        chars = sum(len(m.content) for m in record.messages)
    else:
        system = source.system(record, options.perspective, options.system, options.series_context)
        opening = source.opening(record, options.series_context)
        turns = conversation(record.messages, opening, options.perspective, system)
        bad = problem(turns, source.leaks(record))
        if bad is not None:
            return f"invalid example: {bad}"
        chars = sum(len(t.content) for t in turns)
    termination = record.termination
    return Example(
        run_id=source.run.run_id,
        persona_id=record.persona_id,
        therapist_id=record.therapist_id,
        session_number=record.session_number,
        turns=turns,
        previous_summary=record.previous_summary,
        summary=record.summary,
        termination_reason=termination.reason if termination else None,
        termination_details=termination.details if termination else None,
        flags=session_flags(record),
        models=dict(record.models),
        seed=record.seed,
        backend=record.backend,
        record_json=record_json,
        chars=chars,
    )


def _split(options: ExportOptions, kept: list[Example]) -> dict[str, list[Example]]:
    splits = options.splits or DEFAULT_SPLIT
    by_persona = options.split_by == "persona"
    units = [e.persona_id if by_persona else e.key for e in kept]
    assignment = assign(units, splits, options.split_seed, options.split_by) if options.splits else {}
    result: dict[str, list[Example]] = {s.name: [] for s in splits}
    for example, unit in zip(kept, units, strict=True):
        result[assignment.get(unit, splits[0].name)].append(example)
    return result


def _write(report: ExportReport, sources: list[RunSource], scores: Scores) -> None:
    options = report.options
    suffix = formats.SUFFIX[options.fmt]
    with staged(options.out, folder=options.folder) as stage:
        if not options.folder:
            (examples,) = report.splits.values()
            report.files = {name: options.out.name for name in report.splits}
            formats.write(options.fmt, stage / options.out.name, examples)
            return
        report.files = {name: f"{name}{suffix}" for name in report.splits}
        for name, examples in report.splits.items():
            formats.write(options.fmt, stage / report.files[name], examples)
        (stage / CARD).write_text(render_card(report, sources, scores), encoding="utf-8")
