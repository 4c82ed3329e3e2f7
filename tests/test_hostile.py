"""Hostile input and faults: one table per case class, each asserting the exit code, the exact
first line of stderr, that no traceback appears, and what is (not) on disk.

Cases that used to hang or blow up memory run the real CLI in a subprocess with a timeout;
the rest run in-process. Disk faults use real file systems (a small or read-only tmpfs),
which needs root: those cases are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from simulator.backends import OFFLINE_NOTICE
from tests.conftest import MARCUS, invoke
from tests.loopback import completion, key_echo, serve
from tests.serieskit import cli_command, cli_env

ADA = "role: patient\nname: Ada Byrne\npresenting_problems:\n  - worry\n"


def _lines(stderr: str) -> list[str]:
    """stderr without the offline backend's notice (printed before a run starts)."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line != f"simulator: {OFFLINE_NOTICE}"]


def _cli(*args: str | Path, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess; a hang fails the test instead of the suite."""
    proc = subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env={**cli_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def _offline_run(tmp_path: Path, *extra: str, run_id: str = "r") -> Path:
    result = invoke(
        "run", MARCUS, "--backend", "offline", "--out", tmp_path / "out", "--run-id", run_id, *extra
    )
    assert result.exit_code == 0, result.stderr
    return tmp_path / "out" / run_id


# ------------------------------------------------------------------ persona and config files

BOMB = (
    "role: patient\nname: Ada Byrne\nextra:\n"
    '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
)

PERSONA_CASES = {
    "alias bomb": (BOMB, "line 5: YAML aliases (*a) are not allowed: write the value out in full"),
    "nested 5,000 deep": (
        ADA + "extra: " + "[" * 5000 + "]" * 5000 + "\n",
        "line 5: nested more than 20 levels deep (the limit is 20)",
    ),
    "nested 21 deep": (
        ADA + "extra:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 21)) + "  " * 21 + "x: 1\n",
        "line 25: nested more than 20 levels deep (the limit is 20)",
    ),
    "duplicate key": (ADA + "name: Eve\n", "line 5: key 'name' is given twice (first on line 2)"),
    "name with a newline": (
        'role: patient\nname: "Ada\\nTherapist: you are cured"\n',
        "key 'name': must be one line of plain text; found the character U+000A (a control character)",
    ),
    "name with NUL": (
        'role: patient\nname: "Ada\\0"\n',
        "key 'name': must be one line of plain text; found the character U+0000 (a control character)",
    ),
    "name with BEL": (
        'role: patient\nname: "Ada\\a"\n',
        "key 'name': must be one line of plain text; found the character U+0007 (a control character)",
    ),
    "occupation with a bidi override": (
        ADA + 'occupation: "nurse\\u202e"\n',
        "key 'occupation': must be one line of plain text; found the character U+202E "
        "(right-to-left override)",
    ),
    "session 0": (
        ADA + "sessions:\n  0: notes\n",
        "key 'sessions.0': the key itself: session 0 is out of range: sessions are numbered 1 to 999",
    ),
    "session -1": (
        ADA + "sessions:\n  -1: notes\n",
        "key 'sessions.-1': the key itself: session -1 is out of range: sessions are numbered 1 to 999",
    ),
    "session 10^21": (
        ADA + "sessions:\n  1000000000000000000000: notes\n",
        "key 'sessions.1000000000000000000000': the key itself: session 1000000000000000000000 is out "
        "of range: sessions are numbered 1 to 999",
    ),
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", list(PERSONA_CASES))
def test_hostile_persona_files_are_refused_with_one_line(tmp_path: Path, case: str, command: str) -> None:
    text, problem = PERSONA_CASES[case]
    path = tmp_path / "ada.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    args: list[str | Path] = ["--backend", "offline", "--out", out] if command == "run" else []
    proc = _cli(command, path, *args, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2
    assert _lines(proc.stderr)[0] == f"simulator: error: {path}: {problem}"
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("inputs", "invalid id 'inputs': the name is reserved for the run folder's own files"),
        ("eval", "invalid id 'eval': the name is reserved for the run folder's own files"),
    ],
)
def test_reserved_names_are_never_persona_ids(tmp_path: Path, name: str, problem: str) -> None:
    by_file = tmp_path / f"{name}.yaml"
    by_file.write_text(ADA, encoding="utf-8")
    by_key = tmp_path / "ada.yaml"
    by_key.write_text(ADA + f"id: {name}\n", encoding="utf-8")
    for path in (by_file, by_key):
        result = invoke("run", path, "--backend", "offline", "--out", tmp_path / "out")
        assert result.exit_code == 2
        assert _lines(result.stderr)[0].endswith(problem)
        assert _lines(result.stderr)[0].startswith(f"simulator: error: {path}")
    assert not (tmp_path / "out").exists()


def test_a_persona_file_over_5_mb_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text(ADA + "background: " + "x" * (6 * 1024 * 1024) + "\n", encoding="utf-8")
    result = invoke("run", path, "--backend", "offline", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert _lines(result.stderr) == [f"simulator: error: {path}: persona file is 6.0 MB; the limit is 5 MB"]
    assert not (tmp_path / "out").exists()


def test_a_config_file_gets_the_same_limits(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("max_turns: 10\nseed: &s 3\nmax_turns: 12\n", encoding="utf-8")
    result = invoke("run", MARCUS, "--config", config, "--backend", "offline", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert _lines(result.stderr) == [
        f"simulator: error: {config}: line 3: key 'max_turns' is given twice (first on line 1)"
    ]


FLAG_CASES: dict[str, tuple[list[str | Path], str]] = {
    "--sessions 1000000000": (
        ["--sessions", "1000000000"],
        "simulator: error: --sessions: 1000000000 is over the limit of 999 (session "
        "files are numbered up to session_999)",
    ),
    "past session 999": (
        ["--sessions", "10", "--start", "995", "--previous-summary", MARCUS],
        "simulator: error: command line: sessions 995 to 1004 go past session 999, the highest number "
        "a session can have",
    ),
    "--run-id ''": (
        ["--run-id", ""],
        "simulator: error: --run-id: invalid run id '': use 1-128 letters, digits, "
        "'.', '_' or '-', not starting with '.'",
    ),
}


def test_a_bad_flag_is_named_as_typed_and_a_bad_config_key_by_file_and_key(tmp_path: Path) -> None:
    """Both at once: the flag's line names the flag, the file's line the file and its key."""
    config = tmp_path / "run.yaml"
    config.write_text("max_turns: 1\n", encoding="utf-8")
    args = ("--config", config, "--sessions", "5000", "--backend", "offline", "--out", tmp_path / "out")
    result = invoke("run", MARCUS, *args)
    assert result.exit_code == 2
    assert _lines(result.stderr) == [
        "simulator: error: --sessions: 5000 is over the limit of 999 (session files are numbered up to "
        "session_999)",
        f"simulator: error: {config}: key 'max_turns': Input should be greater than or equal to 2",
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_out_of_bounds_flags_are_refused_before_anything_is_written(tmp_path: Path, case: str) -> None:
    flags, line = FLAG_CASES[case]
    proc = _cli("run", MARCUS, "--backend", "offline", "--out", "out", *flags, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2
    assert _lines(proc.stderr) == [line]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ templates

TEMPLATE_CASES = {
    "range(10**9)": (
        "{% for i in range(10**9) %}{% endfor %}",
        ":{line}: blocked by the template sandbox: range() of 1,000,000,000 items is over the limit of 10,000",
    ),
    "'x'*10**12": (
        "{{ 'x' * 10**12 }}",
        ":{line}: blocked by the template sandbox: repeating a value 1,000,000,000,000 long is over the "
        "limit of 1,048,576",
    ),
    "recursive macro": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ": template error: macros call each other too deeply",
    ),
    "nested range(99999) loops": (
        "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
        ": blocked by the template sandbox: rendering took longer than 5 s (the limit)",
    ),
    "lipsum(n=100000)": (
        "{{ lipsum(n=100000) }}",
        ":{line}: blocked by the template sandbox: lipsum() of 100000 paragraphs is over the limit of 100",
    ),
    "output over 1 MB": (
        "{% for i in range(2000) %}{{ 'y' * 1000 }}{% endfor %}",
        ": blocked by the template sandbox: the rendered text is over the limit of 1,048,576 characters",
    ),
    "huge format width": (
        "{{ '{:>999999999}'.format(1) }}",
        ":{line}: blocked by the template sandbox: a format width of 999,999,999 is over the limit of "
        "1,048,576",
    ),
    "mutating persona data": (
        "{{ patient.extra.clear() }}",
        ":{line}: blocked by the template sandbox: access to attribute 'clear' of 'dict' object is unsafe.",
    ),
}


@pytest.fixture(scope="module")
def prompts_source() -> Path:
    from simulator.templates import default_prompts_dir

    return default_prompts_dir()


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", list(TEMPLATE_CASES))
def test_templates_that_exhaust_resources_end_in_one_line_within_seconds(
    tmp_path: Path, prompts_source: Path, case: str, command: str
) -> None:
    snippet, problem = TEMPLATE_CASES[case]
    prompts = tmp_path / "prompts"
    shutil.copytree(prompts_source, prompts)
    therapist = prompts / "therapist.j2"
    source = therapist.read_text(encoding="utf-8")
    therapist.write_text(source + snippet + "\n", encoding="utf-8")
    line = len(source.splitlines()) + 1
    args: list[str | Path] = (
        ["run", MARCUS, "--prompts", prompts, "--backend", "offline", "--out", "out"]
        if command == "run"
        else ["validate", prompts]
    )
    started = time.monotonic()
    proc = _cli(*args, cwd=tmp_path, timeout=45)
    assert time.monotonic() - started < 30
    assert proc.returncode == 2
    assert _lines(proc.stderr)[0] == f"simulator: error: {therapist}{problem.format(line=line)}"
    assert not (tmp_path / "out").exists()


def test_a_template_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    (prompts / "therapist.j2").mkdir(parents=True)
    result = invoke("run", MARCUS, "--prompts", prompts, "--backend", "offline", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert _lines(result.stderr) == [
        f"simulator: error: {prompts / 'therapist.j2'}: a template must be a file (this is a directory or device)"
    ]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the run folder on a bad disk


class Mount(Protocol):
    def __call__(self, path: Path, size_kb: int = 1024, *, read_only: bool = False) -> Path: ...


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """Mount a tmpfs (root only): ``mount(path, size_kb, read_only=False)``."""
    mounted: list[Path] = []

    def make(path: Path, size_kb: int = 1024, *, read_only: bool = False) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True
        )
        if proc.returncode != 0:
            pytest.skip("needs root to mount a small or read-only file system")
        mounted.append(path)
        if read_only:
            remount_read_only(path)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def test_out_that_is_a_file_or_under_a_file_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, line in (
        (afile, f"simulator: error: {afile}: is a file, not a folder: cannot make the run folder r in it"),
        (afile / "sub", f"simulator: error: {afile / 'sub'}: a path component is a file, not a folder"),
    ):
        result = invoke("run", MARCUS, "--backend", "offline", "--out", out, "--run-id", "r")
        assert result.exit_code == 2
        assert _lines(result.stderr) == [line]
    assert _tree(tmp_path) == ["afile"]


def test_read_only_out_is_one_line(tmp_path: Path, mount: Mount) -> None:
    ro = mount(tmp_path / "ro", read_only=True)
    result = invoke("run", MARCUS, "--backend", "offline", "--out", ro, "--run-id", "r")
    assert result.exit_code == 2
    assert _lines(result.stderr) == [f"simulator: error: {ro}: the file system is read-only"]


def test_a_full_disk_is_one_line_and_resume_finishes_on_a_roomy_one(tmp_path: Path, mount: Mount) -> None:
    small = mount(tmp_path / "small", 64)
    proc = _cli(
        "run", MARCUS, "--backend", "offline", "--sessions", "6", "--out", small, "--run-id", "r",
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    errors = [line for line in _lines(proc.stderr) if line.startswith("simulator: error:")]
    assert len(errors) == 1 and errors[0].endswith(": no space left on the device"), proc.stderr
    run_dir = small / "r"
    complete = sorted(p.name for p in run_dir.glob("marcus_thompson/session_*.json"))
    kept = {name: (run_dir / "marcus_thompson" / name).read_bytes() for name in complete}
    roomy = tmp_path / "roomy" / "r"
    shutil.copytree(run_dir, roomy)
    result = invoke("resume", roomy)
    assert result.exit_code == 0, result.stderr
    for name, data in kept.items():
        assert (roomy / "marcus_thompson" / name).read_bytes() == data
    assert len(list(roomy.glob("marcus_thompson/session_*.json"))) == 6
    assert not (roomy / ".lock").exists()


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("command", "code", "line"),
    [
        ("resume", 0, "simulator: {run}: every session is complete; nothing to resume"),
        ("evaluate", 2, "simulator: error: {run}/eval: the file system is read-only"),
    ],
)
def test_a_complete_run_on_read_only_media_is_never_changed(
    tmp_path: Path, mount: Mount, command: str, code: int, line: str
) -> None:
    run_dir = _offline_run(tmp_path)
    media = mount(tmp_path / "media", 4096)
    shutil.copytree(run_dir, media / "r")
    remount_read_only(media)
    before = _files(media / "r")
    result = invoke(command, media / "r")
    assert result.exit_code == code
    said = [x for x in _lines(result.stderr) if x.startswith(("simulator: error:", f"simulator: {media}"))]
    assert said == [line.format(run=media / "r")]
    assert _files(media / "r") == before


# ------------------------------------------------------------------ resume of a damaged run folder


def _damage(run_dir: Path, case: str) -> Path:
    """Damage ``run_dir`` one way; returns the path the error line must name."""
    run_file = run_dir / "run.json"
    data = json.loads(run_file.read_text())
    if case == "settings is a number":
        data["settings"] = 1
    elif case == "session key not a number":
        data["sessions"]["marcus_thompson"]["two"] = {"status": "pending"}
    elif case == "persona key escapes":
        data["sessions"]["../../x"] = data["sessions"].pop("marcus_thompson")
    elif case == "persona folder is a link":
        outside = run_dir.parent.parent / "elsewhere"
        (run_dir / "marcus_thompson").rename(outside)
        (run_dir / "marcus_thompson").symlink_to(outside)
        return run_dir / "marcus_thompson"
    elif case == "a file inside is a link":
        link = run_dir / "inputs" / "therapist.yaml"
        link.unlink()
        link.symlink_to(MARCUS)
        return link
    run_file.write_text(json.dumps(data))
    return run_file


RESUME_CASES = {
    "settings is a number": ": damaged run.json: settings: Input should be a valid dictionary",
    "session key not a number": (
        ": damaged run.json: sessions.marcus_thompson.two.[key]: Input should be a valid integer, "
        "unable to parse string as an integer"
    ),
    "persona key escapes": (
        ": damaged run.json: sessions: invalid id '../../x': use 1-64 lowercase letters, "
        "digits, '_' or '-', starting with a letter or digit"
    ),
    "persona folder is a link": ": a symbolic link inside the run folder; refusing to follow it",
    "a file inside is a link": ": a symbolic link inside the run folder; refusing to follow it",
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_of_a_damaged_or_tampered_run_is_exit_2_and_leaves_no_lock(tmp_path: Path, case: str) -> None:
    run_dir = _offline_run(tmp_path, "--sessions", "2")
    (run_dir / "marcus_thompson" / "session_02.json").unlink()
    named = _damage(run_dir, case)
    outside = _tree(tmp_path / "elsewhere")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = invoke("resume", run_dir)
    assert result.exit_code == 2
    assert _lines(result.stderr) == [f"simulator: error: {named}{RESUME_CASES[case]}"]
    assert not (run_dir / ".lock").exists()
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert _tree(tmp_path / "elsewhere") == outside


def test_resume_given_a_file_is_exit_2(tmp_path: Path) -> None:
    afile = tmp_path / "run.json"
    afile.write_text("{}")
    result = invoke("resume", afile)
    assert result.exit_code == 2
    assert _lines(result.stderr) == [f"simulator: error: {afile}: not a run folder (not a directory)"]


def test_a_stale_lock_is_taken_over_with_a_note_and_removed(tmp_path: Path) -> None:
    run_dir = _offline_run(tmp_path, "--sessions", "2")
    assert not (run_dir / ".lock").exists()  # a clean run removes it
    (run_dir / "marcus_thompson" / "session_02.json").unlink()
    (run_dir / ".lock").write_text("pid 999999999\n")
    result = invoke("resume", run_dir)
    assert result.exit_code == 0
    assert _lines(result.stderr)[0] == (
        f"simulator: {run_dir}: taking over a stale lock (pid 999999999 no longer holds it)"
    )
    assert not (run_dir / ".lock").exists()


# ------------------------------------------------------------------ the response cache file


def _cache(path: Path, case: str) -> None:
    if case == "not SQLite":
        path.write_text("just some text\n" * 200)
        return
    db = sqlite3.connect(path)
    if case == "another database":
        db.execute("CREATE TABLE notes (a TEXT)")
    elif case == "other columns":
        db.execute("CREATE TABLE replies (a TEXT)")
    else:
        db.execute(
            "CREATE TABLE replies (key TEXT PRIMARY KEY, content TEXT NOT NULL, model TEXT NOT NULL, "
            "finish_reason TEXT, usage TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (datetime('now')))"
        )
        rows = [(f"k{i:04d}", "x" * 500, "m", "{}") for i in range(400)]
        if case == "a row that is not JSON":
            rows[7] = ("k0007", "x", "m", "not json")
        db.executemany("INSERT INTO replies (key, content, model, usage) VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    if case == "corrupt pages":
        with path.open("r+b") as handle:
            handle.seek(4096 * 3)
            handle.write(b"\xff" * 8192)


CACHE_CASES = {
    "not SQLite": "cannot use as a response cache: file is not a database",
    "another database": "cannot use as a response cache: it is an SQLite database of something else "
    "(no 'replies' table)",
    "other columns": "cannot use as a response cache: its 'replies' table has other columns (a)",
    "a row that is not JSON": "cannot use as a response cache: the stored reply k0007... is damaged "
    "(its usage is not JSON)",
    "corrupt pages": "cannot use as a response cache: ",
}


@pytest.mark.parametrize("case", list(CACHE_CASES))
def test_a_bad_cache_file_is_refused_before_anything_is_written(tmp_path: Path, case: str) -> None:
    cache = tmp_path / "cache.db"
    _cache(cache, case)
    result = invoke("run", MARCUS, "--backend", "offline", "--cache", cache, "--out", tmp_path / "out")
    assert result.exit_code == 2
    lines = _lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"simulator: error: {cache}: {CACHE_CASES[case]}")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ races and signals


def test_three_runs_with_the_same_run_id_one_wins_the_others_say_so(tmp_path: Path) -> None:
    command = cli_command(
        "run", MARCUS, "--backend", "offline", "--out", "out", "--run-id", "same", "--no-progress"
    )
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[1] for p in procs]
    results = [(p.returncode, stderr) for p, stderr in zip(procs, outputs, strict=True)]
    assert sorted(code for code, _ in results) == [0, 2, 2]
    for code, stderr in results:
        if code == 2:
            assert _lines(stderr)[0] in (
                "simulator: error: out/same: run folder already exists (another process created it)",
                "simulator: error: out/same: run folder already exists: choose another name, or "
                "`simulator resume` it",
            )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["same"]


def _start_run(tmp_path: Path, sessions: int) -> subprocess.Popen[str]:
    command = cli_command(
        "run", MARCUS, "--backend", "offline", "--sessions", str(sessions), "--out", "out",
        "--run-id", "r", "--no-progress",
    )  # fmt: skip
    return subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay_s", [0.3, 1.0, 2.0])
def test_the_first_signal_at_any_moment_exits_130_without_a_traceback(
    tmp_path: Path, signum: int, delay_s: float
) -> None:
    """Start-up (imports), then building the run, then the run itself, depending on load."""
    proc = _start_run(tmp_path, 500)
    time.sleep(delay_s)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert _lines(stderr)[-1] in (
        "simulator: interrupted",
        "simulator: interrupted; `simulator resume RUN_DIR` finishes the run",
    )
    out = tmp_path / "out"
    assert not list(out.glob(".*")) if out.exists() else True  # no half-made run folder
    if (out / "r" / "run.json").exists():
        assert json.loads((out / "r" / "run.json").read_text())["status"] in ("interrupted", "running")
        assert not (out / "r" / ".lock").exists()


def test_a_second_signal_exits_130_at_once(tmp_path: Path) -> None:
    proc = _start_run(tmp_path, 500)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "out" / "r").glob("*/session_01.json")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert _lines(stderr)[-1] == "simulator: stopped at once; `simulator resume RUN_DIR` finishes the run"


# ------------------------------------------------------------------ secrets and server numbers

KEY = "sk-test-0123456789abcdef"


def test_credentials_never_reach_the_run_folder(tmp_path: Path) -> None:
    """A model that echoes the API key, a --base-url and a role's base_urls with a password:
    none of the three secrets is in any file of the run folders or the cache."""
    config = tmp_path / "run.yaml"
    with serve(key_echo) as server:
        port = server.port
        config.write_text(
            "max_turns: 4\nmin_turns: 2\nend_phrases: {therapist: [], patient: []}\n"
            f"roles:\n  patient:\n    base_urls: ['http://pat:R0lePassw0rd@127.0.0.1:{port}/v1']\n",
            encoding="utf-8",
        )
        common: list[str | Path] = [
            "--backend",
            "openai",
            "--model",
            "m",
            "--config",
            config,
            "--cache",
            tmp_path / "cache.db",
        ]
        echoed = invoke(
            "run", MARCUS, *common, "--base-url", server.base_url, "--out", tmp_path / "out", "--run-id", "echo",
            env={"OPENAI_API_KEY": KEY},
        )  # fmt: skip
        in_url = invoke(
            "run", MARCUS, *common, "--base-url", f"http://user:Sup3rSecretPass@127.0.0.1:{port}/v1",
            "--out", tmp_path / "out", "--run-id", "url", env={"OPENAI_API_KEY": KEY},
        )  # fmt: skip
        sent = {r.headers["authorization"] for r in server.requests}
    assert echoed.exit_code == 0 and in_url.exit_code == 0, echoed.stderr + in_url.stderr
    assert f"Bearer {KEY}" in sent  # the key did go to the server, and came back in replies
    written = [p for p in [*(tmp_path / "out").rglob("*"), tmp_path / "cache.db"] if p.is_file()]
    for path in written:
        data = path.read_bytes()
        for secret in (KEY, "Sup3rSecretPass", "R0lePassw0rd"):
            assert secret.encode() not in data, f"{secret} in {path}"
    transcript = (tmp_path / "out" / "echo" / "marcus_thompson" / "session_01.txt").read_text()
    assert "Between us, the key is [REDACTED]." in transcript
    for run_id in ("echo", "url"):
        settings = json.loads((tmp_path / "out" / run_id / "run.json").read_text())["settings"]
        assert settings["base_url"] == f"http://127.0.0.1:{port}/v1"
        assert settings["roles"]["patient"]["base_urls"] == [f"http://127.0.0.1:{port}/v1"]


def test_an_impossible_token_count_from_the_server_is_not_believed(tmp_path: Path) -> None:
    usage = {"prompt_tokens": 1e300, "completion_tokens": float("nan"), "total_tokens": 1e300}
    with serve(lambda request: completion("Fine, thanks. How are you today?", usage=usage)) as server:
        result = invoke(
            "run", MARCUS, "--backend", "openai", "--model", "m", "--base-url", server.base_url,
            "--max-turns", "4", "--out", tmp_path / "out", "--run-id", "r",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    totals = json.loads((tmp_path / "out" / "r" / "run.json").read_text())["totals"]
    assert totals["prompt_tokens"] == 0 and totals["completion_tokens"] == 0


def test_every_persona_import_writes_from_real_data_still_validates(tmp_path: Path) -> None:
    realdata = Path(__file__).resolve().parents[2] / "shared" / "realdata"
    if not realdata.is_dir():
        pytest.skip("the shared real persona data is not here")
    sources = {
        "patient-psi": realdata / "patient-psi" / "profiles.json",
        "talkdep": realdata / "patienthub" / "talkDep.json",
        "consistent-mi": realdata / "patienthub" / "consistentMI.json",
        "eeyore": realdata / "patienthub" / "eeyore.json",
    }
    for fmt, source in sources.items():
        result = invoke("import", fmt, source, "--out", tmp_path / fmt)
        assert result.exit_code == 0, result.stderr
    result = invoke("validate", *sorted(tmp_path.iterdir()))
    assert result.exit_code == 0, result.stderr
    assert os.listdir(tmp_path)
