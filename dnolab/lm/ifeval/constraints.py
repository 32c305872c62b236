"""Verifiable constraints (IFEval-style): how each is phrased, checked and read back from a prompt.

Each kind has one fixed English sentence, so a judge that receives only the prompt text can
recover the constraints exactly (``parse_constraints``), and one programmatic checker.

Rules shared by every checker (stated once, here):

* a *word* is a run of letters or digits, with inner apostrophes (``don't``); markup such as
  ``*``, ``<<``, ``>>`` and punctuation are not words;
* an answer with no words meets no constraint (an empty answer is not "all lowercase");
* the answer is stripped of surrounding whitespace before its start and end are checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from ..data import DNOInputError

WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
TITLE_RE = re.compile(r"<<[^<>\n]*[A-Za-z0-9][^<>\n]*>>")
BULLET_RE = re.compile(r"^[ \t]*\* \S", re.MULTILINE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n+")


def words(text: str) -> list[str]:
    """The words of a text (see the module's rules)."""
    return WORD_RE.findall(text)


def count_sentences(text: str) -> int:
    """Sentences: pieces ended by ``.``, ``!``, ``?`` or a line break that hold a word; a title
    ``<<...>>`` is not a sentence. (Abbreviations such as "e.g." are over-counted.)"""
    text = TITLE_RE.sub("\n", text)
    return sum(1 for piece in _SENTENCE_SPLIT.split(text) if WORD_RE.search(piece))


def only_questions(text: str) -> bool:
    """True if every sentence of the answer is a question ("What would you like to know about
    running?"): it asks back instead of answering, which meets "end with a question mark"
    without doing the task. Sentences as in ``count_sentences``."""
    text = TITLE_RE.sub("\n", text)
    pieces = [piece.strip().rstrip("\"'”’)]") for piece in _SENTENCE_SPLIT.split(text) if WORD_RE.search(piece)]
    return bool(pieces) and all(piece.endswith("?") for piece in pieces)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


def _first_word(text: str) -> str:
    match = WORD_RE.search(text)
    return match.group(0) if match else ""


# Each checker gets the stripped answer (which has at least one word) and the parameter.
_CHECKS: dict[str, Callable[[str, object], bool]] = {
    "lowercase": lambda r, _: not any(c.isupper() for c in r),
    "uppercase": lambda r, _: not any(c.islower() for c in r),
    "max_words": lambda r, n: len(words(r)) <= n,
    "min_sentences": lambda r, n: count_sentences(r) >= n,
    "end_question": lambda r, _: r.endswith("?"),
    "end_phrase": lambda r, phrase: r.endswith(phrase),
    "include_word": lambda r, word: _has_word(r, word),
    "start_word": lambda r, word: _first_word(r).lower() == str(word).lower(),
    "no_commas": lambda r, _: "," not in r,
    "bullets": lambda r, n: len(BULLET_RE.findall(r)) == n,
    "title": lambda r, _: TITLE_RE.search(r) is not None,
    "quotation": lambda r, _: len(r) >= 2 and r[0] in "\"“" and r[-1] in "\"”",
}


@dataclass(frozen=True)
class Kind:
    """One constraint kind: its parameter name (or None), its sentence and generation choices."""

    name: str
    param: str | None
    template: str
    choices: tuple = ()
    rule: str = ""

    @property
    def pattern(self) -> re.Pattern:
        """The template as a regex; the parameter becomes a capture group."""
        groups = {"n": r"(\d+)", "word": r'"([A-Za-z]+)"', "phrase": r'"([^"\n]+)"'}
        if self.param is None:
            return re.compile(re.escape(self.template))
        before, after = self.template.split("{" + self.param + "}")
        quoted = self.param != "n"
        if quoted:  # the quotes are part of the group's pattern
            before, after = before[:-1], after[1:]
        return re.compile(re.escape(before) + groups[self.param] + re.escape(after))


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("lowercase", None, "Use only lowercase letters.", rule="no capital letter anywhere"),
    Kind("uppercase", None, "Write your entire answer in capital letters.",
         rule="no small letter anywhere"),
    Kind("max_words", "n", "Answer in at most {n} words.", (12, 15, 20, 25, 30, 40),
         rule="number of words <= n"),
    Kind("min_sentences", "n", "Write at least {n} sentences.", (2, 3),
         rule="count_sentences >= n"),
    Kind("end_question", None, "End your answer with a question mark.",
         rule="last character is '?'"),
    Kind("end_phrase", "phrase", 'End your answer with the exact phrase "{phrase}".',
         ("Thank you for reading.", "That is all for now.", "Hope this helps.",
          "Is there anything else I can help with?", "Have a nice day."),
         rule="ends with the phrase, exactly (case and punctuation)"),
    Kind("include_word", "word", 'Include the word "{word}".',
         ("history", "simple", "curious", "friends", "practice", "future", "nature",
          "patience", "weekend", "science", "story", "surprising"),
         rule="the word appears as a whole word, any case"),
    Kind("start_word", "word", 'Start your answer with the word "{word}".',
         ("Today", "Many", "Learning", "Here", "There", "Everyone", "Honestly", "People",
          "Imagine", "Curiosity"),
         rule="the first word, any case, ignoring leading punctuation"),
    Kind("no_commas", None, "Do not use any commas.", rule="no ',' anywhere"),
    Kind("bullets", "n", 'Use exactly {n} bullet points, each on its own line starting with "* ".',
         (2, 3, 4), rule="exactly n lines that start with '* ' and a non-space"),
    Kind("title", None, "Give your answer a title wrapped in double angle brackets, like <<title>>.",
         rule="contains <<...>> with a word inside, on one line"),
    Kind("quotation", None, "Wrap your entire answer in double quotation marks.",
         rule="first and last characters are double quotes"),
)}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)

