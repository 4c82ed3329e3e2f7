"""The summary attempts that close a session: ask the summarizer, clean the answer, ask once
more (``summary_retries``) when sections are missing, and keep the most complete answer.

The session loop hands in its own way of getting a whole reply (continued while cut at the
token limit), so this module knows the summary's rules and nothing of requests or records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from simulator.message_layout import Prompt
from simulator.protocol import ChatReply, Role
from simulator.records import TokenCounts
from simulator.summary import SUMMARY_SECTIONS, SummaryCheck, clean_summary
from simulator.text import trim_to_last_sentence

CompleteReply = Callable[[Role, Prompt, str, TokenCounts], Awaitable[tuple[ChatReply, int]]]
"""``(role, prompt, purpose, usage) -> (reply, continuations)``: the loop's whole-reply call."""


def _drop_last_line(text: str) -> str:
    """A cut summary without its unfinished last line, so it ends at its last complete bullet
    (a one-line reply keeps its complete sentences)."""
    body = text.strip()
    return body.rsplit("\n", 1)[0] if "\n" in body else trim_to_last_sentence(body) or ""


async def write_summary(
    complete: CompleteReply, base: Prompt, retries: int, retry_note: str
) -> tuple[str | None, list[str]]:
    """The summary of the conversation in ``base`` and its flags (``summary_*``)."""
    prompt = base
    best: tuple[SummaryCheck, list[str]] | None = None
    regenerations: list[str] = []
    for attempt in range(retries + 1):
        if attempt:
            regenerations.append("summary_regenerated")
        usage = TokenCounts()
        purpose = "summary" if attempt == 0 else "regeneration"
        reply, continuations = await complete("summarizer", prompt, purpose, usage)
        text = reply.content
        flags = ["summary_truncated_continued"] if continuations else []
        if reply.finish_reason == "length" and text.strip():
            text = _drop_last_line(text)  # the line being written when it was cut
            flags.append("summary_truncated_trimmed")
        checked = clean_summary(text)
        flags.extend(checked.flags)
        if best is None or len(checked.missing) < len(best[0].missing):
            best = (checked, flags)
        if checked.ok:
            break
        missing = ", ".join(checked.missing)
        prompt = base.plus(
            ("assistant", reply.content.strip() or "(no summary)"),
            ("user", retry_note.replace("{missing}", missing)),
        )
    assert best is not None
    checked, flags = best
    summary = checked.text
    if not checked.ok and len(checked.missing) == len(SUMMARY_SECTIONS):
        # No section was recognised: keep the prose only up to its last whole sentence.
        summary = trim_to_last_sentence(summary) or ""
        if summary != checked.text:
            flags = [*flags, "summary_truncated_trimmed"]
    summary_flags = [*regenerations, *dict.fromkeys(flags)]
    if not checked.ok:
        summary_flags.append("summary_incomplete")
    return summary or None, summary_flags
