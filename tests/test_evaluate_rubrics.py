"""Rubric files: the bundled six are valid and anchored; a bad rubric, an unknown rubric or a
folder that is not a run is one line, exit 2, and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.evaluate.rubrics import bundled_rubrics_dir, load_rubric, load_rubrics
from tests.conftest import MARCUS, invoke, make_offline_run

BUNDLED = ["continuity", "ctrs", "mi", "persona_fidelity", "realism", "summary_faithfulness"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_offline_run(tmp_path_factory.mktemp("runs"), MARCUS, sessions=2, run_id="r")


def copy_rubric(tmp_path: Path, name: str = "ctrs", new_name: str | None = None) -> Path:
    folder = tmp_path / "rubrics"
    folder.mkdir(exist_ok=True)
    target = new_name or name
    shutil.copyfile(bundled_rubrics_dir() / f"{name}.j2", folder / f"{target}.j2")
    shutil.copyfile(bundled_rubrics_dir() / f"{name}.yaml", folder / f"{target}.yaml")
    return folder / f"{target}.yaml"


def test_bundled_rubrics_anchor_every_scale_point() -> None:
    rubrics = load_rubrics([])
    assert [r.name for r in rubrics] == BUNDLED
    ctrs = next(r for r in rubrics if r.name == "ctrs")
    assert len(ctrs.spec.items) == 11 and ctrs.spec.modalities == ["CBT"]
    for rubric in rubrics:
        for item in rubric.spec.items:
            if item.kind == "rating":
                assert item.scale is not None
                assert sorted(item.anchors) == list(range(item.scale[0], item.scale[1] + 1))
    mi = next(r for r in rubrics if r.name == "mi")
    kinds = {item.id: item.kind for item in mi.spec.items}
    assert kinds["questions"] == "count" and kinds["complex_reflection_share"] == "ratio"
    assert mi.spec.items[-1].label == "derived from judge counts"
    assert next(i for i in mi.spec.items if i.id == "questions").label == "judge-counted"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("      3: An agenda was set with the patient, but it was vague or not followed.\n", ""),
            "scale point(s) 3 have no anchor",
        ),
        (
            ("applies_to: therapist", "applies_to: therapist\nscore_weights: {}"),
            "unknown key 'score_weights'",
        ),
        (("    scale: [0, 6]\n", "    scale: [0, 6]\n    colour: red\n"), "unknown key 'items.0.colour'"),
        (("applies_to: therapist", "applies_to: couple"), "key 'applies_to'"),
        (("  - id: feedback", "  - id: agenda"), "item id(s) used twice: agenda"),
    ],
)
def test_bad_rubric_names_the_file_and_problem(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = copy_rubric(tmp_path)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError) as caught:
        load_rubric(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_rubric_override_by_name_and_a_new_one(tmp_path: Path) -> None:
    path = copy_rubric(tmp_path)
    path.write_text(path.read_text().replace("title: Cognitive Therapy Rating Scale", "title: House CTRS"))
    copy_rubric(tmp_path, "realism", "warmth")
    names = {r.name: r for r in load_rubrics([], tmp_path / "rubrics")}
    assert names["ctrs"].spec.title.startswith("House CTRS") and "warmth" in names


def test_bad_rubric_on_the_command_line_exits_2_and_writes_nothing(run_dir: Path, tmp_path: Path) -> None:
    path = copy_rubric(tmp_path)
    path.write_text(path.read_text().replace("      0: No agenda was set.\n", ""))
    result = invoke("evaluate", run_dir, "--rubrics", tmp_path / "rubrics", "--rubric", "ctrs")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"simulator: error: {path}: key 'items.0': item 'agenda': scale point(s) 0 have no "
        "anchor description (every point of the scale needs one)"
    ]
    assert "Traceback" not in result.output and not (run_dir / "eval").exists()


def test_template_error_in_a_rubric_exits_2(run_dir: Path, tmp_path: Path) -> None:
    path = copy_rubric(tmp_path)
    path.with_suffix(".j2").write_text("Rate {{ therapist.nmae }}\n{{ transcript }}")
    result = invoke("evaluate", run_dir, "--rubrics", tmp_path / "rubrics", "--rubric", "ctrs")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "ctrs.j2" in result.stderr and "nmae" in result.stderr
    assert not (run_dir / "eval").exists()


def test_unknown_rubric_exits_2(run_dir: Path) -> None:
    result = invoke("evaluate", run_dir, "--rubric", "ctrss")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "simulator: error: --rubric: unknown rubric 'ctrss' (available: " + ", ".join(BUNDLED) + ")"
    ]
    assert not (run_dir / "eval").exists()


def test_not_a_run_folder_exits_2(tmp_path: Path) -> None:
    result = invoke("evaluate", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"simulator: error: {tmp_path}: not a run folder (no run.json)"]
    assert list(tmp_path.iterdir()) == []
    missing = invoke("evaluate", tmp_path / "nope")
    assert missing.exit_code == 2 and "not a run folder" in missing.stderr


def test_resume_of_an_unknown_evaluation_exits_2(run_dir: Path) -> None:
    result = invoke("evaluate", run_dir, "--resume", "nope")
    assert result.exit_code == 2 and "no evaluation 'nope'" in result.stderr
    bad = invoke("evaluate", run_dir, "--resume", "../..")
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        f"simulator: error: --resume: invalid evaluation id '../..' (the ids are the folders in {run_dir / 'eval'})"
    ]


def test_the_readme_rubric_example_loads_and_renders(run_dir: Path, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Writing a rubric")[1]
    yaml_text = section.split("```yaml\n")[1].split("```")[0]
    jinja_text = section.split("```jinja\n")[1].split("```")[0]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "warmth.yaml").write_text(yaml_text)
    (folder / "warmth.j2").write_text(jinja_text)
    rubric = load_rubric(folder / "warmth.yaml")
    assert [item.kind for item in rubric.spec.items] == ["rating", "count"]
    result = invoke("evaluate", run_dir, "--rubrics", folder, "--rubric", "warmth", "--judge-model", "j",
                    "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 judge calls (2 cases x 1 repeats)" in result.stdout and not (run_dir / "eval").exists()


def test_resume_keeps_its_own_settings(run_dir: Path) -> None:
    result = invoke("evaluate", run_dir, "--resume", "x", "--judge-model", "other")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "simulator: error: --resume: a resumed evaluation keeps its own settings (only --concurrency may change)"
    ]


def test_judging_openai_without_a_key_exits_2_before_writing(run_dir: Path) -> None:
    result = invoke(
        "evaluate", run_dir, "--backend", "openai", "--judge-model", "gpt-4o-mini", "--rubric", "ctrs"
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "simulator: error: OPENAI_API_KEY is not set: export it, or use --backend offline"
    ]
    assert not (run_dir / "eval").exists()


def test_the_readme_worked_example_table_is_what_evaluate_prints(tmp_path: Path) -> None:
    made = invoke(
        "run", MARCUS, "--sessions", "3", "--backend", "offline", "--out", tmp_path, "--run-id", "demo"
    )
    assert made.exit_code == 0, made.output
    result = invoke("evaluate", tmp_path / "demo", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shown = readme.split("## Evaluating a run")[1].split("```\nevaluation ")[1].split("```")[0]
    rows = [line for line in shown.splitlines() if line.startswith("│")]
    assert rows and rows == [line.rstrip() for line in result.stdout.splitlines() if line.startswith("│")]


def test_roles_judge_in_a_run_config_reaches_the_judge(tmp_path: Path) -> None:
    from simulator.config import load_config

    config = tmp_path / "run.yaml"
    config.write_text("roles:\n  judge: {max_tokens: 2500, temperature: 0}\n  therapist: {model: t}\n")
    loaded = load_config(config, {})
    assert loaded.roles["judge"].max_tokens == 2500 and loaded.roles["judge"].temperature == 0
    assert loaded.roles["patient"].max_tokens is not None  # the run roles still get their defaults
