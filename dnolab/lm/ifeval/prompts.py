"""Prompts (topics × tasks × constraints) and the teacher that answers them.

A prompt is one request sentence about a topic followed by one or two constraint sentences:
``Share a fun fact about volcanoes. Use only lowercase letters. Answer in at most 20 words.``

**The teacher** writes a templated answer about the topic (fluent, ordinary English, ending
with a full stop, a question mark or the required phrase) built to meet the prompt's
constraints, with two stated, systematic lapses (``TEACHER_LAPSES``) so that a student can
surpass it: it always writes in sentence case, so it never meets ``lowercase``; and on half
of the bullet prompts (those whose stable hash is even) it writes one bullet too many. All
other constraints it meets by construction (checked by the tests).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from ..data import DNOInputError
from .constraints import KIND_NAMES, KINDS, Constraint, compatible, parse_constraints, words

HELDOUT_KINDS: tuple[str, ...] = ("end_phrase", "quotation")
"""Kinds kept out of training altogether: both ask for something a trained kind resembles
(end with a given string, like ``end_question``; wrap the answer in markers, like ``title``),
so improving on them shows a skill that generalises rather than a memorised checker."""

TEACHER_LAPSES: dict[str, float] = {"lowercase": 1.0, "bullets": 0.5}
"""Kind → share of its prompts on which the teacher gets it wrong (lowercase: writes in sentence
case; bullets: one bullet too many). Which prompts: a stable hash of the prompt text."""

TOPICS: tuple[str, ...] = (
    "honeybees", "volcanoes", "the moon", "coffee", "chess", "bicycles", "rainforests",
    "the ocean", "penguins", "gardening", "photography", "jazz music", "thunderstorms",
    "libraries", "trains", "dinosaurs", "tea", "mountains", "deserts", "rivers", "coral reefs",
    "the solar system", "robots", "electric cars", "recycling", "sleep", "dogs", "cats", "owls",
    "whales", "butterflies", "baking bread", "board games", "football", "swimming", "running",
    "yoga", "painting", "poetry", "museums", "castles", "ancient Egypt", "maps", "clocks",
    "bridges", "airplanes", "rockets", "the internet", "video games", "comic books", "kites",
    "snow", "rainbows", "autumn leaves", "camping", "hiking", "birdwatching", "fishing",
    "sailing", "islands", "lighthouses", "city parks", "farmers markets", "apples", "chocolate",
    "cheese", "honey", "rice", "mushrooms", "forests", "glaciers", "earthquakes", "tides",
    "stars", "comets", "telescopes", "microscopes", "magnets", "batteries", "solar panels",
    "wind turbines", "pianos", "guitars", "drums", "dancing", "knitting", "pottery", "origami",
    "street food", "picnics", "friendship", "learning languages", "writing letters",
    "public transport", "frogs", "sunflowers", "bats", "caves", "waterfalls", "puzzles",
)

TASKS: tuple[str, ...] = (
    "Write a short note about {topic}.",
    "Tell me something interesting about {topic}.",
    "Give a beginner some advice about {topic}.",
    "Share a fun fact about {topic}.",
    "Explain what makes {topic} special.",
    "Describe {topic} in simple words.",
)
_TASK_RES = tuple(re.compile("^" + re.escape(t).replace(re.escape("{topic}"), "(?P<topic>[^.]+?)"))
                  for t in TASKS)
_STOP = frozenset("a an the and or of in on to for with about some what makes me my your is are "
                  "be it its this that tell give write share explain describe short note simple "
                  "words something interesting beginner advice fun fact special".split())


def prompt_topic(prompt: str) -> str | None:
    """The topic of a prompt made by ``make_prompt``; None for other prompts."""
    for pattern in _TASK_RES:
        match = pattern.match(prompt.strip())
        if match:
            return match.group("topic")
    return None


def topic_keywords(prompt: str) -> tuple[str, ...]:
    """Lower-case content words that name the prompt's subject (its topic when known, else the
    words of its request once the constraint sentences are removed)."""
    topic = prompt_topic(prompt)
    if topic is None:
        topic = prompt
        for kind in KINDS.values():
            topic = kind.pattern.sub(" ", topic)
    return tuple(dict.fromkeys(w.lower() for w in words(topic)
                               if w.lower() not in _STOP and len(w) >= 3))


def make_prompt(task: str, topic: str, constraints: Sequence[Constraint]) -> str:
    return " ".join([task.format(topic=topic), *(c.describe() for c in constraints)])


# --- the teacher --------------------------------------------------------------------------------

_OPENERS = (
    "Many people enjoy learning about {topic}.",
    "There is always something new to discover about {topic}.",
    "A good library book is a great way to start with {topic}.",
    "Talking with friends about {topic} can be a lot of fun.",
    "Even experts keep finding new things to say about {topic}.",
    "Reading a little every day helps you understand {topic} better.",
    "Museums and videos can make {topic} easy to picture.",
    "Asking simple questions is the best way to learn about {topic}.",
)
_FILLERS = (
    "The subject rewards patience and curiosity.",
    "Start small and build up your knowledge step by step.",
    "A few good questions will take you a long way.",
    "Sharing what you learn makes it even more enjoyable.",
    "Writing down new facts helps you remember them.",
    "Every small discovery makes the next one easier.",
)
_STARTS = {
    "Today": "Today we take a quick look at {topic}.",
    "Many": "Many people enjoy learning about {topic}.",
    "Learning": "Learning about {topic} is a rewarding hobby.",
    "Here": "Here is a short note about {topic}.",
    "There": "There is a lot to know about {topic}.",
    "Everyone": "Everyone can find something to like about {topic}.",
    "Honestly": "Honestly there is nothing boring about {topic}.",
    "People": "People have been curious about {topic} for a long time.",
    "Imagine": "Imagine spending a whole day exploring {topic}.",
    "Curiosity": "Curiosity is the best guide to {topic}.",
}
_INCLUDES = {
    "history": "The history behind it is full of surprises.",
    "simple": "Even simple questions can lead to great answers.",
    "curious": "Stay curious and keep asking questions.",
    "friends": "Exploring the subject with friends makes it more fun.",
    "practice": "A little practice every day makes a big difference.",
    "future": "There will always be more to learn in the future.",
    "nature": "Nature and everyday life are full of examples.",
    "patience": "Patience helps when something seems hard at first.",
    "weekend": "A free weekend is a perfect time to start.",
    "science": "Science helps us understand how it all works.",
    "story": "Every expert has a story about how they started.",
    "surprising": "Some of the facts are truly surprising.",
}
_QUESTIONS = (
    "Would you like to learn more about {topic}?",
    "What would you like to know about {topic}?",
    "Have you ever thought about {topic} before?",
)
_BULLETS = (
    "Read a short book about {topic}.",
    "Watch a video about {topic}.",
    "Ask an expert about {topic}.",
    "Visit a museum or join a club.",
    "Keep notes as you learn.",
    "Share what you find with friends.",
)
_TITLES = ("All About {topic}", "A Short Note on {topic}", "Notes on {topic}")


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's ``hash`` of a str is salted)."""
    return zlib.crc32(text.encode("utf-8"))


