"""The offline therapist: reflects what the patient said, walks its modality's script (CBT, MI or
person-centred, see ``modalities.py``) and closes the session with a fixed line."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from simulator.backends.offline.material import material_of
from simulator.backends.offline.modalities import SCRIPTS, Step, modality_of
from simulator.backends.offline.script import (
    Scene,
    last_user,
    lower_first,
    own_turns,
    strip_end,
    words,
)
from simulator.backends.offline.voice import first_to_second, reflect, strip_fillers, third_to_second
from simulator.protocol import ChatMessage
from simulator.summary import SUMMARY_SECTIONS, parse_sections
from simulator.text import split_sentences

CLOSINGS = (
    "Take care, {name}, and don't hesitate to reach out if anything comes up before next week.",
    "I'll see you next week, {name}. Take care, and don't hesitate to reach out in the meantime.",
    "Don't hesitate to reach out if you need anything. See you next week, {name}.",
    "That's all the time we have today. Take care, {name}, and I'll see you next week.",
    "Have a good week, {name}. I'm looking forward to our next session.",
    "Until next week, then, {name}. Take care of yourself.",
)
"""The therapist's last line, ``{name}`` the patient's first name. The default therapist end
phrases match every one (a test says so); custom ``end_phrases`` may not, and then an offline
session runs on to Max Turns."""

REFLECTIONS = {
    "cbt": ("It sounds like {r}.", "So {r}.", "What I'm hearing is that {r}."),
    "mi": ("You're saying {r}.", "So {r}.", "{R}, and that matters to you.", "{R}."),
    "person-centred": ("It sounds like {r}.", "{R}.", "So {r}, and that's a lot to carry."),
}
"""How each modality says a reflection; ``{r}`` is the patient's sentence in the second person."""

HOMEWORK = (
    ("thought record", "the thought record we agreed on"),
    ("experiment", "the behavioural experiment we planned"),
    ("balanced thought", "practising the balanced thought we came up with"),
)
"""How the therapist names last session's homework instead of quoting the summary's 'he'."""

OPEN_QUESTIONS = (
    "What else feels important to talk about today?",
    "What would you like me to understand about that?",
    "Is there anything we haven't touched on yet?",
)
"""For a session that runs past its script."""

NONE = "None this session"
_VERB = re.compile(
    r"^(?:you|it|they|there|this|that|he|she|we)\b|\b(?:is|was|are|were|am|have|has|had|do|did|can|could"
    r"|will|would|feel|felt|think)\b|'|\w+ed\b",
    re.IGNORECASE,
)
"""Whether a reflection is a clause ("you felt ...") rather than a bare phrase ("guilt at work")."""


def _frame_words(frame: str) -> str:
    """A reflection frame's own words ("and that's a lot to carry"), to say each once a session."""
    own = max(re.split(r"\{[rR]\}", frame), key=len).strip(" .,").lower()
    return own or "\0"


def is_closing(text: str, name: str) -> bool:
    """Whether a therapist message ends with one of the fixed closing lines."""
    return any(text.rstrip().endswith(c.format(name=name)) for c in CLOSINGS)


def previous_homework(summary: str | None) -> str:
    """The homework the last summary recorded, or "" when there was none."""
    homework = parse_sections(summary).get("Homework assigned", [])
    return homework[0] if homework and homework[0] != NONE else ""


