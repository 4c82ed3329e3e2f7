"""Checking the judge's evidence: every quote must be a verbatim substring of the material it
judged, up to whitespace. A judge that cites words nobody said is a judge not to trust."""

from __future__ import annotations

QUOTE_MARKS = "\"'“”‘’«»`"
"""Stripped from a quote's ends: judges wrap quotes in them; they are not part of the words."""


def normalise(text: str) -> str:
    """Whitespace runs become one space (line breaks, indentation and doubled spaces alike)."""
    return " ".join(text.split())


class Haystack:
    """The material a judgment may quote from, normalised once."""

    def __init__(self, text: str) -> None:
        self.text = normalise(text)

    def contains(self, quote: str) -> bool:
        """True when ``quote`` (whitespace-normalised, outer quote marks removed) occurs
        verbatim; an empty quote is never found."""
        needle = normalise(quote).strip(QUOTE_MARKS + " ")
        return bool(needle) and needle in self.text
