"""`simulator export` on what the real `simulator evaluate` writes: scores from its judge (the
loopback judge model of tests/judgekit.py through the real OpenAI backend) filter sessions with
`--min-score`, and its summary shows in the dataset card; the evaluation read is the one
`simulator view` shows."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.exportkit import copy_run, export, make_run, read_jsonl
from tests.judgekit import JudgeModel
from tests.loopback import serve


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with one evaluation by the judge (rubric realism)."""
    run = make_run(tmp_path_factory.mktemp("runs"))
    with serve(JudgeModel()) as server:
        result = invoke(
            "evaluate", run, "--backend", "openai", "--base-url", server.base_url,
            "--judge-model", "judge-llm", "--rubric", "realism",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def test_min_score_and_the_card_read_a_real_evaluation(judged: Path, tmp_path: Path) -> None:
    run = copy_run(judged, tmp_path / "run")
    (report,) = (run / "eval").glob("*/eval.json")
    data = json.loads(report.read_text())
    item = next(iter(data["summary"]["items"]["realism"]))
    scores = {(s["persona_id"], s["session_number"]): s["scores"]["realism"][item] for s in data["sessions"]}
    threshold = statistics.median(scores.values())
    keep = [key for key, score in scores.items() if score >= threshold]
    assert 0 < len(keep) < len(scores)

    out = tmp_path / "ds"
    result = export(
        run,
        "--format",
        "records",
        "--min-score",
        f"realism.{item}>={threshold}",
        "--split",
        "all=1",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert [(r["persona_id"], r["session_number"]) for r in read_jsonl(out / "all.jsonl")] == keep
    assert f"  realism.{item} below {threshold:g}: {len(scores) - len(keep)}" in result.output.splitlines()
    card = (out / "README.md").read_text()
    entry = data["summary"]["items"]["realism"][item]
    assert f"| realism.{item} ({entry['label']}) | {entry['mean']:.3g} |" in card
    assert f"evaluation `{report.parent.name}`" in card and "| natural_end_share |" in card


def test_a_later_metrics_only_evaluation_does_not_hide_the_judged_one(judged: Path, tmp_path: Path) -> None:
    """`simulator evaluate` without a judge model writes metrics only; the page keeps showing
    the judged evaluation, and export reads that same one for --min-score and the card."""
    run = copy_run(judged, tmp_path / "run")
    (first,) = (run / "eval").glob("*/eval.json")
    assert invoke("evaluate", run).exit_code == 0
    (later,) = set((run / "eval").glob("*/eval.json")) - {first}
    os.utime(first, (1_000_000_000, 1_000_000_000))
    item = next(iter(json.loads(first.read_text())["summary"]["items"]["realism"]))
    out = tmp_path / "ds"
    result = export(run, "--format", "parquet", "--min-score", f"realism.{item}>=0", "--out", out)
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert f"evaluation `{first.parent.name}`" in card and later.parent.name not in card
    assert invoke("view", run).exit_code == 0
    assert f'Evaluation <span class="mono">{first.parent.name}</span>' in (run / "report.html").read_text()
