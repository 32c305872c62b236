"""A second teacher: the student's own answer, corrected to meet the prompt's constraints.

Why: the templated teacher (``teacher_answer``) writes text the student would almost never
write (``* READ A SHORT BOOK ABOUT KITES.``), so a pair "template ≻ student" differs in every
token and says little about *which* change made the answer better. This teacher takes one of
the student's K answers and changes only what the constraints need (capitals, a title, a
closing question, a start word, commas, a word limit, bullets), so the chosen and the rejected
answer of a pair are close and differ mostly in what the judge rewards: nearly on-policy gold.

It keeps the templated teacher's lapses (``TEACHER_LAPSES``: never lowercase, one bullet too
many on half of the bullet prompts) so that the student can still surpass it, and it falls back
to the templated answer when no correction of any sample meets the constraints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .constraints import _SENTENCE_SPLIT, _has_word, parse_constraints, words
from .prompts import (
    _BULLETS,
    _FILLERS,
    _INCLUDES,
    _OPENERS,
    _QUESTIONS,
    _STARTS,
    _TITLES,
    lapses,
    prompt_topic,
    stable_hash,
)

_MARKER = re.compile(r"^[ \t]*(\* |\d+\. |- )", re.MULTILINE)  # a bullet or list number
_ANY_TITLE = re.compile(r"<<[^<>\n]*>>")
_ENDS = re.compile(r"[.!?]$")
_LETTER = re.compile(r"[A-Za-z]")


def answer_sentences(answer: str, finished: bool) -> list[str]:
    """The answer as complete sentences: list markers and titles removed, an answer cut at the
    token limit loses its unfinished last sentence, and every sentence ends with ``.!?``."""
    text = _ANY_TITLE.sub(" ", _MARKER.sub("", answer))
    pieces = [p.strip() for p in _SENTENCE_SPLIT.split(text) if p and _LETTER.search(p)]
    if not finished and pieces and not _ENDS.search(pieces[-1]):
        pieces = pieces[:-1]
    pieces = [p.rstrip(" :;,-*") for p in pieces]
    return [p if _ENDS.search(p) else p + "." for p in pieces if _LETTER.search(p)]


def corrected_answer(prompt: str, answer: str, finished: bool = True) -> str:
    """``answer`` changed as little as this program can to meet ``prompt``'s constraints, except
    the teacher's lapses on this prompt. Not guaranteed to meet them (check the result)."""
    topic = prompt_topic(prompt)
    cons = {c.kind: c.value for c in parse_constraints(prompt)}
    forgot = lapses(prompt)
    rng = np.random.default_rng(stable_hash(prompt + answer))

    def pick(options):
        return options[int(rng.integers(len(options)))].format(topic=topic)

    body = answer_sentences(answer, finished) or [pick(_OPENERS)]
    if "start_word" in cons:
        body = [_STARTS[cons["start_word"]].format(topic=topic), *body]
    if "include_word" in cons and not any(_has_word(s, cons["include_word"]) for s in body):
        body = [*body[:1], _INCLUDES[cons["include_word"]], *body[1:]]
    question = [pick(_QUESTIONS)] if "end_question" in cons else []
    if "bullets" in cons:
        n = cons["bullets"] + (1 if "bullets" in forgot else 0)
        items = [*body, *(b.format(topic=topic) for b in _BULLETS)][:n]
        if question:
            items[-1] = question[0]
        text = "\n".join(f"* {item}" for item in items)
    else:
        fillers = list(_FILLERS)
        while len(body) + len(question) < cons.get("min_sentences", 0):
            body.append(fillers.pop())
        limit = cons.get("max_words", 10**9)
        keep = 1 + ("include_word" in cons and "start_word" in cons)  # sentences that carry a constraint
        while len(words(" ".join(body + question))) > limit and len(body) > keep:
            body.pop()
        text = " ".join(body + question)
        if len(words(text)) > limit:  # one long sentence left: cut it at the limit
            text = " ".join(re.findall(r"\S+", text)[:limit]).rstrip(",;:") + ("?" if question else ".")
    if "title" in cons:
        text = f"<<{_TITLES[int(rng.integers(len(_TITLES)))].format(topic=topic.title())}>>\n{text}"
    if "no_commas" in cons:
        text = text.replace(",", "")
    if "uppercase" in cons:
        text = text.upper()
    if "lowercase" in cons and "lowercase" not in forgot:
        text = text.lower()
    return text


def correcting_teacher(prompt: str, answers: Sequence[str], finished: Sequence[bool],
                       fallback: str) -> tuple[str, bool]:
    """The gold answer for one prompt: the correction of the student answer that already meets
    the most constraints (then: finished, at least six words, first drawn) whose correction
    meets them all but the lapses; else ``fallback`` (the templated answer). Returns (answer,
    whether it is a correction)."""
    constraints = parse_constraints(prompt)
    forgot = lapses(prompt)

    def order(i):
        return (-sum(c.check(answers[i]) for c in constraints), not finished[i], len(words(answers[i])) < 6, i)

    for i in sorted(range(len(answers)), key=order):
        gold = corrected_answer(prompt, answers[i], finished[i])
        if all(c.check(gold) or c.kind in forgot for c in constraints):
            return gold, True
    return fallback, False
