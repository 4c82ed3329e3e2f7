"""Evaluation scores for the export: each run's evaluation as ``simulator view`` shows it
(:func:`simulator.evaluate.results.read_evals`, the one reader of eval.json), or the one an
``--eval EVAL_ID`` names (repeatable: evaluation ids differ from run to run). A run without
one simply has no scores.

``--min-score`` reads each session's ``scores`` from it, the dataset card its summary rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from simulator.errors import InputError
from simulator.evaluate.results import EvalOverview, read_eval, read_evals
from simulator.export.options import ScoreRule
from simulator.layout import EVAL_DIR, EVAL_FILE
from simulator.reader import Run

EVAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""An evaluation id is a folder name: nothing that could climb out of ``RUN_DIR/eval``."""


@dataclass
class Scores:
    """Every run's evaluation, by run id."""

    evaluations: dict[str, EvalOverview] = field(default_factory=dict)

    def score(self, run_id: str, persona_id: str, number: int, key: str) -> float | None:
        evaluation = self.evaluations.get(run_id)
        if evaluation is None:
            return None
        return evaluation.session_scores.get((persona_id, number), {}).get(key)

    def check_rules(self, rules: tuple[ScoreRule, ...], runs: list[Run]) -> None:
        """``--min-score`` needs an evaluation and an item that some session was scored on."""
        if not rules:
            return
        missing = [run for run in runs if run.run_id not in self.evaluations]
        if missing:
            where = missing[0].path / EVAL_DIR
            raise InputError(
                where, f"--min-score needs scores: run `simulator evaluate {missing[0].path}` first"
            )
        known = sorted(
            {key for e in self.evaluations.values() for s in e.session_scores.values() for key in s}
        )
        for rule in rules:
            if rule.key not in known:
                listed = ", ".join(known) or "none"
                raise InputError(
                    "--min-score", f"no score named {rule.key!r} in the evaluations (scored: {listed})"
                )


def load_scores(runs: list[Run], eval_ids: tuple[str, ...]) -> Scores:
    """Each run's evaluation: the one of ``eval_ids`` (``--eval``, repeatable) the run holds,
    else the one the page shows. Every id given must name an evaluation of some run, and no
    run may hold two of them."""
    for eval_id in eval_ids:
        if not EVAL_ID.fullmatch(eval_id):
            raise InputError("--eval", f"invalid evaluation id {eval_id!r}: a folder name under RUN_DIR/eval")
    unused = set(eval_ids)
    scores = Scores()
    for run in runs:
        chosen = [i for i in eval_ids if (run.path / EVAL_DIR / i / EVAL_FILE).is_file()]
        if len(chosen) > 1:
            raise InputError(
                run.path / EVAL_DIR, f"--eval names two evaluations of this run: {', '.join(chosen)}"
            )
        unused -= set(chosen)
        evaluation = (
            read_eval(run.path / EVAL_DIR / chosen[0] / EVAL_FILE) if chosen else read_evals(run.path)
        )
        if evaluation is not None and evaluation.unreadable is not None:
            path = run.path / EVAL_DIR / evaluation.eval_id / EVAL_FILE
            raise InputError(path, f"evaluation {evaluation.unreadable}")
        if evaluation is not None:
            scores.evaluations[run.run_id] = evaluation
    if unused:
        where = ", ".join(str(run.path / EVAL_DIR) for run in runs)
        raise InputError(None, f"--eval {sorted(unused)[0]}: no such evaluation in {where}")
    return scores
