"""`simulator view` without a browser: what the page file holds, bad input, partial runs,
evaluation scores. The browser tests (test_view_browser.py) check what a reader sees."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.evaluate.results import summarize_eval
from simulator.reader import read_run
from simulator.view.sessions import end_phrase_span, packed, unpacked
from tests.conftest import MARCUS, PERSONAS, invoke
from tests.judgekit import JudgeModel
from tests.loopback import serve
from tests.viewkit import MARCUS_PRIYA, habits_run, mark_unfinished, offline_run


@pytest.fixture(scope="module")
def habits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return habits_run(tmp_path_factory.mktemp("view"), MARCUS_PRIYA, sessions=2)


def _bodies(page: str) -> dict[str, Any]:
    blocks = re.findall(
        r'<script type="application/gzip" class="session-data" data-for="([^"]+)" data-encoding="base64">(.*?)</script>',
        page,
        re.S,
    )
    return {key: unpacked(text) for key, text in blocks}


def test_writes_one_self_contained_page_next_to_the_run(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path, MARCUS_PRIYA, sessions=2)
    result = invoke("view", run_dir)
    assert result.exit_code == 0, result.output
    page_file = run_dir / "report.html"
    assert result.stdout.strip() == str(page_file)
    page = page_file.read_text(encoding="utf-8")
    keys = [f"{p}/{n}" for p in ("marcus_thompson", "priya_shah") for n in (1, 2)]
    # A card and a session view for every session.
    assert sorted(re.findall(r'data-session="([^"]+)"', page)) == sorted(keys * 2)
    # Nothing is fetched: no external resource of any kind, and a policy that forbids it.
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page)
    assert 'content="default-src &#39;none&#39;;' in page
    assert not list(run_dir.glob(".report.html.*"))
    assert sorted(_bodies(page)) == sorted(keys)


def test_out_writes_elsewhere_and_overwrites(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path, [MARCUS], sessions=1)
    out = tmp_path / "pages" / "marcus.html"
    assert invoke("view", run_dir, "--out", out).exit_code == 0
    first = out.read_text()
    assert invoke("view", run_dir, "--out", out).exit_code == 0
    assert (
        out.read_text().count('data-session="marcus_thompson/1"')
        == first.count('data-session="marcus_thompson/1"')
        == 2
    )
    assert not (run_dir / "report.html").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "not a run folder (no run.json)"),
        (lambda d: d / "nope", "not a run folder (not a directory)"),
        (lambda d: (d / "run.json").write_text("{}") and d, "damaged run.json"),
        (lambda d: (d / "run.json").write_text("[1, ") and d, "damaged run.json"),
        (lambda d: (d / "run.json").write_text("[1, 2]") and d, "damaged run.json: not an object"),
        (
            lambda d: (d / "run.json").write_text('{"sessions": []}') and d,
            "damaged run.json: run_id: Field required",
        ),
        (
            lambda d: (d / "run.json").write_text("{}") and d / "run.json",
            "not a run folder (not a directory)",
        ),
    ],
)
@pytest.mark.parametrize("command", ["view", "evaluate"])
def test_not_a_run_folder_is_one_line_and_exit_2(
    tmp_path: Path, make: Callable[[Path], Path], message: str, command: str
) -> None:
    """The same for `simulator evaluate`, which reads a run the same way."""
    folder = make(tmp_path)
    result = invoke(command, folder)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.html")) and not list(tmp_path.rglob("eval"))


def test_out_that_is_a_directory_is_bad_input(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path, [MARCUS], sessions=1)
    result = invoke("view", run_dir, "--out", tmp_path)
    assert result.exit_code == 2 and "--out is a directory" in result.stderr


def test_out_never_replaces_a_file_of_the_run(tmp_path: Path) -> None:
    """A mistyped --out pointing at a session record or run.json is refused, and the file stays whole."""
    run_dir = offline_run(tmp_path, [MARCUS], sessions=1)
    for target in (run_dir / "marcus_thompson" / "session_01.json", run_dir / "run.json"):
        before = target.read_bytes()
        result = invoke("view", run_dir, "--out", target)
        assert result.exit_code == 2, result.output
        assert (
            result.stderr
            == f"simulator: error: {target}: --out would replace one of the run's own files; give an .html file\n"
        )
        assert target.read_bytes() == before
    # A page of its own inside the run folder is still fine, and can be written again.
    page = run_dir / "review.html"
    assert invoke("view", run_dir, "--out", page).exit_code == 0
    assert invoke("view", run_dir, "--out", page).exit_code == 0


def test_partial_and_missing_sessions_still_render_and_are_marked(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path, [*MARCUS_PRIYA, PERSONAS / "walter_kowalski.yaml"], sessions=2)
    mark_unfinished(run_dir, "priya_shah", 2)
    mark_unfinished(run_dir, "walter_kowalski", 1, status="failed")
    (run_dir / "walter_kowalski" / "session_02.json").unlink()
    run = json.loads((run_dir / "run.json").read_text())
    run["sessions"]["walter_kowalski"]["2"]["status"] = "pending"
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "marcus_thompson" / "session_02.json").unlink()
    (run_dir / "marcus_thompson" / "session_01.json").write_text("{ damaged")
    assert invoke("view", run_dir).exit_code == 0
    page = (run_dir / "report.html").read_text()
    card = {
        key: cls
        for cls, key in re.findall(
            r'<a class="card state-(\w+)[^"]*" href="[^"]+" data-session="([^"]+)"', page
        )
    }
    assert card == {
        "marcus_thompson/1": "damaged",
        "marcus_thompson/2": "missing",
        "priya_shah/1": "complete",
        "priya_shah/2": "interrupted",
        "walter_kowalski/1": "failed",
        "walter_kowalski/2": "pending",
    }
    assert "No session record on disk (missing)" in page and "No session record on disk (pending)" in page
    assert '<p class="problem">server error 500 after 6 attempts</p>' in page
    assert "damaged session record" in page
    # The interrupted session's record is still readable in the page, marked as such.
    assert _bodies(page)["priya_shah/2"]["meta"]["status"] == "interrupted"
    # `simulator evaluate` takes the one complete session and lists the others, each with its state.
    evaluated = invoke("evaluate", run_dir)
    assert evaluated.exit_code == 0, evaluated.output
    (eval_file,) = run_dir.glob("eval/*/eval.json")
    report = json.loads(eval_file.read_text())
    assert [(s["persona_id"], s["session_number"]) for s in report["sessions"]] == [("priya_shah", 1)]
    assert {f"{s['persona_id']}/{s['session_number']}": s["status"] for s in report["skipped"]} == {
        key: state for key, state in card.items() if state != "complete"
    }
    lines = evaluated.stderr.splitlines()
    assert (
        "simulator: 5 session(s) not complete, not evaluated (1 damaged, 1 failed, 1 interrupted, 1 missing, "
        "1 pending): listed under skipped in eval.json"
    ) in lines
    assert [line for line in lines if "damaged session record" in line] == [
        f"simulator: {run_dir / 'marcus_thompson' / 'session_01.json'}: damaged session record: "
        "Invalid JSON: key must be a string at line 1 column 3"
    ]
    assert invoke("view", run_dir).exit_code == 0
    assert "· 1 sessions · 5 not complete, not evaluated" in (run_dir / "report.html").read_text()


def test_a_persona_id_that_leads_outside_the_run_is_never_read(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path / "runs", [MARCUS], sessions=1)
    outside = tmp_path / "secret"
    shutil.copytree(run_dir / "marcus_thompson", outside)
    run = json.loads((run_dir / "run.json").read_text())
    run["sessions"]["../../secret"] = run["sessions"]["marcus_thompson"]
    (run_dir / "run.json").write_text(json.dumps(run))
    assert invoke("view", run_dir).exit_code == 0
    page = (run_dir / "report.html").read_text()
    assert sorted(_bodies(page)) == ["marcus_thompson/1"]
    assert "invalid id &#39;../../secret&#39;" in page


def test_repairs_and_origin_flags_are_told_apart(habits: Path) -> None:
    assert invoke("view", habits).exit_code == 0
    page = (habits / "report.html").read_text()
    bodies = _bodies(page)
    run = read_run(habits)
    for session in run.sessions():
        record = session.record
        assert record is not None
        messages = bodies[f"{session.persona_id}/{session.number}"]["messages"]
        for shown, message in zip(messages, record.messages, strict=True):
            assert shown["t"] == message.content
            assert shown.get("r", []) == [f for f in message.flags if f != "template"]
            assert shown.get("o", []) == [f for f in message.flags if f == "template"]
    # The overview counts repairs only; 'template' is listed apart.
    chart = page[
        page.index("<h3>Guard repairs by kind</h3>") : page.index(
            "</svg>", page.index("<h3>Guard repairs by kind</h3>")
        )
    ]
    assert "truncated_continued" in chart and "template" not in chart
    assert 'Not repairs (where a message came from): <span class="flag origin">template</span> ×4' in page


def test_end_phrase_span_is_the_phrase_that_ended_the_session(habits: Path) -> None:
    record = read_run(habits).session("marcus_thompson", 1).record
    assert record is not None and record.termination is not None
    index, start, end = end_phrase_span(record)  # type: ignore[misc]
    assert index == record.termination.message_index
    assert record.messages[index].content[start:end].lower() == "don't hesitate to reach out"


def test_session_k_shows_whether_it_opened_from_k_minus_1s_summary(habits: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(habits, tmp_path / "copy"))
    second = run_dir / "priya_shah" / "session_02.json"
    data = json.loads(second.read_text())
    data["previous_summary"] = "Main topics discussed:\n- something else entirely"
    second.write_text(json.dumps(data))
    assert invoke("view", run_dir, "--out", run_dir / "continuity.html").exit_code == 0
    page = (run_dir / "continuity.html").read_text()
    assert "opened from session 1&#39;s summary" in page
    assert "opening summary differs from session 1&#39;s summary" in page


@pytest.mark.parametrize(
    "text",
    ["</script><script>alert(1)</script>", "<!--<script>", "</SCRIPT >", "a\u2028b & c > d \U0001f600"],
)
def test_packed_bodies_cannot_leave_their_script_block(text: str) -> None:
    encoded = packed({"t": text, text: [text]})
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", encoded)
    assert unpacked(encoded) == {"t": text, text: [text]}


def _table(page: str, kind: str) -> list[tuple[str, ...]]:
    """The body rows of the eval panel's ``judge`` or ``metrics`` table, cell texts unescaped."""
    found = re.search(rf'<table class="num scores {kind}">(.*?)</table>', page, re.S)
    if found is None:
        return []
    rows = re.findall(r"<tr>(.*?)</tr>", found[1], re.S)[1:]
    return [tuple(html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)) for row in rows]


