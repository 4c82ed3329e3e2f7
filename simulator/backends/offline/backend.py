"""The offline backend: deterministic, persona-driven replies without a language model.

It is a peer of the OpenAI backend behind :class:`simulator.protocol.ChatBackend`. It reads
the :class:`~simulator.protocol.Scene` (persona, session number, last summary, notes) and
the conversation so far, and writes what a CBT therapist and this patient would plausibly
say at this point of a structured session. Same seed, same text.
"""

from __future__ import annotations

import asyncio
import random
import re
import weakref
from collections.abc import Sequence

from simulator.backends.offline.voice import (
    first_to_second,
    first_to_third,
    pronouns_of,
    second_to_third,
    third_to_first,
)
from simulator.errors import BackendError
from simulator.personas import Patient
from simulator.protocol import ChatMessage, ChatReply, ChatRequest, Scene, Usage
from simulator.summary import SECTIONS, format_sections, parse_sections

OFFLINE_MODEL = "offline"

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_CLOSINGS = (
    "Take care, {name}, and don't hesitate to reach out if anything comes up before next week.",
    "I'll see you next week, {name}. Take care, and don't hesitate to reach out in the meantime.",
    "Don't hesitate to reach out if you need anything. See you next week, {name}.",
    "That's all the time we have today. Take care, {name}, and I'll see you next week.",
    "Have a good week, {name}. I'm looking forward to our next session.",
    "Until next week, then, {name}. Take care of yourself.",
)
_THERAPIST_CLOSING = re.compile(
    r"see you next week|reach out|take care|until next week|all the time we have|our next session"
    r"|have a good week"
)
"""How the offline patient recognises that the therapist is closing."""
_TECHNIQUES = (
    ("thought record", "a thought record"),
    ("evidence", "examining the evidence for and against a thought"),
    ("balanced thought", "building a balanced alternative thought"),
    ("behavioural experiment", "a behavioural experiment"),
    ("behavioral experiment", "a behavioural experiment"),
    ("friend", "the double-standard technique (what would you tell a friend?)"),
    ("activity schedul", "activity scheduling"),
    ("breathing", "paced breathing"),
    ("self-compassion", "self-compassion practice"),
    ("downward arrow", "the downward arrow"),
)


def _words(text: str) -> int:
    return len(text.split())


def _counted(text: str, counts: dict[str, int]) -> int:
    found = counts.get(text)
    if found is None:
        found = counts[text] = _words(text)
    return found


def _tokens(messages: Sequence[ChatMessage], reply: str, counts: dict[str, int]) -> Usage:
    """Usage as a server would report it, from word counts (each message counted once a session)."""
    prompt = sum(_counted(m.content, counts) for m in messages)
    return Usage(
        prompt_tokens=int(prompt * 1.3) + 4 * len(messages),
        completion_tokens=int(_counted(reply, counts) * 1.3) + 1,
    )


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _strip_end(text: str) -> str:
    return text.strip().rstrip(".!?;:,")