class TherapistScript:
    """One therapist reply: a reflection of the patient's last message, then the next step."""

    def __init__(
        self, scene: Scene, messages: Sequence[ChatMessage], rng: random.Random, regenerating: bool
    ) -> None:
        self.scene = scene
        self.rng = rng
        self.turn = own_turns(messages)
        self.name = scene.patient.name.split()[0]
        self.last = last_user(messages)
        self.own = " ".join(m.content for m in messages if m.role == "assistant").lower()
        self.material = material_of(scene.patient)
        self.modality = modality_of(scene.patient, scene.therapist)
        self.homework = previous_homework(scene.previous_summary)
        planned = 4 + random.Random(f"{scene.seed}:{scene.patient.key}:{scene.session_number}:plan").randint(
            1, 4
        )
        needed = (scene.min_turns + 1) // 2  # no natural end before min_turns messages
        latest = (scene.max_turns - 3) // 2  # close early enough to leave room for the goodbye
        self.closing_turn = max(min(planned, latest), needed)
        self.regenerating = regenerating

    @property
    def steps(self) -> tuple[Step, ...]:
        steps = SCRIPTS[self.modality]
        return steps[1:] if self.modality == "cbt" and self.homework else steps

    def reply(self) -> str:
        if self.turn == 0:
            return self._check_in()
        if self.turn == self.closing_turn or (
            self.turn > self.closing_turn and (self.turn - self.closing_turn) % 3 == 0
        ):
            return self._close()  # a closing that did not end the session is tried again later
        if self.turn == self.closing_turn - 1:
            return self._wrap_up()
        if self.turn == 1 and self.homework and not self.regenerating:
            return self._review()
        steps = self.steps
        index = self.turn - (2 if self.homework else 1)
        if self.regenerating:  # a guard rejected the first try: take the conversation elsewhere
            index = self.rng.randrange(len(steps))
        return f"{self._reflection()} {self._question(index)}"

    def _fill(self, text: str) -> str:
        m = self.material
        goal = first_to_second(lower_first(m.pick(m.goals, self.scene.session_number))) or "feel better"
        problem = first_to_second(lower_first(m.problems[0] if m.problems else m.topic))
        return text.format(topic=first_to_second(lower_first(m.topic)), goal=goal, problem=problem)

    def _question(self, index: int) -> str:
        """The step at ``index`` in one of its wordings not yet asked this session; past the end of
        the script, the next step with one left, else an open question."""
        steps = self.steps
        for step in [steps[(index + k) % len(steps)] for k in range(len(steps))]:
            fresh = [q for q in (self._fill(a) for a in step.asks) if q.lower() not in self.own]
            if fresh:
                return self.rng.choice(fresh)
        return self.rng.choice([q for q in OPEN_QUESTIONS if q.lower() not in self.own] or OPEN_QUESTIONS)

    def _reflection(self) -> str:
        """The patient's last words said back: one of its statements, without fillers, as 'you'."""
        candidates = [
            s
            for s in split_sentences(self.last)
            if not s.endswith("?")
            and 5 <= words(strip_fillers(s)) <= 30
            and not re.search(rf"\byou\b|\byour\b|\b{re.escape(self.scene.therapist.name)}\b", s, re.I)
        ]
        reflections = [strip_end(reflect(s, self.material.names)) for s in candidates]
        fresh = [r for r in reflections if r[:40].lower() not in self.own]
        if not fresh or self.regenerating:
            return self.rng.choice(["Okay.", "Thank you.", "Mm."])
        said = self.rng.choice([r for r in fresh if words(r) >= 8] or fresh)
        frames = [f for f in REFLECTIONS[self.modality] if _frame_words(f) not in self.own]
        frame = self.rng.choice(frames or REFLECTIONS[self.modality]) if _VERB.search(said) else "So, {r}."
        return frame.format(r=said, R=said[:1].upper() + said[1:])

    def _check_in(self) -> str:
        therapist = self.scene.therapist.name
        if not self.scene.previous_summary:
            greet = self.rng.choice(
                [
                    f"Hello, {self.name}, and welcome. I'm {therapist}.",
                    f"Welcome, {self.name}. I'm glad you came in today; I'm {therapist}.",
                ]
            )
            ask = {
                "cbt": "In this first session I'd like to get to know you, understand what brings you "
                "here, and agree on what we work on together. How have things been for you lately?",
                "mi": "This is your time, and you decide what we do with it. What brings you here, "
                "and how have things been for you lately?",
                "person-centred": "There's no right way to do this; we can start wherever you like. "
                "What brings you here, and how have things been for you lately?",
            }
            return f"{greet} {ask[self.modality]}"
        greet = self.rng.choice(
            [
                f"Welcome back, {self.name}.",
                f"It's good to see you again, {self.name}.",
                f"Hello, {self.name}.",
            ]
        )
        topics = parse_sections(self.scene.previous_summary).get(SUMMARY_SECTIONS[0], [])
        bridge = ""
        if topics and topics[0] != NONE:
            topic = third_to_second(strip_end(topics[0]), self.scene.patient.name, self.material.pronouns)
            bridge = f" Last time we spent a good part of the session on {lower_first(topic)}."
        ask = {
            "cbt": "Before we get into things, how has this past week been for you, and how would you "
            "rate your mood today, from 0 to 10?",
            "mi": "How have things been since we last met?",
            "person-centred": "How have things been since we last met, and what would you like to talk "
            "about today?",
        }
        return f"{greet}{bridge} {ask[self.modality]}"

    def _review(self) -> str:
        """Last session's homework, attributed rather than quoted (the summary says 'he')."""
        named = next((name for key, name in HOMEWORK if key in self.homework.lower()), None)
        if named is not None:
            what = f"Let's look back at {named} last time."
        else:
            step = third_to_second(strip_end(self.homework), self.scene.patient.name, self.material.pronouns)
            what = f"Last time you had a step in mind: {lower_first(step)}."
        return f"{self._reflection()} {what} How did that go, and what did you notice?"

    def _wrap_up(self) -> str:
        if self.modality == "cbt":
            return self._homework()
        if self.modality == "mi":
            return (
                f"{self._reflection()} We're close to the end of our time. "
                "What, if anything, would you like to do between now and next time? It's entirely your call."
            )
        return (
            f"{self._reflection()} We're nearly at time. "
            "What feels most important to take with you from today?"
        )

    def _homework(self) -> str:
        m = self.material
        goal = m.pick(m.goals, self.scene.session_number + 1)
        tie = f", which ties in with your goal to {first_to_second(lower_first(goal))}" if goal else ""
        task = self.rng.choice(
            [
                "fill in a thought record whenever you notice that critical voice, writing down the "
                "situation, the thought and a balanced alternative",
                "try the behavioural experiment we talked about and write down what you predicted and "
                "what actually happened",
                "notice the automatic thought when it shows up and practise the balanced thought we came "
                "up with today",
            ]
        )
        return (
            f"{self._reflection()} We're coming towards the end of our time, so let's agree on some "
            f"homework. This week, I'd like you to {task}{tie}. How does that sound to you?"
        )

    def _close(self) -> str:
        sum_up = {
            "cbt": "To sum up: we looked at one of those moments closely, found a more balanced way to "
            "see it, and you have a plan for the week.",
            "mi": "You've been honest today about both sides of this, and whatever you decide is yours "
            "to decide.",
            "person-centred": "Thank you for letting me into some of what you're carrying.",
        }
        return (
            f"{self._reflection()} You worked hard today, {self.name}. {sum_up[self.modality]} "
            f"{self.rng.choice(CLOSINGS).format(name=self.name)}"
        )
