"""`simulator export`: filters, dedupe, persona-disjoint splits, the dataset card, atomic
output and bad input."""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

import simulator
from simulator.errors import InputError
from simulator.export import formats
from simulator.export.card import size_category
from simulator.export.filters import REPAIR_FLAGS
from simulator.export.options import Split
from simulator.export.splits import assign, sizes
from tests.conftest import MARCUS, PERSONAS
from tests.exportkit import PATIENTS, copy_run, edit_session, export, make_run, read_jsonl, session_json


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"))


def summary_lines(output: str) -> list[str]:
    return output.splitlines()


def exported_keys(path: Path) -> list[tuple[str, int]]:
    return [(r["persona_id"], r["session_number"]) for r in read_jsonl(path)]


FLAG_WRITE = re.compile(r'(?:flags|regenerations)\.append\("(\w+)"\)|flags = \["(\w+)"\]')
ALL = [(p, n) for p in PATIENTS for n in (1, 2, 3)]


# ---- filters -------------------------------------------------------------------------------------


def test_partial_and_failed_sessions_never_export(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    final = run / "priya_shah" / "session_03.json"
    final.rename(final.with_name("session_03.partial.json"))
    (run / "walter_kowalski" / "session_03.json").unlink()
    edit_session(run, "walter_kowalski", 2, status="failed")
    index = json.loads((run / "run.json").read_text())
    index["sessions"]["priya_shah"]["3"]["status"] = "interrupted"
    (run / "run.json").write_text(json.dumps(index))
    out = tmp_path / "r.jsonl"
    result = export(run, "--format", "records", "--only-complete", "--out", out)
    assert result.exit_code == 0, result.output
    left_out = {("priya_shah", 3), ("walter_kowalski", 2), ("walter_kowalski", 3)}
    assert exported_keys(out) == [k for k in ALL if k not in left_out]
    lines = summary_lines(result.output)
    assert (
        "  not complete (interrupted, partial record): 1" in lines and "  not complete (failed): 1" in lines
    )
    assert "  not complete (complete, no record): 1" in lines


def test_natural_end_only_drops_the_repetition_loop(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = export(run_dir, "--format", "records", "--natural-end-only", "--out", out)
    assert result.exit_code == 0, result.output
    assert session_json(run_dir, "marcus_thompson", 2)["termination"]["reason"] == "Repetition Loop"
    assert exported_keys(out) == [k for k in ALL if k != ("marcus_thompson", 2)]
    assert "  not a natural end (Repetition Loop): 1" in summary_lines(result.output)


def test_exclude_flags_drops_sessions_with_that_repair(run_dir: Path, tmp_path: Path) -> None:
    flagged = {
        (p, n) for p, n in ALL
        if any("regenerated_repetition" in m["flags"] for m in session_json(run_dir, p, n)["messages"])
    }  # fmt: skip
    assert flagged
    out = tmp_path / "r.jsonl"
    result = export(
        run_dir, "--format", "records", "--exclude-flags", "regenerated_*,summary_incomplete", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert exported_keys(out) == [k for k in ALL if k not in flagged]
    assert f"  flag regenerated_repetition: {len(flagged)}" in summary_lines(result.output)


def test_an_unknown_flag_name_is_bad_input(run_dir: Path, tmp_path: Path) -> None:
    result = export(
        run_dir, "--format", "records", "--exclude-flags", "regenerated_repetiton", "--out", tmp_path / "r"
    )
    assert result.exit_code == 2
    assert result.output.startswith(
        "simulator: error: --exclude-flags: unknown flag name 'regenerated_repetiton'"
    )
    assert result.output.count("\n") == 1 and not (tmp_path / "r").exists()


def test_min_messages_counts_the_opening(run_dir: Path, tmp_path: Path) -> None:
    counts = {k: len(session_json(run_dir, *k)["messages"]) for k in ALL}
    cut = sorted(counts.values())[4]
    out = tmp_path / "r.jsonl"
    result = export(run_dir, "--format", "records", "--min-messages", str(cut), "--out", out)
    assert result.exit_code == 0, result.output
    assert exported_keys(out) == [k for k in ALL if counts[k] >= cut]


def write_eval(run: Path, eval_id: str, scores: dict[tuple[str, int], float]) -> None:
    """An eval.json of the shape `simulator evaluate` writes (README, "Evaluating a run")."""
    folder = run / "eval" / eval_id
    folder.mkdir(parents=True)
    sessions = [
        {
            "persona_id": p,
            "session_number": n,
            "messages": 10,
            "natural_end": True,
            "therapist_question_share": 0.5,
            "scores": {"ctrs": {"agenda": s, "feedback": s - 1, "pacing": None}},
        }
        for (p, n), s in scores.items()
    ]
    summary = {
        "sessions": len(sessions),
        "natural_end_share": 0.89,
        "metrics": {"natural_end_share": {"mean": 0.89, "ci95": [0.67, 1.0], "n": 9}},
        "items": {"ctrs": {"agenda": {"label": "Agenda", "mean": 4.1, "ci95": [3.5, 4.6], "n": 8}}},
        "personas": {"priya_shah": {"sessions": 3, "metrics": {}, "items": {}}},
    }
    (folder / "eval.json").write_text(
        json.dumps({"eval_id": eval_id, "sessions": sessions, "summary": summary})
    )


def test_min_score_reads_the_runs_evaluation(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    scores = {k: float(i % 5 + 1) for i, k in enumerate(ALL) if k != ("walter_kowalski", 3)}
    write_eval(run, "20260102T000000Z", scores)
    write_eval(run, "20260101T000000Z", {k: 1.0 for k in ALL})
    os.utime(run / "eval" / "20260101T000000Z" / "eval.json", (1_000_000, 1_000_000))
    out = tmp_path / "r.jsonl"
    result = export(run, "--format", "records", "--min-score", "ctrs.agenda>=3", "--out", out)
    assert result.exit_code == 0, result.output
    assert exported_keys(out) == [k for k in ALL if scores.get(k, 0) >= 3]
    assert "  no ctrs.agenda score: 1" in summary_lines(result.output)
    old = tmp_path / "old.jsonl"
    result = export(
        run,
        "--format",
        "records",
        "--min-score",
        "ctrs.feedback>=0",
        "--eval",
        "20260101T000000Z",
        "--out",
        old,
    )
    assert result.exit_code == 0 and exported_keys(old) == ALL


def test_eval_picks_an_evaluation_in_each_run_that_has_it(run_dir: Path, tmp_path: Path) -> None:
    """Evaluation ids differ from run to run: `--eval` names one in the run that has it, and
    the other runs keep the evaluation the page shows."""
    first, second = copy_run(run_dir, tmp_path / "a", "run_a"), copy_run(run_dir, tmp_path / "b", "run_b")
    write_eval(first, "old_a", {k: 5.0 for k in ALL})
    write_eval(first, "new_a", {k: 1.0 for k in ALL})
    os.utime(first / "eval" / "old_a" / "eval.json", (1_000_000, 1_000_000))
    write_eval(second, "only_b", {k: 4.0 for k in ALL})
    out = tmp_path / "ds"
    result = export(
        first, second, "--format", "records", "--min-score", "ctrs.agenda>=4", "--eval", "old_a", "--out", out,
        "--split", "all=1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out / "all.jsonl")) == 18
    card = (out / "README.md").read_text()
    assert "evaluation `old_a`" in card and "evaluation `only_b`" in card and "new_a" not in card
    for args, message in (
        (["--eval", "nope"], f"--eval nope: no such evaluation in {first / 'eval'}, {second / 'eval'}"),
        (["--eval", "old_a", "--eval", "new_a"], "--eval names two evaluations of this run: old_a, new_a"),
    ):
        result = export(first, second, "--format", "records", *args, "--out", tmp_path / "r.jsonl")
        assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-score", "ctrs.agenda>=3"], "--min-score needs scores: run `simulator evaluate"),
        (["--min-score", "ctrs>=3"], "bad score rule 'ctrs>=3'"),
        (["--eval", "nope"], "--eval nope: no such evaluation"),
        (["--eval", "../../etc"], "--eval: invalid evaluation id '../../etc'"),
    ],
)
def test_score_filters_without_scores_are_bad_input(
    run_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = export(run_dir, "--format", "records", *args, "--out", tmp_path / "r.jsonl")
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1


def test_min_score_for_an_item_never_scored_is_bad_input(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    write_eval(run, "e1", {k: 3.0 for k in ALL})
    result = export(
        run, "--format", "records", "--min-score", "ctrs.agneda>=3", "--out", tmp_path / "r.jsonl"
    )
    assert result.exit_code == 2
    assert (
        "no score named 'ctrs.agneda' in the evaluations (scored: ctrs.agenda, ctrs.feedback)"
        in result.output
    )


def test_a_session_whose_text_would_leak_an_engine_note_is_left_out(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    data = session_json(run, "priya_shah", 1)
    note = "Time check: only a few exchanges remain in this session. Begin wrapping up now: "
    data["messages"][3]["content"] += " " + note
    edit_session(run, "priya_shah", 1, messages=data["messages"])
    out = tmp_path / "o.jsonl"
    result = export(run, "--format", "openai", "--out", out)
    assert result.exit_code == 0, result.output
    assert "  invalid example: engine note in a message: 1" in summary_lines(result.output)
    assert len(read_jsonl(out)) == 8 and note not in out.read_text()


def shingle_jaccard(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Exact Jaccard of word 5-gram sets of two sessions' conversations (opening left out)."""

    def shingles(session: dict[str, Any]) -> set[tuple[str, ...]]:
        words = " ".join(m["content"] for m in session["messages"][1:]).lower().split()
        return set(zip(*(words[i:] for i in range(5)), strict=False))

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def test_dedupe_drops_near_duplicates_across_runs_and_prints_the_threshold(
    run_dir: Path, tmp_path: Path
) -> None:
    twin = copy_run(run_dir, tmp_path / "twin", run_id="twin")
    light = session_json(twin, "walter_kowalski", 1)
    light["messages"][2]["content"] = light["messages"][2]["content"].replace(" ", " really ", 1)
    edit_session(twin, "walter_kowalski", 1, messages=light["messages"])
    heavy = session_json(twin, "walter_kowalski", 2)
    for i, message in enumerate(heavy["messages"][1:]):
        message["content"] = (
            f"Entirely new words number {i} about harbour lanterns {i * 7} and quiet orchards {i * 13}."
        )
    edit_session(twin, "walter_kowalski", 2, messages=heavy["messages"])
    assert shingle_jaccard(light, session_json(run_dir, "walter_kowalski", 1)) > 0.95
    assert shingle_jaccard(heavy, session_json(run_dir, "walter_kowalski", 2)) < 0.1
    out = tmp_path / "r.jsonl"
    result = export(
        run_dir, twin, "--format", "records", "--dedupe", "--dedupe-threshold", "0.9", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert [r["messages"] for r in read_jsonl(out)] == [
        *(session_json(run_dir, p, n)["messages"] for p, n in ALL),
        heavy["messages"],
    ]
    assert "  near-duplicate: 8" in summary_lines(result.output)
    assert "dedupe: MinHash (128 permutations) over word 5-gram shingles, Jaccard >= 0.90" in result.output
    assert export(run_dir, twin, "--format", "records", "--out", tmp_path / "all.jsonl").exit_code == 0
    assert len(read_jsonl(tmp_path / "all.jsonl")) == 18


def test_dedupe_keeps_distinct_sessions(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = export(run_dir, "--format", "records", "--dedupe", "--out", out)
    assert result.exit_code == 0 and len(read_jsonl(out)) == 9 and "near-duplicate" not in result.output


# ---- splits --------------------------------------------------------------------------------------


def test_split_sizes_follow_the_fractions() -> None:
    splits = (Split("train", 0.8), Split("validation", 0.1), Split("test", 0.1))
    assert sizes(100, splits) == [80, 10, 10]
    assert sizes(11, splits) == [9, 1, 1]
    assert sum(sizes(7, splits)) == 7


def test_split_assignment_is_deterministic_for_a_seed_and_stable_as_personas_are_added() -> None:
    splits = (Split("train", 0.5), Split("test", 0.5))
    personas = [f"p{i}" for i in range(40)]
    first = assign(personas, splits, 7, "persona")
    assert first == assign(list(reversed(personas)), splits, 7, "persona")
    assert first != assign(personas, splits, 8, "persona")
    assert sorted(first.values()).count("train") == 20


def test_a_split_that_would_get_no_persona_is_bad_input() -> None:
    with pytest.raises(InputError, match="split 'test' would get no persona: 3 persona"):
        assign(["a", "b", "c"], (Split("train", 0.9), Split("test", 0.1)), 0, "persona")


def test_persona_splits_are_disjoint_and_written_one_file_each(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = export(
        run_dir, "--format", "openai", "--split", "train=0.67,test=0.33", "--split-seed", "3", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "test.jsonl", "train.jsonl"]
    again = tmp_path / "again"
    assert (
        export(
            run_dir,
            "--format",
            "records",
            "--split",
            "train=0.67,test=0.33",
            "--split-seed",
            "3",
            "--out",
            again,
        ).exit_code
        == 0
    )
    train = {r["persona_id"] for r in read_jsonl(again / "train.jsonl")}
    test = {r["persona_id"] for r in read_jsonl(again / "test.jsonl")}
    assert len(train) == 2 and len(test) == 1 and not train & test
    assert len(read_jsonl(out / "train.jsonl")) == len(read_jsonl(again / "train.jsonl")) == 6
    assert "  train: 6 example(s), 2 persona(s)" in result.output


def test_split_by_session_warns_about_leakage(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = export(
        run_dir, "--format", "records", "--split", "train=0.5,test=0.5", "--split-by", "session", "--out", out
    )
    assert result.exit_code == 0
    assert (
        "simulator: warning: --split-by session puts sessions of the same persona in different splits"
        in result.output
    )
    assert len(read_jsonl(out / "train.jsonl")) + len(read_jsonl(out / "test.jsonl")) == 9


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("train=0.9,test=0.2", "fractions add up to 1.1"),
        ("train:0.9", "expected NAME=FRACTION"),
        ("train=x,test=0.1", "'x' is not a number"),
        ("train=0.5,train=0.5", "train is given twice"),
        ("train=0.9,test=0.1", "split 'test' would get no persona"),
    ],
)
def test_bad_split_specs_are_one_line(run_dir: Path, tmp_path: Path, spec: str, message: str) -> None:
    result = export(run_dir, "--format", "records", "--split", spec, "--out", tmp_path / "ds")
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# ---- the dataset card ----------------------------------------------------------------------------


def front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    data: dict[str, Any] = yaml.safe_load(card.split("---\n")[1])
    return data


def test_card_fields(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = export(
        run_dir, "--format", "sharegpt", "--split", "train=0.67,test=0.33", "--natural-end-only", "--out", out
    )
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "other"
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "train.jsonl"},
                {"split": "test", "path": "test.jsonl"},
            ],
        }
    ]
    assert "No licence was chosen at export" in card
    assert "Synthetic data, not clinical advice" in card
    run = json.loads((run_dir / "run.json").read_text())
    for name, digest in run["inputs"]["templates"].items():
        assert f"| {name} | {digest} |" in card
    assert "- Backend: offline" in card and "- Seeds: 1" in card and "- Engine: simulator 0.1.0" in card
    train, test = (len(read_jsonl(out / f"{s}.jsonl")) for s in ("train", "test"))
    assert f"| train | train.jsonl | {train} |" in card and f"| test | test.jsonl | {test} |" in card
    assert "| not a natural end (Repetition Loop) | 1 |" in card
    assert "only sessions that ended naturally (`--natural-end-only`)" in card
    repaired = sum(
        1 for k in ALL if k != ("marcus_thompson", 2)
        if any(f != "template" for m in session_json(run_dir, *k)["messages"] for f in m["flags"])
    )  # fmt: skip
    assert f"{repaired} of 8 sessions ({repaired / 8:.1%}) had at least one" in card
    assert "not evaluated (`simulator evaluate` has not run)" in card


def test_the_card_names_a_few_runs_and_counts_many(run_dir: Path, tmp_path: Path) -> None:
    """An export of many shards would otherwise carry every run id in its title."""
    runs = [copy_run(run_dir, tmp_path / f"r{i}", f"shard_{i}") for i in range(4)]
    for given, title in (
        (runs[:2], "simulator sessions (shard_0, shard_1)"),
        (runs, "simulator sessions (4 runs)"),
    ):
        out = tmp_path / f"ds{len(given)}"
        assert export(*given, "--format", "parquet", "--out", out).exit_code == 0
        card = (out / "README.md").read_text()
        assert front_matter(card)["pretty_name"] == title and f"\n# {title}\n" in card


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (99_999, "10K<n<100K"), (1_000_000, "1M<n<10M")],
)
def test_size_categories_are_values_the_hub_accepts(count: int, expected: str) -> None:
    """The list the ``datasets`` library validates cards with (the Hub's own values)."""
    resource = resources.files("datasets.utils.resources") / "size_categories.json"
    assert size_category(count) == expected and expected in json.loads(resource.read_text())


def test_card_licence_persona_sources_and_evaluation(tmp_path: Path) -> None:
    data = yaml.safe_load(MARCUS.read_text())
    data["id"] = "psi_case_7"
    data["extra"]["source"] = "Patient-Ψ profiles.json record 7 (id 7)"
    data["extra"]["license"] = "MIT"
    imported = tmp_path / "psi_case_7.yaml"
    imported.write_text(yaml.safe_dump(data, allow_unicode=True))
    run = make_run(tmp_path / "runs", personas=(imported, PERSONAS / "priya_shah.yaml"), sessions=1)
    write_eval(run, "e1", {("psi_case_7", 1): 5.0, ("priya_shah", 1): 4.0})
    out = tmp_path / "ds"
    result = export(run, "--format", "parquet", "--license", "CC-BY-4.0", "--out", out)
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert front_matter(card)["license"] == "cc-by-4.0"
    assert "| psi_case_7 | Marcus Thompson | 1 | Patient-Ψ profiles.json record 7 (id 7) | MIT |" in card
    assert (
        "| priya_shah | Priya Shah | 1 | hand-written persona file | not recorded in the persona file |"
        in card
    )
    assert "evaluation `e1`" in card
    assert "| natural_end_share | 0.89 | 0.67-1 | 9 |" in card
    assert "| ctrs.agenda (Agenda) | 4.1 | 3.5-4.6 | 8 |" in card


def test_runs_sharing_a_persona_id_list_each_persona_file_and_share_its_split(tmp_path: Path) -> None:
    """Two runs whose persona `case_7` comes from different sources under different licences:
    the card lists both files (one row would hide the second licence), and the id still
    keeps to one split."""
    files = []
    for folder, source, licence in (
        ("a", "Patient-Ψ record 7", "MIT"),
        ("b", "TalkDep record 7", "CC-BY-NC-4.0"),
    ):
        data = yaml.safe_load(MARCUS.read_text())
        data["id"] = "case_7"
        data["extra"].update(source=source, license=licence)
        (tmp_path / folder).mkdir()
        files.append(tmp_path / folder / "case_7.yaml")
        files[-1].write_text(yaml.safe_dump(data, allow_unicode=True))
    runs = [
        make_run(tmp_path / "runs", run_id=f"run_{i}", personas=(f, PERSONAS / "priya_shah.yaml"), sessions=2)
        for i, f in enumerate(files)
    ]
    out = tmp_path / "ds"
    result = export(*runs, "--format", "records", "--split", "train=0.5,test=0.5", "--out", out)
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert "| case_7 | Marcus Thompson | 2 | Patient-Ψ record 7 | MIT |" in card
    assert "| case_7 | Marcus Thompson | 2 | TalkDep record 7 | CC-BY-NC-4.0 |" in card
    assert "| priya_shah | Priya Shah | 4 | hand-written persona file |" in card
    splits = {
        name: {r["persona_id"] for r in read_jsonl(out / f"{name}.jsonl")} for name in ("train", "test")
    }
    assert sorted(len(v) for v in splits.values()) == [1, 1] and not splits["train"] & splits["test"]


def test_a_bad_licence_is_bad_input(run_dir: Path, tmp_path: Path) -> None:
    result = export(run_dir, "--format", "parquet", "--license", "MIT licence", "--out", tmp_path / "ds")
    assert result.exit_code == 2 and "bad licence 'MIT licence'" in result.output


# ---- output and bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--as", "patient"], "--as does"),
        (["--as", "therapist"], "--as does"),
        (["--system", "none", "--series-context"], "--system and --series-context do"),
    ],
)
def test_chat_only_flags_are_refused_with_records(
    run_dir: Path, tmp_path: Path, flags: list[str], named: str
) -> None:
    """Records are the sessions as generated: a perspective or system prompt would be silently
    ignored, so asking for one is a mistake the user hears about, and nothing is written."""
    out = tmp_path / "r.jsonl"
    result = export(run_dir, "--format", "records", *flags, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"simulator: error: {named} not apply to --format records (the engine's own session JSON, "
        f"both sides as generated, not a chat example): leave {'it' if 'does' in named else 'them'} out"
    ]
    assert not out.exists()
    assert export(run_dir, "--format", "openai", *flags, "--out", out).exit_code == 0


def test_an_existing_out_is_refused_without_force_and_replaced_with_it(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text("keep me\n")
    result = export(run_dir, "--format", "openai", "--out", out)
    assert result.exit_code == 2 and "already exists; pass --force to replace it" in result.output
    assert out.read_text() == "keep me\n"
    assert export(run_dir, "--format", "openai", "--out", out, "--force").exit_code == 0
    assert len(read_jsonl(out)) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl"]


def test_force_replaces_an_export_folder_but_never_another_folder(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert (
        export(run_dir, "--format", "records", "--split", "train=0.67,test=0.33", "--out", out).exit_code == 0
    )
    assert (
        export(run_dir, "--format", "records", "--out", out, "--force", "--split", "a=0.67,b=0.33").exit_code
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "a.jsonl", "b.jsonl"]
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    result = export(run_dir, "--format", "parquet", "--out", precious, "--force")
    assert result.exit_code == 2 and "not an export folder" in result.output
    assert (precious / "sub").is_dir()
    inside = export(run_dir, "--format", "parquet", "--out", run_dir / "dataset")
    assert inside.exit_code == 2 and "overlaps the run folder" in inside.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "precious"]


def test_not_a_run_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    result = export(tmp_path / "notes", "--format", "openai", "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert result.output == f"simulator: error: {tmp_path / 'notes'}: not a run folder (no run.json)\n"


def test_the_folder_holding_runs_names_them(run_dir: Path, tmp_path: Path) -> None:
    """`simulator run --out runs` makes runs/RUN_ID; `export runs` says which folders to give."""
    result = export(run_dir.parent, "--format", "openai", "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert result.output == (
        f"simulator: error: {run_dir.parent}: not a run folder, but it holds 1 run folder(s) "
        f"({run_dir.name}): give those as RUN_DIR\n"
    )
    assert not (tmp_path / "o.jsonl").exists()


def test_the_same_run_twice_is_bad_input(run_dir: Path, tmp_path: Path) -> None:
    result = export(run_dir, run_dir, "--format", "openai", "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "run 'demo' is given twice" in result.output


def test_the_summary_counts_examples_tokens_and_exclusions(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    result = export(run_dir, "--format", "openai", "--natural-end-only", "--out", out)
    chars = sum(len(m["content"]) for line in read_jsonl(out) for m in line["messages"])
    assert summary_lines(result.output)[:5] == [
        f"exported 8 session(s) as therapist (openai) to {out}",
        f"  train: 8 example(s), 3 persona(s), ~{chars // 4:,} tokens -> o.jsonl",
        "excluded 1 session(s):",
        "  not a natural end (Repetition Loop): 1",
        f"tokens: ~{chars // 4:,} in all (estimate: 4 characters a token)",
    ]


def test_out_folders_that_do_not_exist_yet_are_made(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "datasets" / "therapist"
    assert export(run_dir, "--format", "parquet", "--out", out).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "train.parquet"]


def test_filters_that_leave_nothing_say_why_and_write_nothing(run_dir: Path, tmp_path: Path) -> None:
    result = export(run_dir, "--format", "openai", "--min-messages", "999", "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert result.output == (
        "simulator: error: nothing to export: every session was left out (fewer than 999 messages: 9)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_fails_halfway_leaves_the_old_output_and_no_temporaries(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ds"
    assert (
        export(run_dir, "--format", "records", "--split", "train=0.67,test=0.33", "--out", out).exit_code == 0
    )
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write = formats.write

    def write_then_fail(fmt: Any, path: Path, examples: Any) -> None:
        real_write(fmt, path, examples)
        if path.name == "test.jsonl":
            raise KeyboardInterrupt

    monkeypatch.setattr(formats, "write", write_then_fail)
    result = export(run_dir, "--format", "openai", "--split", "train=0.67,test=0.33", "--out", out, "--force")
    assert result.exit_code == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_every_repair_flag_the_engine_writes_is_known_to_exclude_flags() -> None:
    """--exclude-flags refuses names it does not know; a flag the engine gains must be added."""
    package = Path(simulator.__file__).parent
    written = {
        name
        for module in ("guards.py", "summary.py", "session.py")
        for match in FLAG_WRITE.finditer((package / module).read_text(encoding="utf-8"))
        for name in match.groups()
        if name
    }
    assert written - {"empty"} <= set(REPAIR_FLAGS)
    assert len(written) > 15
