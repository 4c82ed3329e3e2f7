"""Word lists the offline backend's grammar reads (see ``voice.py``): small, closed, English."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ADVERBS = _words(
    "really just never always also still often usually sometimes only even actually probably almost "
    "already barely rarely then mostly generally truly finally hardly"
)
"""Adverbs that may stand between a subject and its verb ("she really needs")."""

NOT_PRESENT = _words(
    "can could will would should might must may shall ought was were had did said found felt went got "
    "kept made took thought knew came saw told left ate fell forgot began became brought bought "
    "caught chose drove gave grew heard held hid hurt lost meant met paid put ran read sent set slept "
    "sold spent stood taught understood woke wrote won wore let cut quit sat spoke broke stuck"
)
"""Modals and irregular past forms: they never take an agreement -s."""

VERBS_AFTER_AND = _words(
    "feels follows brushes mentions discusses talks worries thinks wants needs tries says knows keeps "
    "gets goes has is does takes makes avoids copes holds believes hopes finds spends stays works "
    "lives struggles fears blames doubts misses hates loves likes drinks uses sleeps wakes skips "
    "cancels replays drafts wonders hides gives drives answers helps comes grows loses sees leaves "
    "becomes falls undergoes criticizes feel worry think want need try say know keep get go have do "
    "take make avoid cope hold believe hope find spend stay work live struggle fear blame doubt miss "
    "hate love like drink use sleep wake skip cancel replay draft wonder hide give drive answer help "
    "lose see leave become fall undergo criticize come grow follow brush mention discuss talk"
)
"""Verbs persona prose uses after "and" / "but" with the subject left out, in both forms."""

AFTER_OBJECT_YOU = _words("to for with at about on of from tell told help let make asked give show thank see")
"""Words after which "you" is an object ("told you"), not a subject."""

OBJECTS = _words("to every the a an his her their my your it them him me that this what how about")
"""Words that follow a verb rather than a plural noun ("and dreads every message")."""