def _eval_rows(page: str) -> list[tuple[str, ...]]:
    """Item rows (title, mean, interval, n) then metric rows, as a reader sees them."""
    items = [(row[0], *row[2:5]) for row in _table(page, "judge")]
    return items + _table(page, "metrics")


def _write_eval(run_dir: Path, data: dict[str, Any]) -> None:
    (run_dir / "eval" / "e1").mkdir(parents=True)
    (run_dir / "eval" / "e1" / "eval.json").write_text(json.dumps(data))


SESSIONS = [
    {"persona_id": "marcus_thompson", "session_number": 1, "messages": 14, "natural_end": True,
     "therapist_question_share": 0.5, "scores": {"ctrs": {"agenda": 4, "feedback": 2}}},
    {"persona_id": "marcus_thompson", "session_number": 2, "messages": 12, "natural_end": False,
     "therapist_question_share": 0.25, "scores": {"ctrs": {"agenda": {"score": 5}, "feedback": None}}},
]  # fmt: skip


def test_eval_scores_per_rubric_item_from_the_summary(tmp_path: Path) -> None:
    """The shape `simulator evaluate` writes: means and intervals under summary.items/metrics."""
    run_dir = offline_run(tmp_path, [MARCUS], sessions=2)
    summary = {
        "sessions": 2,
        "natural_end_share": 0.5,
        "items": {"ctrs": {"agenda": {"label": "Agenda", "mean": 4.5, "ci95": [4.0, 5.0], "n": 2},
                           "feedback": {"label": "Feedback", "mean": 2.0, "ci95": None, "n": 1}}},
        "metrics": {"natural_end_share": {"mean": 0.5, "ci95": [0.0, 1.0], "n": 2},
                    "therapist_question_share": {"mean": 0.375, "ci95": [0.25, 0.5], "n": 2}},
    }  # fmt: skip
    _write_eval(run_dir, {"format": 1, "sessions": SESSIONS, "summary": summary})
    assert invoke("view", run_dir).exit_code == 0
    assert _eval_rows((run_dir / "report.html").read_text()) == [
        ("ctrs · agenda", "4.50", "4.00–5.00", "2"),
        ("ctrs · feedback", "2.00", "—", "1"),
        ("sessions ended naturally", "0.50", "0.00–1.00", "2"),
        ("therapist messages with a question", "0.38", "0.25–0.50", "2"),
    ]


