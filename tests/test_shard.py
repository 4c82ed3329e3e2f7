"""Large runs: ``--shard I/N`` splits a persona set across machines into run folders that merge
back into one; several base URLs serve one role."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator import commands
from simulator.errors import InputError
from tests.conftest import invoke
from tests.loopback import serve
from tests.serieskit import CONFIG, complete_files, run_json, scripted, statuses, write_personas

SHARDS = 3


def _shard(tmp_path: Path, personas: list[Path], index: int, *extra: str, run_id: str = "") -> Path:
    run_id = run_id or f"s{index}"
    result = invoke(
        "run", *personas, "--shard", f"{index}/{SHARDS}", "--backend", "offline", "--sessions", "2",
        "--max-turns", "10", "--out", tmp_path / "machine", "--run-id", run_id, "--no-progress", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / "machine" / run_id


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    personas = write_personas(tmp_path / "personas", 5)
    # Each machine may list the files in its own order: the slice depends on the ids only.
    return [_shard(tmp_path, personas[:: 1 if i % 2 else -1], i) for i in range(1, SHARDS + 1)]


def test_shards_are_disjoint_and_cover_the_set(shards: list[Path]) -> None:
    sets = [set(run_json(d)["sessions"]) for d in shards]
    everyone = {"p1_ada", "p2_ben", "p3_cara", "p4_dev", "p5_eli"}
    assert set.union(*sets) == everyone
    assert sum(len(s) for s in sets) == len(everyone)
    assert [sorted(s) for s in sets] == [["p1_ada", "p4_dev"], ["p2_ben", "p5_eli"], ["p3_cara"]]
    for index, run_dir in enumerate(shards, start=1):
        data = run_json(run_dir)
        assert data["shard"] == {"index": index, "of": SHARDS, "personas": sorted(everyone)}
        assert set(data["inputs"]["personas"]) == sets[index - 1]
        assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == sorted(["inputs", *sets[index - 1]])


def test_shards_merge_into_one_run_folder(shards: list[Path], tmp_path: Path) -> None:
    into = tmp_path / "merged" / "all"
    line = commands.merge(shards, into)
    assert line == f"merged 3 run folders into {into}: 5 personas, 10/10 sessions complete (status complete)"
    data = run_json(into)
    assert data["status"] == "complete" and data["command"] == "merge" and "shard" not in data
    assert set(statuses(into).values()) == {"complete"} and len(statuses(into)) == 10
    assert [m["run_id"] for m in data["merged_from"]] == ["s1", "s2", "s3"]
    merged_files = complete_files(into)
    for shard in shards:
        assert {k: merged_files[k] for k in complete_files(shard)} == complete_files(shard)
    assert data["totals"]["requests"] == sum(run_json(s)["totals"]["requests"] for s in shards)
    assert sorted(p.stem for p in (into / "inputs" / "personas").iterdir()) == sorted(data["sessions"])
    assert invoke("resume", into).exit_code == 0, "an ordinary run folder: nothing to resume"


def test_merge_refuses_a_gap_an_overlap_and_other_settings(shards: list[Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"shards \[1, 2\] of 3 leave out p3_cara: add the missing shard"):
        commands.merge(shards[:2], tmp_path / "m1")
    with pytest.raises(InputError, match=r"persona 'p1_ada' is also in .*shards overlap"):
        commands.merge([shards[0], shards[0]], tmp_path / "m2")
    other = _shard(tmp_path, write_personas(tmp_path / "personas", 5), 3, "--seed", "9", run_id="other")
    with pytest.raises(InputError, match=r"not a shard of the same run .*: seed differ"):
        commands.merge([*shards[:2], other], tmp_path / "m3")
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m3").exists()


def test_an_unfinished_shard_merges_and_resumes(shards: list[Path], tmp_path: Path) -> None:
    data = run_json(shards[2])
    for suffix in (".txt", ".json"):
        (shards[2] / "p3_cara" / f"session_02{suffix}").unlink()
    data["sessions"]["p3_cara"]["2"] = {"status": "interrupted"}
    data["status"] = "interrupted"
    (shards[2] / "run.json").write_text(json.dumps(data))
    into = tmp_path / "merged" / "all"
    commands.merge(shards, into)
    assert run_json(into)["status"] == "interrupted"
    result = invoke("resume", into, "--no-progress")
    assert result.exit_code == 0, result.output
    assert run_json(into)["status"] == "complete" and (into / "p3_cara" / "session_02.json").is_file()


def test_several_base_urls_share_one_role(tmp_path: Path) -> None:
    personas = write_personas(tmp_path / "personas", 2)
    with serve(scripted) as main, serve(scripted) as replica_a, serve(scripted) as replica_b:
        config = tmp_path / "run.yaml"
        config.write_text(
            CONFIG
            + "roles:\n  therapist: {model: therapist}\n  summarizer: {model: summarizer}\n"
            + f"  patient: {{model: patient, base_urls: ['{replica_a.base_url}', '{replica_b.base_url}']}}\n"
        )
        result = invoke(
            "run", *personas, "--backend", "openai", "--base-url", main.base_url, "--config", config,
            "--out", tmp_path, "--run-id", "r", "--no-progress",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        models = [{r.json["model"] for r in s.requests} for s in (main, replica_a, replica_b)]
        counts = [len(s.requests) for s in (replica_a, replica_b)]
    assert models == [{"therapist", "summarizer"}, {"patient"}, {"patient"}]
    assert abs(counts[0] - counts[1]) <= 1, "round-robin across the replicas"