# Pairs that cannot (or can hardly) both hold, never put in one prompt. Case-sensitive phrase
# endings clash with case rules; a closing quote clashes with a required last character; a
# quote before the first bullet breaks that bullet's line; "first word" is ambiguous under a
# title or a bullet marker; a sentence count is ambiguous over bullets.
INCOMPATIBLE: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in (
    ("lowercase", "uppercase"), ("lowercase", "end_phrase"), ("uppercase", "end_phrase"),
    ("end_question", "end_phrase"), ("end_question", "quotation"), ("end_phrase", "quotation"),
    ("bullets", "quotation"), ("bullets", "min_sentences"), ("bullets", "start_word"),
    ("title", "start_word"),
))


def compatible(kinds: Iterable[str]) -> bool:
    """True if no two of the kinds are an incompatible pair (and none repeats)."""
    kinds = list(kinds)
    if len(set(kinds)) != len(kinds):
        return False
    return not any(frozenset((a, b)) in INCOMPATIBLE for i, a in enumerate(kinds) for b in kinds[i + 1:])


def _unknown_kind(kind) -> DNOInputError:
    return DNOInputError(f"unknown constraint kind {kind!r}; the checker knows: {', '.join(KIND_NAMES)}")


@dataclass(frozen=True)
class Constraint:
    """One verifiable constraint: a kind and its parameter (``value``: n, word or phrase)."""

    kind: str
    value: int | str | None = None

    def __post_init__(self):
        spec = KINDS.get(self.kind)
        if spec is None:
            raise _unknown_kind(self.kind)
        if spec.param is None and self.value is not None:
            raise DNOInputError(f"constraint {self.kind!r} takes no parameter, got {self.value!r}")
        if spec.param == "n" and not (isinstance(self.value, int) and not isinstance(self.value, bool)
                                      and self.value > 0):
            raise DNOInputError(f"constraint {self.kind!r} needs a positive integer n, got {self.value!r}")
        if spec.param == "word" and not (isinstance(self.value, str) and self.value.isalpha()):
            raise DNOInputError(f"constraint {self.kind!r} needs one word of letters, got {self.value!r}")
        if spec.param == "phrase" and not (isinstance(self.value, str) and self.value.strip()
                                           and '"' not in self.value and "\n" not in self.value):
            raise DNOInputError(
                f"constraint {self.kind!r} needs a one-line phrase without double quotes, got {self.value!r}")

    @property
    def params(self) -> dict:
        spec = KINDS[self.kind]
        return {} if spec.param is None else {spec.param: self.value}

    def describe(self) -> str:
        """The instruction sentence as it appears in a prompt."""
        return KINDS[self.kind].template.format(**self.params)

    def check(self, response: str) -> bool:
        """Does the answer meet the constraint (rules in the module docstring and ``KINDS``)?"""
        text = (response or "").strip()
        if not WORD_RE.search(text):
            return False
        return bool(_CHECKS[self.kind](text, self.value))

    def to_spec(self) -> dict:
        return {"kind": self.kind, **self.params}


def constraints_from_spec(spec: Iterable[Mapping]) -> list[Constraint]:
    """``[{"kind": "max_words", "n": 20}, {"kind": "no_commas"}]`` → constraints, validated."""
    out = []
    for item in spec:
        if not isinstance(item, Mapping) or "kind" not in item:
            raise DNOInputError(f"a constraint spec is a mapping with a 'kind' key, got {item!r}")
        kind = item["kind"]
        if kind not in KINDS:
            raise _unknown_kind(kind)
        expected = {"kind"} | ({KINDS[kind].param} if KINDS[kind].param else set())
        extra, missing = set(item) - expected, expected - set(item)
        if extra or missing:
            raise DNOInputError(f"constraint {kind!r} takes the keys {sorted(expected)}; got {sorted(item)}")
        param = KINDS[kind].param
        out.append(Constraint(kind, item[param] if param else None))
    return out


@lru_cache(maxsize=65536)
def _parse(prompt: str) -> tuple[Constraint, ...]:
    found = []
    for kind in KINDS.values():
        for match in kind.pattern.finditer(prompt):
            value = None
            if kind.param == "n":
                value = int(match.group(1))
            elif kind.param:
                value = match.group(1)
            found.append((match.start(), Constraint(kind.name, value)))
    return tuple(c for _, c in sorted(found, key=lambda x: x[0]))


def parse_constraints(prompt: str) -> list[Constraint]:
    """The constraints stated in a prompt, in the order they appear (cached per prompt)."""
    return list(_parse(prompt))


def constraints_met(prompt: str, response: str) -> list[bool]:
    """For each constraint of the prompt, whether the answer meets it."""
    return [c.check(response) for c in _parse(prompt)]
