"""The offline patient: answers what the therapist asked from its own persona, in its voice.

Every sentence of eight words or more carries something of the persona (a problem, a thought,
a belief, a situation, a goal, a voice sample); the frames around them stay short, so two
personas never say the same long sentence. Each session has its own situation and feelings:
the session's note when the persona has one, else the next of its triggers and events.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from simulator.backends.offline.material import Material, material_of
from simulator.backends.offline.modalities import asked, modality_of
from simulator.backends.offline.script import Scene, last_user, lower_first, own_turns, strip_end
from simulator.backends.offline.therapist import is_closing, previous_homework
from simulator.backends.offline.voice import third_to_first
from simulator.guards import DEFAULT_REPETITION_THRESHOLD, similarity
from simulator.protocol import ChatMessage
from simulator.text import normalize

_CLAUSE = re.compile(
    r"^(?:I|I'm|I've|I'd|My|Me|It|It's|There|Nothing|Everything|Someone|Everyone)\b|\b(?:am|is|was|are|were|has|had|have|did|does|feel|felt|got)\b"
)
_STAGES = {"precontemplation": (2, 4), "contemplation": (4, 6), "preparation": (6, 8), "action": (7, 9)}


def _sentence(text: str) -> str:
    """``text`` as one spoken sentence: a capital first, a full stop unless it ends in one."""
    text = text.strip()
    if not re.search(r"[.!?…][\"'”’)]*$", text):
        text = strip_end(text) + "."
    return text[:1].upper() + text[1:] if len(text) > 1 else ""


class PatientScript:
    """Answers from the persona: its situation this session, thoughts, beliefs, goals, plans."""

    def __init__(
        self, scene: Scene, messages: Sequence[ChatMessage], rng: random.Random, regenerating: bool
    ) -> None:
        self.scene = scene
        self.m: Material = material_of(scene.patient)
        self.rng = rng
        self.turn = own_turns(messages)
        self.question = last_user(messages)
        self.earlier = [m.content for m in messages if m.role == "assistant"]
        self.said = normalize(" ".join(m.content for m in messages if m.role == "assistant"))
        style = (scene.patient.speech_style or "").lower()
        brief = any(w in style for w in ("short", "hesitant", "brief", "terse", "quiet", "guarded"))
        rambling = any(w in style for w in ("long", "tangent", "stories", "rambl", "verbose", "talks a lot"))
        self.brief = brief and not (rambling and self.turn % 2)
        self.rambling = rambling and not self.brief
        self.nudged = regenerating
        self.modality = modality_of(scene.patient, scene.therapist)
        # Where this persona's rotation starts: other seeds, other situations first.
        self.offset = random.Random(f"{scene.seed}:{scene.patient.key}").randrange(97)
        self.n = scene.session_number + self.offset

    def reply(self) -> str:
        if is_closing(self.question, self.scene.patient.name.split()[0]):
            return self._goodbye()
        kind = None if self.nudged else asked(self.question)
        answer: Callable[[], list[str]] = getattr(self, f"_{kind}", self._share)
        core = answer()
        text = self._voice(core)
        if self._repeats(text):  # thin personas: leave out what this session already heard
            kept = [c for c in core if not self._repeats(c)]
            text = " ".join(kept) if kept else self.rng.choice(["I'm not sure.", "Hard to say.", "Maybe."])
        return text

    # -- material for this session ---------------------------------------------------------

    def _repeats(self, text: str) -> bool:
        """Whether ``text`` would read as a repeat of one of the patient's earlier messages."""
        return any(similarity(text, earlier) >= DEFAULT_REPETITION_THRESHOLD for earlier in self.earlier)

    def _is_said(self, text: str) -> bool:
        """Whether this session already heard ``text`` from the patient (most of its wording)."""
        words = normalize(text).split()
        grams = {" ".join(words[i : i + 4]) for i in range(max(1, len(words) - 3))}
        return sum(f" {g} " in f" {self.said} " for g in grams) >= 0.5 * len(grams)

    def _fresh(self, items: list[str], index: int) -> str:
        """The item at ``index``, or the next one not yet said in this session ("" when all were)."""
        for step in range(len(items)):
            item = self.m.pick(items, index + step)
            if not self._is_said(item):
                return item
        return ""

    def situation(self, later: int = 0) -> str:
        """This session's situation (its note, else the next trigger or event), as a sentence."""
        notes = self.scene.session_notes
        if notes and not later:
            return third_to_first(notes, self.scene.patient.name, self.m.pronouns)
        item = self._fresh(self.m.situations, self.n + later) or self._fresh(self.m.about, self.n + later)
        if not item:
            return self.rng.choice(
                ["More of the same, really.", "It's been a hard stretch.", "Nothing new, really."]
            )
        if _CLAUSE.search(item):
            return _sentence(item)
        frame = self.rng.choice(
            ["The hardest part was {}.", "What got to me was {}.", "It came to a head with {}."]
        )
        return frame.format(self._lower(item))

    def _lower(self, text: str) -> str:
        return lower_first(text, self.m.names)

    def feeling(self, which: int = 0) -> str:
        """This session's feelings (the check-in's first two), then ones not yet named."""
        start = 2 * self.n + which
        if which < 2:
            return self.m.pick(self.m.feelings, start)
        return self._fresh(self.m.feelings, start) or self.m.pick(self.m.feelings, start)

    def problem(self, index: int = 0) -> str:
        return self._lower(
            self._fresh(self.m.problems, self.n + index)
            or self.m.pick(self.m.problems, index)
            or self.m.topic
        )

    def thought(self) -> str:
        pool = self.m.thoughts + [b for b in self.m.beliefs if not re.match(r"(?i)if |it's important", b)]
        return self._fresh(pool, self.n) or self.m.pick(pool, self.n) or "Here we go again"

    def belief(self) -> str:
        pool = self.m.beliefs or self.m.thoughts
        fallback = self._fresh(self.m.voice + self.m.about, self.n) or "it's just how I am"
        return self._fresh(pool, self.n) or self.m.pick(pool, self.n) or fallback

    def goal(self, index: int = 0) -> str:
        return lower_first(self.m.pick(self.m.goals, self.n + index))

    def plan(self) -> str:
        if not self.m.plans:
            return "I'll think about it some more"
        return re.sub(r"^I consider\b", "I'll consider", self.m.pick(self.m.plans, self.n))

    # -- answers, by what the therapist asked ----------------------------------------------

    def _check_in(self) -> list[str]:
        first = self.scene.previous_summary is None
        lead = self.rng.choice(["Where to start?", "Honestly?", "The short version?"])
        opener = (
            f"{lead} {_sentence(self.problem())}" if first else f"About a {self.rng.randint(3, 6)} today."
        )
        if self.modality == "mi" and not first:
            opener = self.rng.choice(["Not much has changed.", "About the same, really."])
        felt = f"I've felt {self.feeling()} and {self.feeling(1)}."
        return [self.situation(), felt] if self.brief else [opener, self.situation(), felt]

    def _review(self) -> list[str]:
        done = self.rng.choice(["a few times", "three days", "twice, honestly", "once"])
        homework = previous_homework(self.scene.previous_summary).lower()
        if "thought record" in homework or "automatic thought" in homework:
            thought = self.thought() if self.m.thoughts or self.m.beliefs else ""
            middle = (
                f'I caught "{self._lower(thought)}" and wrote it down.' if thought else "I wrote a few down."
            )
        elif "experiment" in homework:
            middle = f"The hardest bit? {_sentence(self.problem())}"
        else:
            middle = f"I kept {lower_first(self.m.topic)} in mind."
        return [
            f"I tried it {done}.",
            middle,
            self.rng.choice(["It helped a little.", "Some days I forgot."]),
        ]

    def _goals(self) -> list[str]:
        if not self.m.goals:
            return ["I'd like to feel lighter.", "I'm not sure what's realistic."]
        return [f"I'd like to {self.goal()}, and {self.goal(1)}.", "I'm not sure that's realistic."]

    def _agenda(self) -> list[str]:
        lead = self.rng.choice(["The main thing?", "What matters most?"])
        return [f"{lead} {_sentence(self.problem(1))}", self.situation(later=1)]

    def _situation(self) -> list[str]:
        return [self.situation(later=2), f"I felt {self.feeling(2)}."]

    def _thought(self) -> list[str]:
        return [f'The thought was, "{_sentence(self.thought())}"', f"Then I felt {self.feeling(2)}."]

    def _evidence(self) -> list[str]:
        return [
            f"Part of me really believes that {self._lower(self.belief())}.",
            "If I'm fair, it isn't always true.",
        ]

    def _balanced(self) -> list[str]:
        percent = self.rng.choice([30, 40, 50, 60])
        return [
            f'Maybe, "Feeling that {self._lower(self.belief())} doesn\'t make it true."',
            f"I'd believe it about {percent} percent.",
        ]

    def _friend(self) -> list[str]:
        return [
            f'If a friend said "{self._lower(self.thought())}", I\'d go easy on them.',
            "I realize I'm harder on myself.",
        ]

    def _experiment(self) -> list[str]:
        coping = self._fresh(self.m.coping, self.n) if self.m.coping else ""
        habit = (
            _sentence(coping)
            if coping.startswith("I ")
            else f"Usually I fall back on {self._lower(coping)}."
            if coping
            else "Usually I just wait it out."
        )
        return [f"I could try it with {self.problem()}.", habit]

    def _homework(self) -> list[str]:
        hard = self._fresh(self.m.problems + self.m.situations, self.n + 2)
        return [
            "Okay, I can do that.",
            f"The hard part? {_sentence(hard)}" if hard else "Remembering it on bad days.",
        ]

    def _pros(self) -> list[str]:
        pool = self.m.sustain or self.m.coping
        sustain = _sentence(self._fresh(pool, self.n)) or "It's familiar, I suppose."
        return [sustain, "It's not all bad."]

    def _cons(self) -> list[str]:
        worries = r"(?i)worse|concern|fail|fire|lose|losing|worr|hurt|problem|risk|pushed|afraid"
        pool = [s for s in self.m.about + self.m.situations if re.search(worries, s)] or self.m.about
        return [_sentence(self._fresh(pool, self.n + 1)) or "It worries me.", "That part scares me."]

    def _values(self) -> list[str]:
        topics = [
            t.lower() for t in self.scene.patient.extra.get("motivation_topics", []) if isinstance(t, str)
        ]
        if len(topics) >= 2:
            return [f"I care about {topics[-2]} and {topics[-1]}."]
        return [
            f"Mostly I want to {self.goal()}." if self.m.goals else f"Fewer {self.feeling()} days, mostly."
        ]

    def _importance(self) -> list[str]:
        stage = str(self.scene.patient.extra.get("stage_of_change", "")).lower()
        low, high = _STAGES.get(stage, (4, 7))
        reason = self.m.pick(self.m.reasons, 0)
        why = re.split(r"\b(?:as|because)\b", reason, maxsplit=1)[-1].split(",")[0].strip() if reason else ""
        why = lower_first(why) if why else f"{self.problem()} worries me"
        return [f"Maybe a {self.rng.randint(low, high)}, not lower.", _sentence(f"because {why}")]

    def _confidence(self) -> list[str]:
        return [
            f"About a {self.rng.randint(3, 6)}.",
            self.rng.choice(["I've tried before, sort of.", "I'm not sure I could."]),
        ]

    def _options(self) -> list[str]:
        reason = self._fresh(self.m.reasons + self.m.goals, self.n)
        return ["I've thought about it.", _sentence(reason) if reason else "I just haven't started."]

    def _plan(self) -> list[str]:
        return [_sentence(self.plan()), "That feels doable."]

    def _feelings(self) -> list[str]:
        situation = self.situation(later=1)
        return [situation, f"It leaves me {self.feeling(2)}."]

    def _meaning(self) -> list[str]:
        return [f"Maybe that {self._lower(self.belief())}.", "That's hard to say out loud."]

    def _self(self) -> list[str]:
        return [f"I get {self.feeling(2)}, then quiet.", self._share()[0]]

    def _needs(self) -> list[str]:
        return [f"I think I need to {self.goal()}." if self.m.goals else "Some room to breathe, maybe."]

    def _takeaway(self) -> list[str]:
        return [f"I realize I've been carrying {self.problem()} alone.", "That helps, somehow."]

    def _share(self) -> list[str]:
        """Something else from the persona, when the question fits no step or a guard asked again."""
        pool = [v for v in self.m.voice if not self._is_said(v)] or [
            a for a in self.m.about if not self._is_said(a)
        ]
        if pool:
            return [_sentence(self.rng.choice(pool))]
        return [self.situation(later=3), "I don't know where to start."]

    def _voice(self, core: list[str]) -> str:
        """The persona's speech style: brief ones say less, talkative ones drift, tics recur."""
        core = list(dict.fromkeys(c for c in core if c))
        if self.rambling and self.rng.random() < 0.6:
            voice = [
                v for v in self.m.voice + self.m.about if not self._is_said(v) and v not in " ".join(core)
            ]
            if voice:
                core.append(_sentence(self.rng.choice(voice)))
        if self.brief:
            core = core[:2]
        if self.m.tics and self.rng.random() < 0.35:
            tic = self.rng.choice(self.m.tics)
            if tic.endswith(("...", "…")):  # thinking aloud: it leads into the answer
                core[0] = f"{tic} {self._lower(core[0])}"
            else:
                core.append(_sentence(tic))
        elif self.brief and self.rng.random() < 0.5:
            core[0] = self.rng.choice(["Um, ", "Yeah, ", "Well, "]) + self._lower(core[0])
        return " ".join(core)

    def _goodbye(self) -> str:
        name = self.scene.therapist.name
        return self.rng.choice(
            [
                f"Thank you, {name}. See you next week.",
                "Thanks, this was helpful. See you next week.",
                f"Okay. Thanks again, {name}. Bye.",
            ]
        )