def test_a_judged_evaluation_shows_over_a_newer_metrics_only_one(tmp_path: Path) -> None:
    """Real `simulator evaluate` output: the judged evaluation's rows (scale, mean, interval, n,
    agreement, flags) are on the page even after a later metrics-only evaluation."""
    run_dir = offline_run(tmp_path, [MARCUS], sessions=2)
    with serve(JudgeModel()) as server:
        judged = invoke(
            "evaluate", run_dir, "--backend", "openai", "--base-url", server.base_url, "--judge-model", "judge-x",
            "--rubric", "realism", "--repeats", "2",
        )  # fmt: skip
    assert judged.exit_code == 0, judged.output
    (first,) = (run_dir / "eval").iterdir()
    report = json.loads((first / "eval.json").read_text())
    assert invoke("evaluate", run_dir).exit_code == 0
    newest = next(p.name for p in (run_dir / "eval").iterdir() if p != first)
    assert invoke("view", run_dir).exit_code == 0
    page = (run_dir / "report.html").read_text()
    expected = []
    for item, cell in report["summary"]["items"]["realism"].items():
        alpha = cell["agreement"]["krippendorff_alpha_interval"]
        low, high = cell["ci95"]
        expected.append((
            f"realism · {item}", "judge rating 1-5", f"{cell['mean']:.2f}", f"{low:.2f}–{high:.2f}", str(cell["n"]),
            "—" if alpha is None else f"{alpha:.2f}", "0", "0",
        ))  # fmt: skip
    assert _table(page, "judge") == expected and len(expected) == 4
    assert f'Evaluation <span class="mono">{first.name}</span>' in page
    assert "judge judge-x, 2 repeats" in page
    assert f"1 other evaluation(s) in eval/ not shown; the newest, {newest}, has no judge scores" in page
    metrics = {row[0]: row[1] for row in _table(page, "metrics")}
    assert (
        metrics["sessions ended naturally"]
        == f"{report['summary']['metrics']['natural_end_share']['mean']:.2f}"
    )