def lapses(prompt: str) -> set[str]:
    """The kinds the teacher gets wrong on this prompt (``TEACHER_LAPSES``)."""
    kinds = {c.kind for c in parse_constraints(prompt)}
    h = stable_hash(prompt)
    return {k for k, share in TEACHER_LAPSES.items() if k in kinds and (h % 1000) < share * 1000}


def teacher_answer(prompt: str, with_lapses: bool = True) -> str:
    """The gold answer: a templated answer about the topic that meets the prompt's constraints,
    except for the teacher's lapses (``TEACHER_LAPSES``) unless ``with_lapses`` is False."""
    topic = prompt_topic(prompt)
    if topic is None:
        raise DNOInputError(f"the teacher answers only prompts made by make_prompt; got {prompt[:80]!r}")
    cons = {c.kind: c.value for c in parse_constraints(prompt)}
    forgot = lapses(prompt) if with_lapses else set()
    rng = np.random.default_rng(stable_hash(prompt))

    def pick(options):
        return options[int(rng.integers(len(options)))].format(topic=topic)

    first = _STARTS[cons["start_word"]].format(topic=topic) if "start_word" in cons else pick(_OPENERS)
    include = [_INCLUDES[cons["include_word"]]] if "include_word" in cons else []
    question = [pick(_QUESTIONS)] if "end_question" in cons else []
    phrase = [cons["end_phrase"]] if "end_phrase" in cons else []
    title = ([f"<<{_TITLES[int(rng.integers(len(_TITLES)))].format(topic=topic.title())}>>"]
             if "title" in cons else [])
    limit = cons.get("max_words", 10**9)

    if "bullets" in cons:
        n = cons["bullets"] + (1 if "bullets" in forgot else 0)
        shuffled = [str(b).format(topic=topic) for b in rng.permutation(_BULLETS)]
        topical = next(b for b in shuffled if topic in b)  # one bullet always names the topic
        items = [*include, topical, *(b for b in shuffled if b != topical)][:n]
        if question:
            items[-1] = question[0]
        lines = [*title, *(f"* {item}" for item in items), *phrase]
        text = "\n".join(lines)
    else:
        fillers = [str(f) for f in rng.permutation(_FILLERS) if f not in include]
        wanted = max(cons.get("min_sentences", 0), 2 + int(rng.integers(2)))
        body = [first, *include]
        while len(body) + len(question) + len(phrase) < wanted:
            body.append(fillers.pop())
        def render(parts):
            return "\n".join([*title, " ".join(parts)]) if title else " ".join(parts)

        # Drop fillers to fit a word limit; the opener (which names the topic) always stays.
        while len(words(render([*body, *question, *phrase]))) > limit and len(body) > 1 + len(include):
            body.pop()
        text = render([*body, *question, *phrase])
    if "uppercase" in cons:
        text = text.upper()
    if "lowercase" in cons and "lowercase" not in forgot:
        text = text.lower()
    if "quotation" in cons:
        text = f'"{text}"'
    return text


