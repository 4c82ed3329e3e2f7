"""User regexes (end phrases) checked once and run on model text without ever hanging.

Patterns are compiled with the ``regex`` module, whose matches take a timeout, never with plain
``re`` (a backtracking match in ``re`` cannot be interrupted, not even by Ctrl-C). A pattern is
refused before any run when it does not compile, matches the empty string (it would end every
session), or can backtrack catastrophically: a repetition nested in a repetition ("(a+)+",
"(\\w+\\s?)+", "(.*a){3}"), a repetition over alternatives that can start with the same
character ("(.|\\w)+", "(a|ab)*"), or a bounded test match on adversarial strings that runs out
of time. Model text is matched under :data:`MATCH_TIMEOUT_S`; a match that still runs out is
logged and counts as no match, so a session goes on rather than hangs.
"""

from __future__ import annotations

import logging
import re
import re._constants as sre_c  # type: ignore[import-not-found]  # the stdlib parser, unstubbed
import re._parser as sre_parse  # type: ignore[import-not-found]
import string
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, TypeAlias

import regex

__all__ = ["MATCH_TIMEOUT_S", "Pattern", "UnsafePattern", "compile_safe", "search"]

log = logging.getLogger(__name__)

Pattern: TypeAlias = "regex.Pattern[str]"

MATCH_TIMEOUT_S = 0.25
"""Wall-clock limit of one end-phrase match on one message."""
PROBE_TIMEOUT_S = 0.2
"""Limit of one test match on an adversarial string while checking a pattern (twice, so a
busy machine cannot fail a safe one); safe patterns take microseconds."""
_PROBE_LENGTH = 500

_ALPHABET = string.printable + "éÉß’“”—–\u00a0\u2028ä😊"
_CATEGORY_RES = {
    sre_c.CATEGORY_DIGIT: re.compile(r"\d"),
    sre_c.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    sre_c.CATEGORY_SPACE: re.compile(r"\s"),
    sre_c.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    sre_c.CATEGORY_WORD: re.compile(r"\w"),
    sre_c.CATEGORY_NOT_WORD: re.compile(r"\W"),
}
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", sre_c.MAX_REPEAT))
_ZERO_WIDTH = (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT)


class UnsafePattern(ValueError):
    """A pattern refused before use; the message names the pattern and the reason."""


def compile_safe(pattern: str) -> Pattern:
    """Compile a user pattern case-insensitively, refusing one that is invalid or unsafe."""
    return _compile_safe(pattern)


@lru_cache(maxsize=512)
def _compile_safe(pattern: str) -> Pattern:
    if not isinstance(pattern, str):
        raise UnsafePattern(f"end phrase {pattern!r} is not a string")
    try:
        compiled = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    except (regex.error, ValueError, TypeError) as err:
        raise UnsafePattern(f"invalid end phrase '{pattern}': {err}") from None
    if compiled.search("") is not None:
        raise UnsafePattern(
            f"invalid end phrase '{pattern}': it matches the empty string, so every message would end the session"
        )
    reason = _structural_risk(pattern) or _probe(compiled)
    if reason:
        raise UnsafePattern(f"unsafe end phrase '{pattern}': {reason}")
    return compiled


def search(pattern: Pattern, text: str) -> regex.Match[str] | None:
    """``pattern.search(text)`` under :data:`MATCH_TIMEOUT_S`; a timeout is logged, no match."""
    try:
        return pattern.search(text, timeout=MATCH_TIMEOUT_S)
    except TimeoutError:
        log.warning(
            "end phrase %r timed out on a %d-character message; not counted", pattern.pattern, len(text)
        )
        return None


# --------------------------------------------------------------------------------------------
# The structural check: nested or ambiguous repetition
# --------------------------------------------------------------------------------------------


def _structural_risk(pattern: str) -> str | None:
    """Why ``pattern`` can backtrack catastrophically, judged from its parse tree; None if not."""
    try:
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
    except (re.error, ValueError, TypeError, OverflowError, RecursionError):
        return None  # syntax only the regex module knows: the probe still runs
    return _risk(list(parsed), repeated=False)


