"""Checking the judge's evidence: every quote must be a verbatim substring of the material it
judged, up to whitespace, and long enough to point at something. A judge that cites words nobody
said, or a word everybody said ("I"), is a judge not to trust."""

from __future__ import annotations

QUOTE_MARKS = "\"'“”‘’«»`"
"""Stripped from a quote's ends: judges wrap quotes in them; they are not part of the words."""
MIN_QUOTE_WORDS = 3
MIN_QUOTE_CHARS = 12
"""A quote supports a score when it has at least this many words or characters (after
normalising): "I" or "yes" occurs in nearly any session, so finding it proves nothing."""


def normalise(text: str) -> str:
    """Whitespace runs become one space (line breaks, indentation and doubled spaces alike)."""
    return " ".join(text.split())


class Haystack:
    """The material a judgment may quote from, normalised once."""

    def __init__(self, text: str) -> None:
        self.text = normalise(text)

    def contains(self, quote: str) -> bool:
        """True when ``quote`` (whitespace-normalised, outer quote marks removed) occurs
        verbatim and is long enough to count (:data:`MIN_QUOTE_WORDS`, :data:`MIN_QUOTE_CHARS`)."""
        needle = normalise(quote).strip(QUOTE_MARKS + " ")
        long_enough = len(needle.split()) >= MIN_QUOTE_WORDS or len(needle) >= MIN_QUOTE_CHARS
        return long_enough and needle in self.text
