"""The offline patient: answers the therapist's step from the persona's fields, in its voice."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from simulator.backends.offline.script import (
    TECHNIQUES,
    Scene,
    as_list,
    last_user,
    lower_first,
    own_turns,
    sentences,
    strip_end,
)
from simulator.backends.offline.voice import (
    pronouns_of,
    third_to_first,
)
from simulator.personas import Patient
from simulator.protocol import ChatMessage
from simulator.summary import parse_sections

_THERAPIST_CLOSING = re.compile(
    r"see you next week|reach out|take care|until next week|all the time we have|our next session"
    r"|have a good week"
)
"""How the offline patient recognises that the therapist is closing."""


class PatientScript:
    """Answers from the persona: problems, background, beliefs, notes, last homework."""

    def __init__(
        self, scene: Scene, messages: Sequence[ChatMessage], rng: random.Random, regenerating: bool
    ) -> None:
        self.scene = scene
        self.p: Patient = scene.patient
        self.rng = rng
        self.turn = own_turns(messages)
        self.question = last_user(messages).lower()
        style = (self.p.speech_style or "").lower()
        self.brief = any(w in style for w in ("short", "hesitant", "brief", "terse", "quiet"))
        self.rambling = any(w in style for w in ("long", "tangent", "story", "stories", "rambl", "verbose"))
        self.therapist_name = scene.therapist.name
        self.nudged = regenerating

    def reply(self) -> str:
        if self.nudged:
            return self._share()
        q = self.question
        if _THERAPIST_CLOSING.search(q) and "homework" not in q.split(".")[-1]:
            return self._goodbye()
        if "homework" in q and ("agree" in q or "this week, i'd like you" in q or "how does that sound" in q):
            return self._accept_homework()
        if "homework from last time" in q or "how did that go" in q:
            return self._homework_report()
        if "past week" in q or "how have things been" in q or "mood" in q:
            return self._check_in()
        if "different by the end" in q:
            return self._goals()
        if "most important to focus" in q or "agenda" in q:
            return self._agenda()
        if "going through your mind" in q or "say to yourself" in q:
            return self._thought()
        if "evidence" in q or "supports that thought" in q:
            return self._evidence()
        if "balanced thought" in q or "friend" in q:
            return self._balanced()
        if "experiment" in q:
            return self._experiment()
        return self._share()

    def _voice(self, core: list[str]) -> str:
        extra = self.p.extra.get("voice_samples")
        if self.rambling and isinstance(extra, list) and extra and self.rng.random() < 0.6:
            core.append(str(self.rng.choice(extra)))
        if self.rambling and self.p.background and self.rng.random() < 0.5:
            core.append(
                "It reminds me of something, actually. "
                + third_to_first(
                    self.rng.choice(sentences(self.p.background)), self.p.name, pronouns_of(self.p.pronouns)
                )
            )
        if self.brief:
            core = core[:2]
            if self.rng.random() < 0.5:
                core[0] = self.rng.choice(["Um, ", "I guess... ", "Yeah, "]) + lower_first(core[0])
        return " ".join(core)

    def _pick(self, items: Sequence[str], fallback: str) -> str:
        return strip_end(self.rng.choice(list(items))) if items else fallback

    def _check_in(self) -> str:
        mood = self.rng.randint(3, 6)
        notes = self.scene.session_notes
        core = [f"Honestly, it's been a mixed week. I'd say about a {mood}."]
        if notes:
            core.append(
                f"Something happened that I should mention: {third_to_first(notes, self.p.name, pronouns_of(self.p.pronouns))}"
            )
        else:
            problem = self._pick(self.p.presenting_problems, "everything piling up")
            core.append(f"The {lower_first(problem)} has been there most days.")
        return self._voice(core)

    def _homework_report(self) -> str:
        homework = " ".join(parse_sections(self.scene.previous_summary).get("Homework assigned", []))
        task = next((label for key, label in TECHNIQUES if key in homework.lower()), "the homework")
        task = re.sub(r"^an? ", "the ", task.split(" (")[0])
        done = self.rng.choice(
            ["a few times", "on three of the days", "twice, if I'm honest", "most days at first"]
        )
        return self._voice(
            [
                f"I did try {task}, {done}.",
                self.rng.choice(
                    [
                        "It was harder than I expected on the bad days, but I noticed the thought a bit sooner.",
                        "Some days I forgot completely, but when I did it, it helped a little.",
                        "I found it a bit awkward, but writing it down made it feel less huge.",
                    ]
                ),
            ]
        )

    def _goals(self) -> str:
        goals = list(self.p.goals) or ["feel more like myself again"]
        picked = self.rng.sample(goals, k=min(2, len(goals)))
        wish = " and ".join(lower_first(strip_end(g)) for g in picked)
        return self._voice([f"I suppose I'd like to {wish}.", "I'm not sure that's realistic, though."])

    def _agenda(self) -> str:
        problem = self._pick(self.p.presenting_problems, "how stuck I feel")
        goal = self._pick(self.p.goals, "feel more like myself again")
        return self._voice(
            [
                f"I think I'd like to work on {lower_first(problem)}.",
                f"What I really want is to {lower_first(goal)}.",
            ]
        )

    def _thought(self) -> str:
        thoughts = self.p.extra.get("automatic_thoughts")
        thought = self._pick(
            [str(t) for t in thoughts] if isinstance(thoughts, list) else as_list(self.p.core_beliefs),
            "I'm not good enough",
        )
        return self._voice(
            [
                f'I think it was something like, "{thought}."',
                "And then I just felt heavy, like I'd already failed.",
            ]
        )

    def _evidence(self) -> str:
        belief = self._pick(
            as_list(self.p.intermediate_beliefs) or as_list(self.p.core_beliefs),
            "I have to get everything right",
        )
        return self._voice(
            [
                f"Well, part of me really believes that {lower_first(belief)}.",
                "But if I'm being fair, there are times it went fine and nobody thought less of me.",
            ]
        )

    def _balanced(self) -> str:
        return self._voice(
            [
                "Maybe something like, I'm doing the best I can with what I have, and that counts for something.",
                f"I'd believe it maybe {self.rng.choice([30, 40, 50])} percent. I realize I'd never talk to a friend the way I talk to myself.",
            ]
        )

    def _experiment(self) -> str:
        coping = self._pick(as_list(self.p.coping_strategies), "keep busy")
        return self._voice(
            [
                "I could try it this week instead of falling back on the usual.",
                f"Normally I'd just {lower_first(coping)}. That helps in the moment, but it doesn't really change anything.",
            ]
        )

    def _accept_homework(self) -> str:
        return self._voice(
            [
                "That sounds doable. I'll try to actually write it down this time.",
                "It's helpful to have something concrete to do.",
            ]
        )

    def _share(self) -> str:
        """Something else from the persona, when the question fits no step or a guard asked again."""
        pronouns = pronouns_of(self.p.pronouns)
        options: list[list[str]] = []
        for sentence in sentences(self.p.personality or ""):
            options.append(
                ["I guess I've always been like that.", third_to_first(sentence, self.p.name, pronouns)]
            )
        for sentence in sentences(self.p.background or ""):
            options.append(
                ["Can I say something about that?", third_to_first(sentence, self.p.name, pronouns)]
            )
        for coping in as_list(self.p.coping_strategies):
            options.append(
                [
                    f"When it gets bad I tend to fall back on {lower_first(strip_end(coping))}.",
                    "I know it doesn't really fix anything.",
                ]
            )
        if not options:
            options.append(
                ["That makes sense when you put it that way.", "I just don't know where to start."]
            )
        return self._voice(list(self.rng.choice(options)))

    def _goodbye(self) -> str:
        return self.rng.choice(
            [
                f"Thank you, {self.therapist_name}. See you next week.",
                "Thanks, this was helpful. See you next week.",
                f"Okay. Thanks again, {self.therapist_name}. Bye.",
            ]
        )
