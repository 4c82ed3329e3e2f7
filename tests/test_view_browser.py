"""`simulator view` in a real headless Chromium: the DOM after the page's script ran, the
filters, no console errors, and hostile strings that must stay text. Screenshots go to
test-artifacts/ (see tests/browser.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.reader import read_run
from simulator.summary import SUMMARY_SECTIONS, parse_sections
from tests.browser import browser, console_errors, screenshot
from tests.conftest import MARCUS, invoke
from tests.viewkit import MARCUS_PRIYA, expected_sessions, habits_run, mark_unfinished, offline_run

__all__ = ["browser"]

TRAP = (
    "window.__pwned = 0; window.__alerts = [];"
    "window.alert = window.confirm = window.prompt = function (m) { window.__alerts.push(String(m)); };"
)
"""Installed before any page script runs: anything injected that runs leaves a trace here."""

HOSTILE = (
    "Eve <script>window.__pwned=1;alert('script')</script> </textarea><img src=x onerror=\"window.__pwned=2;alert(2)\">"
    ' </script><script>window.__pwned=3;alert(3)</script> <a href="javascript:window.__pwned=4">x</a>'
    " javascript:alert(5) \"double\" 'single' <!-- {{ 7*7 }} &amp;"
)


def _load(driver: Any, page: Path, fragment: str = "") -> None:
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TRAP})
    driver.get(page.resolve().as_uri() + fragment)
    assert driver.execute_script("return document.documentElement.dataset.ready") == "1"


def _visible(driver: Any, selector: str) -> list[str]:
    keys: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(e => e.offsetParent !== null)"
        ".map(e => e.dataset.session)",
        selector,
    )
    return keys


def _open_all(driver: Any) -> None:
    for summary in driver.find_elements("css selector", "details.session > summary"):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
        summary.click()
    _wait(
        driver,
        lambda d: d.execute_script("return document.querySelectorAll('.body[data-empty]').length") == 0,
    )


def _choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_value(value)


def _wait(driver: Any, condition: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 5).until(condition)


def _count_is(driver: Any, text: str) -> None:
    _wait(driver, lambda d: d.find_element("id", "f-count").text == text)


@pytest.fixture(scope="module")
def run_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run_dir = habits_run(tmp_path_factory.mktemp("browser"), MARCUS_PRIYA, sessions=2)
    mark_unfinished(run_dir, "priya_shah", 2)
    evaluated = invoke("evaluate", run_dir)  # model-free metrics: the overview's evaluation panel
    assert evaluated.exit_code == 0, evaluated.output
    result = invoke("view", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir, run_dir / "report.html"


def test_sessions_repairs_endings_and_summaries_in_the_dom(browser: Any, run_page: tuple[Path, Path]) -> None:
    run_dir, page = run_page
    expected = expected_sessions(run_dir)
    browser.set_window_size(1200, 1500)
    _load(browser, page)
    screenshot(browser, "view-overview")
    keys = sorted(expected)
    assert (
        sorted(e.get_attribute("data-session") for e in browser.find_elements("css selector", "a.card"))
        == keys
    )
    assert (
        sorted(
            e.get_attribute("data-session") for e in browser.find_elements("css selector", "details.session")
        )
        == keys
    )
    assert (
        browser.find_element("css selector", 'a.card[data-session="priya_shah/2"] .badge').text
        == "INTERRUPTED"
    )
    panel = browser.find_element("id", "eval")
    assert panel.is_displayed() and "3 sessions · 1 not complete, not evaluated" in panel.text
    metrics = browser.find_elements("css selector", "#eval table.metrics tr")
    assert metrics[1].text.startswith("sessions ended naturally") and len(metrics) == 1 + 9
    assert "No judge scores in this evaluation" in panel.text
    # Bodies are laid out only when opened.
    assert browser.execute_script("return document.querySelectorAll('.msg').length") == 0
    _open_all(browser)
    run = read_run(run_dir)
    for key, want in expected.items():
        view = f'details.session[data-session="{key}"]'
        repaired = {
            int(m.get_attribute("data-index")): [
                f.text for f in m.find_elements("css selector", ".flag.repair")
            ]
            for m in browser.find_elements("css selector", f"{view} .msg.repaired")
        }
        assert repaired == want["repaired"], key
        origin = browser.find_elements("css selector", f"{view} .msg:not(.repaired) .flag.origin")
        assert [o.text for o in origin] == ["template"] * len(want["origin"])
        mark = browser.find_element(
            "css selector", f'{view} .msg.ended[data-index="{want["ended_by"]}"] mark.end-phrase'
        )
        assert mark.text.lower() == "don't hesitate to reach out"
        persona, number = key.split("/")
        record = run.session(persona, int(number)).record
        assert record is not None
        headings = [h.text for h in browser.find_elements("css selector", f"{view} .summary.final h5")]
        assert headings == list(SUMMARY_SECTIONS)
        previous = browser.find_elements("css selector", f"{view} .opening .summary.prev li")
        assert [li.text for li in previous] == [
            b for bs in parse_sections(record.previous_summary).values() for b in bs
        ]
        if number == "1":
            assert (
                "no previous summary"
                in browser.find_element("css selector", f"{view} .opening .summary.prev").text
            )
    total_repaired = sum(len(w["repaired"]) for w in expected.values())
    assert (
        total_repaired == 12 and len(browser.find_elements("css selector", ".msg.repaired")) == total_repaired
    )
    browser.set_window_size(1200, 1600)
    browser.get(page.resolve().as_uri() + "#s-marcus_thompson-2")
    _wait(browser, lambda d: d.find_elements("css selector", "#s-marcus_thompson-2 .msg"))
    browser.execute_script("document.getElementById('s-marcus_thompson-2').scrollIntoView({block: 'start'})")
    screenshot(browser, "view-session")
    # On a phone-wide window the page reflows to one column instead of scrolling sideways.
    browser.set_window_size(480, 900)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    browser.set_window_size(1280, 900)
    assert console_errors(browser) == []


def test_filters_by_persona_reason_repair_and_text(browser: Any, run_page: tuple[Path, Path]) -> None:
    run_dir, page = run_page
    expected = expected_sessions(run_dir)
    _load(browser, page)
    _count_is(browser, "4 of 4 sessions")
    _choose(browser, "f-repair", "truncated_trimmed")
    _count_is(browser, "2 of 4 sessions")
    with_trim = sorted(k for k, w in expected.items() if "truncated_trimmed" in w["repairs"])
    assert _visible(browser, "a.card") == with_trim == ["marcus_thompson/1", "marcus_thompson/2"]
    assert _visible(browser, "details.session") == with_trim
    _choose(browser, "f-repair", "")
    _choose(browser, "f-persona", "priya_shah")
    _count_is(browser, "2 of 4 sessions")
    assert _visible(browser, "a.card") == ["priya_shah/1", "priya_shah/2"]
    assert not browser.find_element("css selector", 'article[data-persona="marcus_thompson"]').is_displayed()
    _choose(browser, "f-persona", "")
    _choose(browser, "f-reason", "Natural Session End")
    _count_is(
        browser, f"{sum(w['reason'] == 'Natural Session End' for w in expected.values())} of 4 sessions"
    )
    browser.find_element("id", "f-reset").click()
    _count_is(browser, "4 of 4 sessions")
    # Free text, case-insensitive, over messages (only Marcus's openings name him in full) ...
    browser.find_element("id", "f-text").send_keys("THOMPSON")
    _count_is(browser, "2 of 4 sessions")
    assert _visible(browser, "a.card") == ["marcus_thompson/1", "marcus_thompson/2"]
    browser.find_element(
        "css selector", 'details.session[data-session="marcus_thompson/2"] > summary'
    ).click()
    _wait(
        browser,
        lambda d: d.find_elements("css selector", 'details[data-session="marcus_thompson/2"] mark.hit'),
    )
    hits = browser.find_elements("css selector", 'details.session[data-session="marcus_thompson/2"] mark.hit')
    assert [h.text for h in hits] == ["Thompson"]
    # ... and over summaries.
    browser.find_element("id", "f-text").clear()
    browser.find_element("id", "f-text").send_keys("session 2: marking late")
    _wait(browser, lambda d: _visible(d, "a.card") == ["marcus_thompson/2", "priya_shah/2"])
    _count_is(browser, "2 of 4 sessions")
    browser.find_element("id", "f-text").send_keys(" that nobody said")
    _count_is(browser, "0 of 4 sessions")
    browser.find_element("id", "f-reset").click()
    _count_is(browser, "4 of 4 sessions")
    assert console_errors(browser) == []


def _hostile_run(tmp_path: Path) -> Path:
    persona = yaml.safe_load(MARCUS.read_text())
    persona["name"] = HOSTILE
    persona["id"] = "eve"
    persona["presenting_problems"] = [HOSTILE, *persona["presenting_problems"]]
    path = tmp_path / "eve.yaml"
    path.write_text(yaml.safe_dump(persona))
    return offline_run(tmp_path, [path], sessions=2, run_id="hostile")


@pytest.mark.parametrize("policy", ["with the page's CSP", "with the CSP removed"])
def test_hostile_strings_stay_text(browser: Any, tmp_path: Path, policy: str) -> None:
    run_dir = _hostile_run(tmp_path)
    assert invoke("view", run_dir).exit_code == 0
    page = run_dir / "report.html"
    if policy == "with the CSP removed":
        # Escaping alone must hold: the policy is a second wall, not the first.
        html = page.read_text()
        start = html.index('<meta http-equiv="Content-Security-Policy"')
        page.write_text(html[:start] + html[html.index(">", start) + 1 :])
    record = read_run(run_dir).session("eve", 1).record
    assert record is not None and HOSTILE in record.messages[0].content
    _load(browser, page)
    _open_all(browser)
    browser.find_element("id", "f-text").send_keys("</script>")
    _count_is(browser, "2 of 2 sessions")
    _choose(browser, "f-persona", "eve")
    assert browser.execute_script("return [window.__pwned, window.__alerts]") == [0, []]
    # The strings are on the page as text, every character of them.
    assert HOSTILE in browser.find_element("css selector", 'article[data-persona="eve"] > h3').text
    opening = browser.find_element(
        "css selector", 'details.session[data-session="eve/1"] .msg[data-index="0"] .text'
    )
    assert HOSTILE in opening.get_attribute("textContent")
    assert "{{ 7*7 }}" in opening.get_attribute("textContent")
    # Nothing they spell became an element or an attribute.
    injected = browser.execute_script(
        "return [document.querySelectorAll('img, iframe, textarea, a[href^=\"javascript\"]').length,"
        " document.scripts.length, [...document.querySelectorAll('*')].filter("
        "e => [...e.attributes].some(a => a.name.startsWith('on'))).length]"
    )
    assert injected == [0, 1 + 2, 0]  # the page's script and one JSON block per session
    assert console_errors(browser) == []
    shutil.rmtree(run_dir)
