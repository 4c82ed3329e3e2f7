"""The offline therapist: walks a structured CBT session and closes it with a fixed line."""

from __future__ import annotations

import random
from collections.abc import Sequence

from simulator.backends.offline.script import (
    Scene,
    last_user,
    lower_first,
    own_turns,
    sentences,
    strip_end,
    words,
)
from simulator.backends.offline.voice import (
    first_to_second,
    pronouns_of,
    third_to_first,
)
from simulator.protocol import ChatMessage
from simulator.summary import SUMMARY_SECTIONS, parse_sections

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


class TherapistScript:
    """Walks the CBT session structure: check-in, homework, agenda, work, homework, close."""

    def __init__(
        self, scene: Scene, messages: Sequence[ChatMessage], rng: random.Random, regenerating: bool
    ) -> None:
        self.scene = scene
        self.messages = messages
        self.rng = rng
        self.turn = own_turns(messages)
        self.name = scene.patient.name.split()[0]
        self.last = last_user(messages)
        planned = 4 + random.Random(f"{scene.seed}:{scene.patient.key}:{scene.session_number}:plan").randint(
            1, 4
        )
        needed = (scene.min_turns + 1) // 2  # no natural end before min_turns messages
        latest = (scene.max_turns - 3) // 2  # close early enough to leave room for the goodbye
        self.closing_turn = max(min(planned, latest), needed)
        self.regenerating = regenerating

    def reply(self) -> str:
        if self.turn == self.closing_turn:
            return self._close()
        if self.turn == self.closing_turn - 1:
            return self._homework()
        steps = [self._check_in, self._bridge, self._agenda]
        work = [self._thought, self._evidence, self._alternative, self._experiment, self._friend]
        plan = steps + work
        if self.regenerating:  # a guard rejected the first try: take the conversation elsewhere
            return self.rng.choice(work)()
        if self.turn < len(plan):
            return plan[self.turn]()
        if self.turn > self.closing_turn and (self.turn - self.closing_turn) % 3 == 0:
            return self._close()  # the last closing did not end the session: try again later
        return work[self.turn % len(work)]()

    def _echo(self) -> str:
        candidates = [s for s in sentences(self.last) if not s.endswith("?") and 4 <= words(s) <= 30]
        if not candidates:
            return self.rng.choice(["Thank you for telling me that.", "I appreciate you sharing that."])
        picked = lower_first(strip_end(self.rng.choice(candidates)))
        return self.rng.choice(
            [
                f"It sounds like {first_to_second(picked)}.",
                f"What I'm hearing is that {first_to_second(picked)}.",
                f"So {first_to_second(picked)}. That makes sense.",
            ]
        )

    def _check_in(self) -> str:
        greet = self.rng.choice(
            [
                f"Welcome back, {self.name}.",
                f"It's good to see you again, {self.name}.",
                f"Hello, {self.name}.",
            ]
            if self.scene.previous_summary
            else [
                f"Hello, {self.name}, and welcome. I'm {self.scene.therapist.name}.",
                f"Welcome, {self.name}. I'm glad you came in today; I'm {self.scene.therapist.name}.",
            ]
        )
        if self.scene.previous_summary:
            topics = parse_sections(self.scene.previous_summary).get(SUMMARY_SECTIONS[0], [])
            patient = self.scene.patient
            topic = (
                first_to_second(
                    third_to_first(strip_end(topics[0]), patient.name, pronouns_of(patient.pronouns))
                )
                if topics
                else ""
            )
            bridge = (
                f" Last time we spent a good part of the session on {lower_first(topic)}." if topics else ""
            )
            return f"{greet}{bridge} Before we get into things, how has this past week been for you, and how would you rate your mood today, from 0 to 10?"
        return (
            f"{greet} In this first session I'd like to get to know you, understand what brings you here, "
            "and agree on what we work on together. How have things been for you lately?"
        )

    def _bridge(self) -> str:
        homework = parse_sections(self.scene.previous_summary).get("Homework assigned", [])
        if homework:
            return (
                f"{self._echo()} Let's look back at the homework from last time: "
                f"{lower_first(strip_end(homework[0]))}. How did that go, and what did you notice?"
            )
        return (
            f"{self._echo()} CBT looks at how our thoughts, feelings and behaviour feed each other. "
            "What would you most like to be different by the end of our work together?"
        )

    def _agenda(self) -> str:
        return (
            f"{self._echo()} Let's set our agenda for today. Of everything on your mind, "
            "what feels most important to focus on in this session?"
        )

    def _thought(self) -> str:
        return (
            f"{self._echo()} Let's slow that moment down, almost like a thought record. "
            "When it happened, what was going through your mind? What exactly did you say to yourself?"
        )

    def _evidence(self) -> str:
        return (
            f"{self._echo()} Let's examine the evidence. What supports that thought, "
            "and is there anything that doesn't quite fit with it?"
        )

    def _alternative(self) -> str:
        return (
            f"{self._echo()} If you put both sides together, what might a more balanced thought sound like? "
            "And how much do you believe it, from 0 to 100 percent?"
        )

    def _experiment(self) -> str:
        return (
            f"{self._echo()} One way to test the old thought is a small behavioural experiment. "
            "What is one situation this week where you could act as if the balanced thought were true?"
        )

    def _friend(self) -> str:
        return (
            f"{self._echo()} If a good friend told you they were thinking this, what would you say to them? "
            "Could you say something like that to yourself?"
        )

    def _homework(self) -> str:
        goals = self.scene.patient.goals
        goal = (
            f", which ties in with your goal to {first_to_second(lower_first(strip_end(self.rng.choice(goals))))}"
            if goals
            else ""
        )
        task = self.rng.choice(
            [
                "fill in a thought record whenever you notice that critical voice, writing down the situation, the thought and a balanced alternative",
                "try the behavioural experiment we planned and write down what you predicted and what actually happened",
                "notice the automatic thought when it shows up and practise the balanced thought we came up with today",
            ]
        )
        return (
            f"{self._echo()} We're coming towards the end of our time, so let's agree on some homework. "
            f"This week, I'd like you to {task}{goal}. How does that sound to you?"
        )

    def _close(self) -> str:
        return (
            f"{self._echo()} You worked hard today, {self.name}. To sum up: we looked at one of those "
            f"moments closely, found a more balanced way to see it, and you have a plan for the week. "
            f"{self.rng.choice(CLOSINGS).format(name=self.name)}"
        )
