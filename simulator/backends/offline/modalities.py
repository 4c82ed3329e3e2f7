"""The offline therapist's three scripts as data: what each step asks, in a few wordings.

A step is a kind (which the offline patient recognises from the question's cue words, see
:data:`CUES`) and the questions that carry it. ``{problem}``, ``{topic}`` and ``{goal}`` are
filled from the persona, in the second person. The therapist's own reflection of what the
patient just said comes before the question (see ``therapist.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.personas import Patient, Therapist


@dataclass(frozen=True)
class Step:
    kind: str
    asks: tuple[str, ...]


CBT = (
    Step(
        "goals",
        (
            "CBT looks at how our thoughts, feelings and actions feed each other. "
            "What would you most like to be different by the end of our work together?",
        ),
    ),
    Step(
        "agenda",
        (
            "Let's set our agenda for today. Of everything on your mind, what feels most important "
            "to focus on in this session?",
            "Let's agree on an agenda. What feels most important to focus on today?",
        ),
    ),
    Step(
        "situation",
        (
            "Let's slow one moment down, like a thought record. Can you walk me through a specific "
            "moment this week when that was strongest?",
            "Let's take one specific moment and fill in a thought record together. When was it strongest?",
        ),
    ),
    Step(
        "thought",
        (
            "In that moment, what was going through your mind? What exactly did you say to yourself?",
            "What went through your mind right then? What did you say to yourself?",
        ),
    ),
    Step(
        "evidence",
        (
            "Let's examine the evidence. What supports that thought, and what doesn't quite fit with it?",
            "If we look at the evidence, what supports that thought, and is there anything against it?",
        ),
    ),
    Step(
        "balanced",
        (
            "Putting both sides together, what might a more balanced thought sound like? "
            "How much do you believe it, from 0 to 100 percent?",
        ),
    ),
    Step(
        "friend",
        (
            "If a good friend told you they were thinking this, what would you say to them?",
            "What would you tell a good friend who had that thought?",
        ),
    ),
    Step(
        "experiment",
        (
            "One way to test the old thought is a small behavioural experiment. "
            "Where this week could you act as if the balanced thought were true?",
        ),
    ),
)
"""Cognitive behavioural therapy: after the check-in and homework review, agenda, a thought
record, the evidence, a balanced thought; homework before the close."""

MI = (
    Step(
        "pros",
        (
            "What are the good things about {problem} for you, the things you'd miss?",
            "What do you like about {problem}, as things are?",
        ),
    ),
    Step(
        "importance",
        (
            "On a scale from 0 to 10, how important is it to you to make a change? "
            "Why that number and not a lower one?",
        ),
    ),
    Step(
        "cons",
        (
            "And what are the less good things about it?",
            "What concerns you about it, if anything?",
        ),
    ),
    Step(
        "values",
        (
            "Stepping back from {topic} for a moment: what matters most to you in your life right now?",
            "What matters most to you these days, beyond {topic}?",
        ),
    ),
    Step(
        "confidence",
        (
            "And if you decided to, how confident are you that you could? "
            "What would help you feel more confident?",
        ),
    ),
    Step(
        "options",
        (
            "What ideas do you have about what might work for you, if anything?",
            "If you did make a change, what might that look like for you?",
        ),
    ),
)
"""Motivational interviewing: open questions and reflections, both sides of the ambivalence,
importance and confidence (change talk), the patient's own ideas; the close summarises and
asks about a next step, which is the patient's to choose."""

PERSON_CENTRED = (
    Step(
        "feelings",
        (
            "What is that like for you, living with it day to day?",
            "How does that feel, when you sit with it here?",
        ),
    ),
    Step(
        "meaning",
        (
            "What does that mean to you, underneath it all?",
            "What does it say to you about yourself, when that happens?",
        ),
    ),
    Step(
        "self",
        (
            "When you notice that, what happens inside you?",
            "Where do you feel that most, and what does it need?",
        ),
    ),
    Step(
        "needs",
        (
            "What do you feel you need right now?",
            "What would help you most at the moment, do you think?",
        ),
    ),
)
"""Person-centred: open questions that follow the patient, reflections of feeling and meaning."""

SCRIPTS = {"cbt": CBT, "mi": MI, "person-centred": PERSON_CENTRED}

_NAMES = (
    ("cbt", r"\bcbt\b|cognitive|behaviou?ral"),
    ("mi", r"\bmi\b|motivational"),
)


def modality_of(patient: Patient, therapist: Therapist) -> str:
    """The script for a session: the patient persona's ``modality`` when its file sets one, else
    the therapist's; CBT and MI have their own, anything else is person-centred."""
    chosen = patient.modality if "modality" in patient.model_fields_set else therapist.modality
    for name, pattern in _NAMES:
        if re.search(pattern, chosen, re.IGNORECASE):
            return name
    return "person-centred"


CUES: tuple[tuple[str, str], ...] = (
    ("homework", r"i'd like you to|how does that sound|would you like to try"),
    ("review", r"how did (?:that|it) go|since we agreed"),
    ("check_in", r"past week|how have things been|since we last met|what brings you|talk about today"),
    ("goals", r"different by the end"),
    ("agenda", r"agenda|most important to focus"),
    ("situation", r"specific moment|walk me through"),
    ("thought", r"going through your mind|went through your mind"),
    ("evidence", r"evidence"),
    ("balanced", r"balanced thought sound"),
    ("friend", r"good friend"),
    ("experiment", r"experiment"),
    ("cons", r"less good|concerns you"),
    ("pros", r"good things about|do you like about"),
    ("values", r"matters most"),
    ("importance", r"how important"),
    ("confidence", r"how confident"),
    ("options", r"ideas do you have|might that look like"),
    ("plan", r"next step|between now and next time"),
    ("feelings", r"what is that like|how does that feel"),
    ("meaning", r"what does that mean|say to you about yourself"),
    ("self", r"happens inside you|feel that most"),
    ("needs", r"need right now|help you most"),
    ("takeaway", r"take with you"),
)
"""How the offline patient tells what the therapist asked: the first cue found wins."""


def asked(question: str) -> str | None:
    """The kind of step a therapist message asks for, from its last question."""
    text = question.lower()
    for kind, pattern in CUES:
        if re.search(pattern, text):
            return kind
    return None