def _risk(items: list[tuple[Any, Any]], *, repeated: bool) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            _low, high, item = av
            many = high == sre_c.MAXREPEAT or high > 1
            if repeated and high == sre_c.MAXREPEAT:
                return "a repetition inside a repetition can backtrack catastrophically; make the inner one bounded"
            if many:
                branches = _top_branches(list(item))
                if branches and _overlap(branches):
                    return (
                        "a repetition over alternatives that can start with the same character "
                        "can backtrack catastrophically; make the alternatives distinct"
                    )
            found = _risk(list(item), repeated=repeated or many)
            if found:
                return found
        elif op is sre_c.SUBPATTERN:
            found = _risk(list(av[-1]), repeated=repeated)
            if found:
                return found
        elif op is sre_c.BRANCH:
            for branch in av[1]:
                found = _risk(list(branch), repeated=repeated)
                if found:
                    return found
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            found = _risk(list(av[1]), repeated=repeated)
            if found:
                return found
        elif op is getattr(sre_c, "ATOMIC_GROUP", None):
            found = _risk(list(av), repeated=repeated)
            if found:
                return found
    return None


def _top_branches(items: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]]:
    """The alternatives a repeated item starts with, looking through groups."""
    while len(items) == 1 and items[0][0] is sre_c.SUBPATTERN:
        items = list(items[0][1][-1])
    if items and items[0][0] is sre_c.BRANCH:
        return [list(branch) for branch in items[0][1][1]]
    return []


def _overlap(branches: list[list[tuple[Any, Any]]]) -> bool:
    seen: set[str] = set()
    for branch in branches:
        first, _ = _first(branch)
        if seen & first:
            return True
        seen |= first
    return False


def _first(items: Iterable[tuple[Any, Any]]) -> tuple[set[str], bool]:
    """Sample characters a sequence can start with, and whether it can match nothing."""
    chars: set[str] = set()
    for op, av in items:
        first, nullable = _first_of(op, av)
        chars |= first
        if not nullable:
            return chars, False
    return chars, True


def _first_of(op: Any, av: Any) -> tuple[set[str], bool]:
    if op is sre_c.LITERAL:
        return {c for c in _ALPHABET if c.lower() == chr(av).lower()} or {chr(av)}, False
    if op is sre_c.NOT_LITERAL:
        return {c for c in _ALPHABET if c.lower() != chr(av).lower()}, False
    if op is sre_c.ANY:
        return set(_ALPHABET) - {"\n"}, False
    if op is sre_c.IN:
        return {c for c in _ALPHABET if _in_set(c, av)}, False
    if op in _REPEATS:
        first, nullable = _first(av[2])
        return first, nullable or av[0] == 0
    if op is sre_c.SUBPATTERN:
        return _first(av[-1])
    if op is sre_c.BRANCH:
        chars: set[str] = set()
        nullable = False
        for branch in av[1]:
            first, empty = _first(branch)
            chars |= first
            nullable = nullable or empty
        return chars, nullable
    if op in _ZERO_WIDTH:
        return set(), True
    return set(_ALPHABET), False  # back-references and the rest: assume anything


def _in_set(char: str, items: list[tuple[Any, Any]]) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            hit = hit or char.lower() == chr(av).lower()
        elif op is sre_c.RANGE:
            low, high = av
            hit = hit or any(low <= ord(c) <= high for c in (char, char.lower(), char.upper()))
        elif op is sre_c.CATEGORY:
            check = _CATEGORY_RES.get(av)
            hit = hit or check is None or check.match(char) is not None
    return hit != negate


# --------------------------------------------------------------------------------------------
# The probe: a bounded test match on adversarial strings
# --------------------------------------------------------------------------------------------


def _probes(pattern: str) -> list[str]:
    """Long runs of the pattern's own characters and of common classes, each followed by a
    character that makes the match fail late: the inputs that make backtracking explode."""
    chars = dict.fromkeys([c for c in pattern.lower() if c.isalnum() or c in " '-.,"] + list("a1 _.\n"))
    runs = [c * _PROBE_LENGTH for c in chars]
    runs += ["word " * (_PROBE_LENGTH // 5), "ab" * (_PROBE_LENGTH // 2), "a " * (_PROBE_LENGTH // 2)]
    return [run + tail for run in runs for tail in ("\x00", "!")]


def _probe(compiled: Pattern) -> str | None:
    for probe in _probes(compiled.pattern):
        for attempt in range(2):
            try:
                compiled.search(probe, timeout=PROBE_TIMEOUT_S)
                break
            except TimeoutError:
                if attempt:
                    return (
                        f"a test match on a {len(probe)}-character string did not finish "
                        f"in {PROBE_TIMEOUT_S} s"
                    )
    return None