def _as_list(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [s for s in _sentences(value) if s]
    return list(value)


class OfflineBackend:
    """Chat backend that needs no network, no key and no model weights."""

    name = "offline"

    def __init__(self, seed: int | None = None) -> None:
        self.seed = 0 if seed is None else seed
        self._word_counts: dict[int, dict[str, int]] = {}

    def _counts(self, scene: Scene) -> dict[str, int]:
        """The word counts of one session's messages; dropped when its scene is."""
        key = id(scene)
        counts = self._word_counts.get(key)
        if counts is None:
            counts = self._word_counts[key] = {}
            weakref.finalize(scene, self._word_counts.pop, key, None)
        return counts

    async def complete(self, request: ChatRequest) -> ChatReply:
        await asyncio.sleep(0)  # yield, so --concurrency interleaves personas as a real backend does
        scene = request.scene
        if scene is None:
            raise BackendError(f"{request.role}: the offline backend needs the session scene")
        rng = random.Random(
            f"{self.seed}:{scene.patient.key}:{scene.session_number}:{request.role}:"
            f"{request.purpose}:{len(request.messages)}:{request.messages[-1].content[-80:]}"
        )
        if request.role == "summarizer":
            text = _summarize(request.messages, scene)
        elif request.purpose == "continuation":
            text = "and that's where I'd like to leave it for now."
        elif request.role == "therapist":
            text = _Therapist(scene, request.messages, rng, request.purpose == "regeneration").reply()
        else:
            text = _Patient(scene, request.messages, rng, request.purpose == "regeneration").reply()
        return ChatReply(
            content=text,
            model=OFFLINE_MODEL,
            finish_reason="stop",
            usage=_tokens(request.messages, text, self._counts(scene)),
            latency_s=0.0,
            request_id=None,
        )

    async def aclose(self) -> None:
        return None


def _own_turns(messages: Sequence[ChatMessage]) -> int:
    return sum(1 for m in messages if m.role == "assistant")


def _last_user(messages: Sequence[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def _closing_line(scene: Scene, rng: random.Random) -> str:
    """A closing sentence that one of the configured end phrases really matches."""
    name = scene.patient.name.split()[0]
    candidates = [c.format(name=name) for c in _CLOSINGS]
    patterns = [re.compile(p, re.IGNORECASE) for p in scene.therapist_end_phrases]
    matching = [c for c in candidates if any(p.search(c) for p in patterns)]
    if matching:
        return rng.choice(matching)
    for pattern in scene.therapist_end_phrases:
        literal = re.sub(r"\\b|\^|\$|\(\?[a-zA-Z]+\)", "", pattern).replace("\\", "")
        if re.search(pattern, literal, re.IGNORECASE):
            return f"{literal[:1].upper()}{literal[1:]}, {name}."
    return candidates[0]


class _Therapist:
    """Walks the CBT session structure: check-in, homework, agenda, work, homework, close."""

    def __init__(
        self, scene: Scene, messages: Sequence[ChatMessage], rng: random.Random, regenerating: bool
    ) -> None:
        self.scene = scene
        self.messages = messages
        self.rng = rng
        self.turn = _own_turns(messages)
        self.name = scene.patient.name.split()[0]
        self.last = _last_user(messages)
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
        sentences = [s for s in _sentences(self.last) if not s.endswith("?") and 4 <= _words(s) <= 30]
        if not sentences:
            return self.rng.choice(["Thank you for telling me that.", "I appreciate you sharing that."])
        picked = _lower_first(_strip_end(self.rng.choice(sentences)))
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
            topics = parse_sections(self.scene.previous_summary).get(SECTIONS[0], [])
            patient = self.scene.patient
            topic = (
                first_to_second(
                    third_to_first(_strip_end(topics[0]), patient.name, pronouns_of(patient.pronouns))
                )
                if topics
                else ""
            )
            bridge = (
                f" Last time we spent a good part of the session on {_lower_first(topic)}." if topics else ""
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
                f"{_lower_first(_strip_end(homework[0]))}. How did that go, and what did you notice?"
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
            f", which ties in with your goal to {first_to_second(_lower_first(_strip_end(self.rng.choice(goals))))}"
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
            f"{_closing_line(self.scene, self.rng)}"
        )


class _Patient:
    """Answers from the persona: problems, background, beliefs, notes, last homework."""

    def __init__(
        self, scene: Scene, messages: Sequence[ChatMessage], rng: random.Random, regenerating: bool
    ) -> None:
        self.scene = scene
        self.p: Patient = scene.patient
        self.rng = rng
        self.turn = _own_turns(messages)
        self.question = _last_user(messages).lower()
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
                    self.rng.choice(_sentences(self.p.background)), self.p.name, pronouns_of(self.p.pronouns)
                )
            )
        if self.brief:
            core = core[:2]
            if self.rng.random() < 0.5:
                core[0] = self.rng.choice(["Um, ", "I guess... ", "Yeah, "]) + _lower_first(core[0])
        return " ".join(core)

    def _pick(self, items: Sequence[str], fallback: str) -> str:
        return _strip_end(self.rng.choice(list(items))) if items else fallback

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
            core.append(f"The {_lower_first(problem)} has been there most days.")
        return self._voice(core)

    def _homework_report(self) -> str:
        homework = " ".join(parse_sections(self.scene.previous_summary).get("Homework assigned", []))
        task = next((label for key, label in _TECHNIQUES if key in homework.lower()), "the homework")
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
        wish = " and ".join(_lower_first(_strip_end(g)) for g in picked)
        return self._voice([f"I suppose I'd like to {wish}.", "I'm not sure that's realistic, though."])

    def _agenda(self) -> str:
        problem = self._pick(self.p.presenting_problems, "how stuck I feel")
        goal = self._pick(self.p.goals, "feel more like myself again")
        return self._voice(
            [
                f"I think I'd like to work on {_lower_first(problem)}.",
                f"What I really want is to {_lower_first(goal)}.",
            ]
        )

    def _thought(self) -> str:
        thoughts = self.p.extra.get("automatic_thoughts")
        thought = self._pick(
            [str(t) for t in thoughts] if isinstance(thoughts, list) else _as_list(self.p.core_beliefs),
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
            _as_list(self.p.intermediate_beliefs) or _as_list(self.p.core_beliefs),
            "I have to get everything right",
        )
        return self._voice(
            [
                f"Well, part of me really believes that {_lower_first(belief)}.",
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
        coping = self._pick(_as_list(self.p.coping_strategies), "keep busy")
        return self._voice(
            [
                "I could try it this week instead of falling back on the usual.",
                f"Normally I'd just {_lower_first(coping)}. That helps in the moment, but it doesn't really change anything.",
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
        for sentence in _sentences(self.p.personality or ""):
            options.append(
                ["I guess I've always been like that.", third_to_first(sentence, self.p.name, pronouns)]
            )
        for sentence in _sentences(self.p.background or ""):
            options.append(
                ["Can I say something about that?", third_to_first(sentence, self.p.name, pronouns)]
            )
        for coping in _as_list(self.p.coping_strategies):
            options.append(
                [
                    f"When it gets bad I tend to fall back on {_lower_first(_strip_end(coping))}.",
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


def _summarize(messages: Sequence[ChatMessage], scene: Scene) -> str:
    """Five sections extracted from the transcript the summarizer was given."""
    transcript = next((m.content for m in reversed(messages) if m.role == "user"), "")
    turns = re.findall(r"^(Patient|Therapist): (.*?)(?=^(?:Patient|Therapist): |\Z)", transcript, re.M | re.S)
    turns = turns[1:] if turns and turns[0][0] == "Patient" else turns  # the opening is a template
    patient_sents = [s for speaker, text in turns if speaker == "Patient" for s in _sentences(text)]
    therapist_sents = [s for speaker, text in turns if speaker == "Therapist" for s in _sentences(text)]
    name = scene.patient.name.split()[0]
    pronouns = pronouns_of(scene.patient.pronouns)

    def reported(sentence: str) -> str:
        text = first_to_third(_strip_end(sentence), pronouns)
        return _capital(re.sub(rf"^{pronouns.subject}\b", name, text))

    topics = [
        _capital(first_to_third(_strip_end(m), pronouns))
        for s in patient_sents
        for m in re.findall(r"(?:work on|talk about|focus on) (.+)", s)
    ]
    topics += [
        "Brought up: " + first_to_third(_strip_end(s.split(": ", 1)[1]), pronouns)
        for s in patient_sents
        if "should mention: " in s
    ]
    therapist_text = " ".join(therapist_sents).lower()
    techniques = list(dict.fromkeys(label for key, label in _TECHNIQUES if key in therapist_text))
    helpful = [
        reported(s) for s in patient_sents if re.search(r"\bhelp(ed|s|ful)?\b|less huge|makes sense", s, re.I)
    ]
    homework = [
        _capital(second_to_third(_strip_end(re.sub(r"^.*?\bI'd like you to\s+", "", s)), pronouns))
        for s in therapist_sents
        if re.search(r"\bI'd like you to\b|\bfor homework\b", s, re.I)
    ]
    insights = [
        reported(s)
        for s in patient_sents
        if re.search(r"\bI realize|\bif I'm being fair|\bI noticed\b", s, re.I)
    ]
    sections = {
        SECTIONS[0]: _dedupe(topics)[:4],
        SECTIONS[1]: [_capital(t) for t in techniques[:4]],
        SECTIONS[2]: _dedupe(helpful)[:3],
        SECTIONS[3]: _dedupe(homework)[:3],
        SECTIONS[4]: _dedupe(insights)[:3],
    }
    return format_sections(sections)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