# --- the prompt table ---------------------------------------------------------------------------

def _random_constraint(kind: str, rng: np.random.Generator) -> Constraint:
    choices = KINDS[kind].choices
    return Constraint(kind, choices[int(rng.integers(len(choices)))] if choices else None)


def make_prompt_table(n: int, seed: int, heldout_kinds: Sequence[str] = HELDOUT_KINDS,
                      two_constraint_share: float = 0.5) -> list[dict]:
    """``n`` distinct prompts with gold answers: ``{prompt, gold, kinds, heldout}`` rows.

    Deterministic for a seed. Each prompt draws a task, a topic and one constraint, or two
    (with probability ``two_constraint_share``) of compatible kinds, uniformly over all kinds.
    A combination is kept only if an answer meeting all of it exists, i.e. the teacher's answer
    without lapses meets it (this drops, e.g., 12 words with three bullets). ``heldout`` flags
    prompts with a held-out kind; the engine routes those to evaluation only.
    """
    unknown = [k for k in heldout_kinds if k not in KINDS]
    if unknown:
        raise DNOInputError(f"unknown held-out constraint kind(s) {unknown}; known: {', '.join(KIND_NAMES)}")
    if not 0.0 <= two_constraint_share <= 1.0:
        raise DNOInputError(f"two_constraint_share must be in [0, 1], got {two_constraint_share}")
    if n < 0:
        raise DNOInputError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, 11])
    rows, seen = [], set()
    for _ in range(100 * n + 1000):
        if len(rows) == n:
            break
        k = 2 if rng.random() < two_constraint_share else 1
        kinds = [KIND_NAMES[i] for i in rng.choice(len(KIND_NAMES), size=k, replace=False)]
        if not compatible(kinds):
            continue
        task, topic = TASKS[int(rng.integers(len(TASKS)))], TOPICS[int(rng.integers(len(TOPICS)))]
        constraints = [_random_constraint(kind, rng) for kind in kinds]
        prompt = make_prompt(task, topic, constraints)
        if prompt in seen or not all(c.check(teacher_answer(prompt, with_lapses=False)) for c in constraints):
            continue
        seen.add(prompt)
        rows.append({"prompt": prompt, "gold": teacher_answer(prompt), "kinds": kinds,
                     "heldout": any(kind in heldout_kinds for kind in kinds)})
    if len(rows) < n:
        raise DNOInputError(f"could only make {len(rows)} distinct prompts of the {n} asked for")
    return rows