def test_eval_scores_are_averaged_from_sessions_when_the_summary_lacks_them(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path, [MARCUS], sessions=2)
    _write_eval(run_dir, {"sessions": SESSIONS, "summary": {"items": "not a mapping"}})
    assert invoke("view", run_dir).exit_code == 0
    assert _eval_rows((run_dir / "report.html").read_text()) == [
        ("ctrs · agenda", "4.50", "—", "2"),
        ("ctrs · feedback", "2.00", "—", "1"),
        ("sessions ended naturally", "0.50", "—", "2"),
        ("therapist messages with a question", "0.38", "—", "2"),
    ]


def test_an_unreadable_eval_is_a_note_not_a_failure(tmp_path: Path) -> None:
    run_dir = offline_run(tmp_path, [MARCUS], sessions=1)
    (run_dir / "eval" / "e1").mkdir(parents=True)
    (run_dir / "eval" / "e1" / "eval.json").write_text("{ not json")
    assert invoke("view", run_dir).exit_code == 0
    assert "e1/eval.json: unreadable" in (run_dir / "report.html").read_text()
    assert summarize_eval("e2", [1, 2]).notes == ["e2/eval.json: not a JSON object"]


@pytest.mark.parametrize("sessions", [5, 2.5, True])
def test_an_eval_whose_sessions_is_not_a_list_still_renders(tmp_path: Path, sessions: object) -> None:
    """Hand-edited or foreign eval.json files reach the page too: odd fields are left out, never a traceback."""
    run_dir = offline_run(tmp_path, [MARCUS], sessions=1)
    (run_dir / "eval" / "e1").mkdir(parents=True)
    data = {"sessions": sessions, "summary": {"metrics": {"natural_end_share": {"mean": 1.0, "n": 1}}}}
    (run_dir / "eval" / "e1" / "eval.json").write_text(json.dumps(data))
    assert invoke("view", run_dir).exit_code == 0
    assert _eval_rows((run_dir / "report.html").read_text()) == [
        ("sessions ended naturally", "1.00", "—", "1")
    ]


def test_open_hands_the_page_to_the_browser(tmp_path: Path) -> None:
    """--open goes through the standard `webbrowser` module, which honours $BROWSER."""
    run_dir = offline_run(tmp_path, [MARCUS], sessions=1)
    opened = tmp_path / "opened.txt"
    browser = f'{sys.executable} -c "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])" {opened} %s'
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "view", str(run_dir), "--open"],
        capture_output=True,
        text=True,
        env={**os.environ, "BROWSER": browser},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert opened.read_text() == (run_dir / "report.html").resolve().as_uri()
