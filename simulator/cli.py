"""Command line: parse flags, call the library, map errors to exit codes.

0 all good; 1 a session failed (the run folder says which and why); 2 bad input;
130 interrupted. Expected errors print one line each and no traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from simulator import __version__, interrupts
from simulator.errors import EXIT_INTERRUPTED, InputError, SimulatorError
from simulator.lazy import LazyChoice, lazy_module

if TYPE_CHECKING:
    from simulator import backends, commands, export, importers
    from simulator.evaluate import Evaluation
else:  # imported on first use: `simulator --help` needs neither pydantic, jinja2, rich nor the SDK
    backends = lazy_module("simulator.backends")
    commands = lazy_module("simulator.commands")
    export = lazy_module("simulator.export")
    importers = lazy_module("simulator.importers")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class _StderrLines(logging.Handler):
    """The library's log lines (notices, what resume repaired) as ``simulator: ...`` on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"simulator: {record.getMessage()}", err=True)


def _log_to_stderr() -> None:
    """For the length of one command: the library logs, the CLI prints."""
    logger = logging.getLogger("simulator")
    handler = _StderrLines(logging.INFO)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    def detach() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    click.get_current_context().call_on_close(detach)


def _fail_input(exc: InputError) -> None:
    for error in exc.problems:
        click.echo(f"simulator: error: {error}", err=True)
    sys.exit(2)


def _interrupted() -> None:
    click.echo("simulator: interrupted; `simulator resume RUN_DIR` finishes the run", err=True)
    sys.exit(EXIT_INTERRUPTED)


def handles_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with interrupts.working():
                return func(*args, **kwargs)
        except InputError as exc:
            _fail_input(exc)
        except SimulatorError as exc:
            click.echo(f"simulator: error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            _interrupted()
        except SystemExit:
            if interrupts.stopped():  # the signal landed as the command ended: still 130
                _interrupted()
            raise

    return wrapper  # type: ignore[return-value]


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` for a command: the first Ctrl-C or SIGTERM cancels it (a run writes its
    sessions in flight as interrupted), a second one quits at once (see
    :mod:`simulator.interrupts`, installed by the entry point); a stopped command raises
    KeyboardInterrupt, which :func:`handles_errors` makes exit 130."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        with interrupts.cancelling(task):
            try:
                return await work
            except asyncio.CancelledError:
                if interrupts.stopped():
                    raise KeyboardInterrupt from None
                raise

    return asyncio.run(main())


def run_options(func: F) -> F:
    """Flags shared by ``run`` and ``replay``; a flag left out defers to the config file."""
    options = [
        click.option("--sessions", type=click.IntRange(min=1), help="Sessions per persona (default 1)."),
        click.option(
            "--therapist", type=click.Path(path_type=Path), help="Therapist persona (default: bundled Nova)."
        ),
        click.option(
            "--config", "config_file", type=click.Path(path_type=Path), help="Run settings in YAML."
        ),
        click.option("--prompts", type=click.Path(path_type=Path), help="Directory of template overrides."),
        click.option("--backend", type=LazyChoice(lambda: backends.BACKENDS), help="Chat backend."),
        click.option("--base-url", help="OpenAI-compatible endpoint (else OPENAI_BASE_URL)."),
        click.option("--model", help="Model for every role."),
        click.option("--therapist-model", help="Model for the therapist."),
        click.option("--patient-model", help="Model for the patient."),
        click.option("--summarizer-model", help="Model for the summarizer."),
        click.option(
            "--max-turns", type=click.IntRange(min=2), help="Cap on messages in a session (default 40)."
        ),
        click.option(
            "--seed", type=int, help="Seed for the offline backend, passed to the API where supported."
        ),
        click.option(
            "--concurrency", type=click.IntRange(min=1), help="Personas simulated at once (default 4)."
        ),
        click.option("--out", type=click.Path(path_type=Path), help="Output root (default runs/)."),
        click.option("--run-id", help="Run folder name (default: UTC timestamp plus a short suffix)."),
        click.option("--cache", type=click.Path(path_type=Path), help="SQLite response cache file (opt-in)."),
        click.option(
            "--progress/--no-progress", default=None, help="Live progress display (default: on a terminal)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def executor_options(func: F) -> F:
    """``--executor``, ``--ray-address``, ``--workers``: where sessions run (``run``, ``resume``,
    ``replay``); left out, ``resume`` keeps the run's own and the others run locally."""
    options = [
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            help="Run sessions in this process (local) or on a Ray cluster's workers (ray).",
        ),
        click.option(
            "--ray-address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default $RAY_ADDRESS)."
        ),
        click.option(
            "--workers", type=click.IntRange(min=1), help="Ray workers (default: one per cluster CPU)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="simulator")
def main() -> None:
    """Generate synthetic therapy-session series from persona files and prompt templates."""
    # pydantic scans every installed package for plugins before its first model (~50 ms of
    # each command's start-up); the CLI uses none. PYDANTIC_DISABLE_PLUGINS= restores the scan.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _log_to_stderr()


@main.command()
@click.argument("personas", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--start", type=click.IntRange(min=1), help="Number of the first session (default 1).")
@click.option(
    "--previous-summary", type=click.Path(path_type=Path), help="Summary that opens session --start."
)
@click.option("--shard", help="I/N: run only the I-th of N slices of the persona list.")
@run_options
@executor_options
@handles_errors
def run(personas: tuple[Path, ...], config_file: Path | None, progress: bool | None, **flags: Any) -> None:
    """Generate a series of sessions for each patient PERSONA file."""
    code = run_async(commands.run(list(personas), config_file, flags, progress=progress))
    sys.exit(code)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--concurrency", type=click.IntRange(min=1), help="Personas simulated at once.")
@click.option(
    "--progress/--no-progress", default=None, help="Live progress display (default: on a terminal)."
)
@executor_options
@handles_errors
def resume(run_dir: Path, concurrency: int | None, progress: bool | None, **executor: Any) -> None:
    """Finish an interrupted or failed run; completed sessions are not touched."""
    sys.exit(
        run_async(commands.resume(run_dir, concurrency=concurrency, progress=progress, executor=executor))
    )


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--persona", "persona_id", required=True, help="Persona id in RUN_DIR.")
@click.option(
    "--session", "session_number", required=True, type=click.IntRange(min=1), help="Session to regenerate."
)
@run_options
@executor_options
@handles_errors
def replay(
    run_dir: Path,
    persona_id: str,
    session_number: int,
    config_file: Path | None,
    progress: bool | None,
    **flags: Any,
) -> None:
    """New run that regenerates session K (and --sessions N onward) from RUN_DIR's summary of K-1."""
    code = run_async(
        commands.replay(run_dir, persona_id, session_number, config_file, flags, progress=progress)
    )
    sys.exit(code)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@handles_errors
def validate(paths: tuple[Path, ...]) -> None:
    """Check persona files, config files and templates (default: personas/ prompts/)."""
    summary = commands.validate(list(paths) or [Path("personas"), Path("prompts")])
    click.echo(summary)


@main.command("import")
@click.argument("fmt", metavar="FORMAT", type=LazyChoice(lambda: importers.FORMATS))
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--force", is_flag=True, help="Overwrite persona files that already exist.")
@click.option(
    "--license", "license_id", help="SPDX licence id to record in extra.license (default: the format's, MIT)."
)
@handles_errors
def import_personas(fmt: str, file: Path, out_dir: Path, force: bool, license_id: str | None) -> None:
    """Convert third-party persona data in FILE (FORMAT: patient-psi, talkdep, consistent-mi,
    eeyore) into one patient persona YAML file per record in --out."""
    if license_id is not None:
        export.check_license(license_id)  # the card's check; the file keeps the id as written
    personas = importers.import_file(fmt, file, license=license_id)
    for path in importers.write_personas(personas, out_dir, force=force):
        click.echo(str(path))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--into", required=True, type=click.Path(path_type=Path), help="The merged run folder to create."
)
@handles_errors
def merge(run_dirs: tuple[Path, ...], into: Path) -> None:
    """Put the run folders of `run --shard I/N` together into one run folder."""
    click.echo(commands.merge(list(run_dirs), into))


@main.command("export")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", required=True, type=LazyChoice(lambda: export.FORMATS), help="Output format."
)
@click.option(
    "--as",
    "perspective",
    type=click.Choice(["therapist", "patient"]),
    help="Whose turns are the assistant's (the training target; default therapist; not for records).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="A JSONL file, or a folder (splits, Parquet).",
)
@click.option(
    "--system",
    help="System prompt: 'rendered' (the run's template; default), 'none', or a Jinja template FILE "
    "(not for records).",
)
@click.option(
    "--series-context",
    is_flag=True,
    help="Render prompts with the previous session's summary (not for records).",
)
@click.option("--only-complete", is_flag=True, help="Only complete sessions (the default; always on).")
@click.option("--natural-end-only", is_flag=True, help="Only sessions that ended on an end phrase.")
@click.option(
    "--exclude-flags", help="Leave out sessions with any of these repair flags (FLAG,...; * allowed)."
)
@click.option("--min-messages", type=click.IntRange(min=1), help="Leave out sessions with fewer messages.")
@click.option("--min-score", multiple=True, help="RUBRIC.ITEM>=X from RUN_DIR/eval (repeatable).")
@click.option(
    "--eval",
    "eval_ids",
    multiple=True,
    help="Evaluation to read in the run that has it (repeatable; default: the one `simulator view` shows).",
)
@click.option("--dedupe", is_flag=True, help="Drop sessions that nearly duplicate an earlier one.")
@click.option(
    "--dedupe-threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.8,
    show_default=True,
    help="Jaccard similarity from which a session counts as a near-duplicate.",
)
@click.option("--split", "split_spec", help="Splits, e.g. train=0.9,test=0.1 (default: one split, train).")
@click.option("--split-by", type=click.Choice(["persona", "session"]), default="persona", show_default=True)
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the split assignment.")
@click.option("--license", "license_id", help="SPDX licence id for the dataset card (default: other).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@handles_errors
def export_command(
    run_dirs: tuple[Path, ...],
    split_spec: str | None,
    exclude_flags: str | None,
    min_score: tuple[str, ...],
    license_id: str | None,
    only_complete: bool,
    **flags: Any,
) -> None:
    """Turn run folders into a dataset: OpenAI chat JSONL, ShareGPT, records or Parquet
    (with a Hugging Face dataset card), filtered, deduplicated and split."""
    export.check_chat_flags(flags["fmt"], flags)
    flags = {name: value for name, value in flags.items() if value is not None}
    options = export.ExportOptions(
        run_dirs=run_dirs,
        splits=export.parse_splits(split_spec),
        exclude_flags=export.parse_flag_names(exclude_flags),
        min_scores=tuple(export.parse_score_rule(rule) for rule in min_score),
        license=export.check_license(license_id),
        **flags,
    )
    report = export.export_dataset(options)
    for warning in report.warnings:
        click.echo(f"simulator: warning: {warning}", err=True)
    click.echo("\n".join(report.lines()))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), help="HTML file to write (default RUN_DIR/report.html)."
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default web browser.")
@handles_errors
def view(run_dir: Path, out: Path | None, open_page: bool) -> None:
    """Write one self-contained HTML page to read RUN_DIR: series, sessions, repairs, scores."""
    import webbrowser

    from simulator.view import write_report

    page = write_report(run_dir, out)
    click.echo(str(page))
    if open_page and not webbrowser.open(page.resolve().as_uri()):
        click.echo(f"simulator: no browser to open; open {page} yourself", err=True)


# ---------------------------------------------------------------- simulator evaluate (issue 13)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--rubric", "rubric_names", multiple=True, help="Rubric to apply (repeatable; default: all).")
@click.option(
    "--rubrics", "rubrics_dir", type=click.Path(path_type=Path), help="Directory of rubric overrides."
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="Settings in YAML (roles.judge)."
)
@click.option("--backend", type=LazyChoice(lambda: backends.BACKENDS), help="Chat backend for the judge.")
@click.option("--judge-model", help="Judge model; without it no model is called.")
@click.option("--base-url", help="OpenAI-compatible endpoint (else OPENAI_BASE_URL).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Judge calls at once (default 4).")
@click.option("--cache", type=click.Path(path_type=Path), help="SQLite response cache file (opt-in).")
@click.option("--seed", type=int, help="Seed of the first repeat (repeat r uses seed + r - 1).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, help="Judgments per case (agreement).")
@click.option("--dry-run", is_flag=True, help="Print judge calls, tokens and cost; write nothing.")
@click.option("--resume", "resume_id", metavar="EVAL_ID", help="Finish an interrupted evaluation.")
@handles_errors
def evaluate(
    run_dir: Path,
    rubric_names: tuple[str, ...],
    rubrics_dir: Path | None,
    config_file: Path | None,
    repeats: int,
    dry_run: bool,
    resume_id: str | None,
    concurrency: int | None,
    **flags: Any,
) -> None:
    """Model-free metrics and LLM-judge rubrics for every session and series of RUN_DIR."""
    from rich.console import Console

    from simulator.evaluate import prepare, prepare_resume, report_view

    if resume_id is not None:
        given = [name for name, value in flags.items() if value is not None]
        if rubric_names or rubrics_dir or config_file or repeats != 1 or given:
            raise InputError(
                "--resume", "a resumed evaluation keeps its own settings (only --concurrency may change)"
            )
        evaluation = prepare_resume(run_dir, resume_id, concurrency=concurrency)
    else:
        evaluation = prepare(
            run_dir,
            rubric_names=list(rubric_names),
            rubrics_dir=rubrics_dir,
            config_file=config_file,
            flags={**flags, "concurrency": concurrency},
            repeats=repeats,
        )
    _evaluation_notices(evaluation)
    if dry_run:
        _print_estimate(evaluation)
        return

    def progress(event: Any) -> None:
        rubric, persona_id, number = event.case.key
        click.echo(
            f"[{event.done}/{event.total}] {rubric} {persona_id} session {number}: {event.status}; "
            f"{event.tokens} tokens",
            err=True,
        )

    try:
        outcome = run_async(evaluation.execute(progress))
    except KeyboardInterrupt:
        folder = evaluation.folder
        hint = f" --resume {folder.eval_id}" if folder is not None else ""
        click.echo(f"simulator: interrupted; `simulator evaluate {run_dir}{hint}` finishes it", err=True)
        sys.exit(EXIT_INTERRUPTED)
    Console().print(report_view(outcome.report))
    click.echo(f"wrote {outcome.folder.eval_file}")
    failed = outcome.report["summary"]["judge"]["judge_failed"]
    if failed:
        click.echo(
            f"simulator: {failed} judge item(s) failed after retries (judge_failed in eval.json); "
            f"`simulator evaluate {run_dir} --resume {outcome.folder.eval_id}` asks again",
            err=True,
        )
    sys.exit(outcome.exit_code)


def _evaluation_notices(evaluation: Evaluation) -> None:
    """Why judging will not happen, and rubrics that fit no session of the run."""
    if evaluation.settings.notice:
        click.echo(f"simulator: {evaluation.settings.notice}", err=True)
    for rubric in evaluation.unused:
        suits = ", ".join(rubric.spec.modalities)
        click.echo(
            f"simulator: rubric {rubric.name!r} ({rubric.spec.applies_to}, suits {suits}) applies to no session",
            err=True,
        )


def _print_estimate(evaluation: Evaluation) -> None:
    """``evaluate --dry-run``: the judge calls, tokens and cost it would take."""
    estimate = evaluation.estimate()
    cost = (
        f"~${estimate.cost_usd:.4f}"
        if estimate.cost_usd is not None
        else "cost unknown (no prices for the judge model)"
    )
    none = "" if evaluation.settings.judging else " (none will be made: see above)"
    click.echo(
        f"dry run: {estimate.calls} judge calls{none} ({estimate.cases} cases x {evaluation.settings.repeats} "
        f"repeats), about {estimate.prompt_tokens} prompt + {estimate.completion_tokens} completion tokens, "
        f"{cost}; nothing written"
    )


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="Thresholds, end phrases, min_turns."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format.")
@click.option("--flags", is_flag=True, help="Also list the repairs engine records carry.")
@click.option(
    "--therapist-is",
    type=click.Choice(["assistant", "user"]),
    help="For JSONL/CSV rows with a role: which role is the therapist.",
)
@handles_errors
def audit(
    paths: tuple[Path, ...], config_file: Path | None, fmt: str, flags: bool, therapist_is: str | None
) -> None:
    """Run the guards and the termination detector over existing transcripts (.txt, session
    JSON, run folders, .jsonl, .csv). Exit 0 when clean, 1 when defects are found, 2 when a
    file cannot be read (the others are still audited; one line per unreadable file at the end)."""
    import json

    from simulator.audit import audit_paths
    from simulator.config import load_config
    from simulator.errors import InputErrors

    config = load_config(config_file, {})
    found = False
    unreadable: list[InputError] = []
    audits = audit_paths(list(paths), config, flags=flags, therapist_is=therapist_is, unreadable=unreadable)
    for index, result in enumerate(audits):
        found = found or bool(result.defects)
        if fmt == "json":
            click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        else:
            click.echo(("\n" if index else "") + result.text())
    InputErrors.raise_if_any(unreadable)
    sys.exit(1 if found else 0)
