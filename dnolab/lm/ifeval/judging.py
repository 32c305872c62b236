"""The training judge (an annotator panel) and the held-out judge for the instruction task.

Both have the duck-typed interface of ``dnolab.lm.judges`` (``name``, ``invalid_count``,
``preference``) plus ``sees_finished = True``: the engine passes ``first_finished`` and
``second_finished`` (False = the answer was cut at ``max_new_tokens`` instead of ending with
EOS), and ``response_metrics`` for each iteration's ``metrics.json``.

Per answer a (to prompt x), computed once per call for each distinct (x, a):

* ``met(a)``: share of x's constraints that a meets (1 when x states none);
* ``cut(a)``: 1 if a was cut, else 0;
* ``real(a)``: share of a's words found in pyspellchecker's bundled English word list
  (numbers count as real; a trailing possessive or plural ``s``/``es`` is tried off; single
  letters other than "a" and "I" are not words);
* ``common(a)``: mean over words of log10(1 + corpus frequency) from the same list (0 for
  words not in it): plain, common wording scores high;
* ``mentions(a)``: how many of a's words name the prompt's topic (the same stem as a topic
  word once a plural ``s``/``es`` is off, or the same first 5 letters), capped at 3;
* ``asks_back(a)``: every sentence of a is a question (``only_questions``): it asks the user
  back instead of doing the task, which every task here asks for ("Write…", "Tell me…").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ...intransitivity import cyclic_triple_share
from .constraints import constraints_met, only_questions, parse_constraints, words
from .prompts import HELDOUT_KINDS, topic_keywords

# --- features -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _dictionary() -> dict[str, int]:
    """pyspellchecker's English word → corpus frequency table (shipped with its wheel)."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en", distance=1).word_frequency.dictionary


@lru_cache(maxsize=262144)
def _frequency(word: str) -> int:
    d = _dictionary()
    w = word.lower().replace("’", "'")
    if w.isdigit():
        return 10**6  # numbers are real words, and common
    if len(w) == 1:
        return d.get(w, 0) if w in ("a", "i") else 0
    for candidate in (w, w[:-2] if w.endswith("'s") else "", w[:-1] if w.endswith("s") else "",
                      w[:-2] if w.endswith("es") else ""):
        if candidate and candidate in d:
            return d[candidate]
    return 0


@lru_cache(maxsize=262144)
def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=65536)
def _topic_matchers(prompt: str) -> tuple[frozenset[str], frozenset[str]]:
    keywords = topic_keywords(prompt)
    return (frozenset(_stem(k) for k in keywords),
            frozenset(k[:5] for k in keywords if len(_stem(k)) >= 5))


def _mentions_topic(word: str, prompt: str) -> bool:
    """Same stem as a topic word (a plural ``s``/``es`` off), or the same first 5 letters."""
    stems, prefixes = _topic_matchers(prompt)
    return _stem(word) in stems or word[:5].lower() in prefixes


@dataclass(frozen=True)
class Features:
    """What both judges know about one answer to one prompt (see the module docstring)."""

    met: tuple[bool, ...]
    n_words: int
    real: float
    common: float
    mentions: int
    distinct: float
    asks_back: bool

    @property
    def met_share(self) -> float:
        return float(np.mean(self.met)) if self.met else 1.0


@lru_cache(maxsize=131072)
def features(prompt: str, response: str) -> Features:
    """The ``Features`` of one answer (cached: the judges see each answer in many pairs)."""
    ws = words(response or "")
    n = len(ws)
    freqs = [_frequency(w) for w in ws]
    return Features(
        met=tuple(constraints_met(prompt, response)),
        n_words=n,
        real=sum(f > 0 for f in freqs) / n if n else 0.0,
        common=sum(math.log10(1 + f) for f in freqs) / n if n else 0.0,
        mentions=min(3, sum(_mentions_topic(w, prompt) for w in ws)),
        distinct=len({w.lower() for w in ws}) / n if n else 0.0,
        asks_back=only_questions(response or ""),
    )


SUBSTANCE_WORDS = 5      # fewer words than this scale the sense score down (a 2-word answer: 0.4)
OFF_TOPIC_FACTOR = 0.5   # the sense score of an answer that never names the topic is halved
REPETITION_SHARE = 0.5   # distinct-word share below this scales sense down (a word said 6 times: 1/3)
ASKS_BACK_FACTOR = 0.5   # the sense score of an answer made only of questions is halved


def sense(f: Features) -> float:
    """Sense score in [0, 1]: real × substance × topic × variety × answers, where real = share of
    real words, substance = min(1, words / 5), topic = 1 if the topic is named else 0.5,
    variety = min(1, distinct share / 0.5), answers = 0.5 if the answer only asks back else 1.
    Nonsense words, two-word answers, off-topic answers, repetition and a question in place of
    an answer each lower it; a fluent on-topic answer of five or more words scores 1."""
    substance = min(1.0, f.n_words / SUBSTANCE_WORDS)
    topic = 1.0 if f.mentions else OFF_TOPIC_FACTOR
    variety = min(1.0, f.distinct / REPETITION_SHARE)
    answers = ASKS_BACK_FACTOR if f.asks_back else 1.0
    return f.real * substance * topic * variety * answers


def _finished(flags, n: int) -> np.ndarray:
    if flags is None:
        return np.ones(n, dtype=bool)
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != (n,):
        raise ValueError(f"expected {n} finished flags, got shape {flags.shape}")
    return flags


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _table(prompts, responses) -> list[Features]:
    return [features(p, r) for p, r in zip(prompts, responses, strict=True)]


# --- the training judge: a panel ------------------------------------------------------------------

@dataclass
class PanelJudge:
    """P(a ≻ b | x) = σ(k·(q(a) − q(b)) + c·vote(a, b)), the training judge.

    Transitive part: q = met − cut_penalty·cut − nonsense_penalty·(1 − real) −
    off_topic_penalty·[never names the topic] − stub_penalty·[fewer than ``stub_words`` words]
    − ask_back_penalty·[only questions]: the share of constraints met, less a penalty for an
    answer that never ends, for non-words (no credit for instructions met with gibberish), for
    an answer that is not about the topic, for a stub and for a question in place of an answer
    (any panel marks those down; without the topic and stub terms a first DNO iteration
    learned to answer "Bathroom Cleaning @Lomborg" to "use only lowercase letters", and the
    held-out judge's sense score fell; without the last, three iterations learned to meet "end
    with a question mark" by asking "What do you need to know about running?" on 82–90 % of
    such prompts over three seeds, against 7–19 % at the start). Intransitive part: three annotators
    vote, each by its own criterion, and ``vote`` is the sign of their sum (the majority; an
    annotator abstains on a tie or a difference under its margin):

    * *concise*: the answer with fewer words, if shorter by at least ``brevity_margin`` words;
    * *on topic*: the answer that names the topic more often (``mentions``, capped at 3);
    * *plain wording*: the answer with the higher ``common``, by at least ``common_margin``.

    A majority over three criteria makes Condorcet cycles (a ≻ b ≻ c ≻ a) where the criteria
    rank answers in rotated orders, as real annotator panels do. With k = 2 and c = 1.5 a
    majority can overrule half a constraint or a cut (k·½ = 1 < 1.5) but not a whole constraint
    (k·1 = 2 > 1.5); when no annotator has a preference, a cut answer loses to the same answer
    finished (P = σ(−1) = 0.27). A cut penalty the panel could never overrule would leave the
    cut half of a starting model's samples on levels of their own and erase almost every cycle.
    """

    quality_weight: float = 2.0
    vote_weight: float = 1.5
    cut_penalty: float = 0.5
    nonsense_penalty: float = 1.0
    off_topic_penalty: float = 0.5
    stub_penalty: float = 0.5
    stub_words: int = 5
    ask_back_penalty: float = 1.0
    brevity_margin: int = 2
    common_margin: float = 0.1
    heldout_kinds: tuple[str, ...] = HELDOUT_KINDS
    name: str = "ifeval-panel"
    sees_finished = True
    invalid_count: int = field(default=0, init=False)

    def quality(self, prompts, responses, finished=None) -> np.ndarray:
        """q per answer (the transitive part)."""
        fs = _table(prompts, responses)
        cut = ~_finished(finished, len(fs))
        return np.array([f.met_share - self.nonsense_penalty * (1.0 - f.real)
                         - self.off_topic_penalty * (f.mentions == 0) - self.stub_penalty * (f.n_words < self.stub_words)
                         - self.ask_back_penalty * f.asks_back
                         for f in fs]).reshape(len(fs)) - self.cut_penalty * cut

    def votes(self, fa: Sequence[Features], fb: Sequence[Features]) -> np.ndarray:
        """Each annotator's vote per pair, columns brevity, relevance, plain wording:
        +1 for a, −1 for b, 0 to abstain."""
        def column(fs, name):
            return np.array([getattr(f, name) for f in fs], dtype=float).reshape(len(fs))

        d_words = column(fb, "n_words") - column(fa, "n_words")
        d_common = column(fa, "common") - column(fb, "common")
        return np.stack([
            np.where(np.abs(d_words) >= self.brevity_margin, np.sign(d_words), 0.0),
            np.sign(column(fa, "mentions") - column(fb, "mentions")),
            np.where(np.abs(d_common) >= self.common_margin, np.sign(d_common), 0.0),
        ], axis=1)

    def preference(self, prompts, first, second, first_finished=None, second_finished=None) -> np.ndarray:
        """P(first ≻ second | prompt) for each triple."""
        qa = self.quality(prompts, first, first_finished)
        qb = self.quality(prompts, second, second_finished)
        vote = np.sign(self.votes(_table(prompts, first), _table(prompts, second)).sum(axis=1))
        return _sigmoid(self.quality_weight * (qa - qb) + self.vote_weight * vote)

    def response_metrics(self, prompts, responses, finished=None) -> dict:
        return response_metrics(prompts, responses, finished, self.heldout_kinds)


# --- the held-out judge -------------------------------------------------------------------------

@dataclass
class HeldoutJudge:
    """P(a ≻ b | x) = σ(κ·(h(a) − h(b))), never used for training.

    h = sense · (1 + met) / 2 · (cut_factor if cut else 1): the constraint checker, gated by
    the sense score (``sense``), so that an answer of nonsense words, two words, off-topic
    filler or a question asked back cannot win on the checker alone. A sensible answer that
    ignores every constraint scores ½; one that meets them all scores 1; "cheesemlighter" scores
    0 whatever it meets; "What do you want to know about running?" meets "end with a question
    mark" and scores ½, no more than an answer that ignores the instruction.
    κ = 10: one constraint of two (Δh = ¼) gives P = 0.92; a cut answer keeps ``cut_factor``.
    It shares no annotator with the panel: no brevity, relevance count or wording preference.
    """

    sharpness: float = 10.0
    cut_factor: float = 0.5
    heldout_kinds: tuple[str, ...] = HELDOUT_KINDS
    name: str = "ifeval-heldout"
    sees_finished = True
    invalid_count: int = field(default=0, init=False)

    def score(self, prompts, responses, finished=None) -> np.ndarray:
        """h per answer (see the class docstring)."""
        fs = _table(prompts, responses)
        cut = ~_finished(finished, len(fs))
        h = np.array([sense(f) * (1.0 + f.met_share) / 2.0 for f in fs])
        return h * np.where(cut, self.cut_factor, 1.0)

    def preference(self, prompts, first, second, first_finished=None, second_finished=None) -> np.ndarray:
        """P(first ≻ second | prompt) for each triple."""
        ha = self.score(prompts, first, first_finished)
        hb = self.score(prompts, second, second_finished)
        return _sigmoid(self.sharpness * (ha - hb))

    def response_metrics(self, prompts, responses, finished=None) -> dict:
        return response_metrics(prompts, responses, finished, self.heldout_kinds)


# --- metrics and intransitivity -----------------------------------------------------------------

def response_metrics(prompts, responses, finished=None, heldout_kinds=HELDOUT_KINDS) -> dict:
    """Constraint satisfaction, sense, length and cut share of a policy's answers.

    ``all_constraints_met``: share of answers meeting all their prompt's constraints;
    ``constraints_met``: share of single constraints met; ``trained_kinds_all_met`` /
    ``heldout_kinds_all_met``: all-met share on prompts without / with a held-out kind (NaN if
    there are none); ``per_kind``: share met per kind; ``sense``, ``real_word_share``: means
    (see ``sense``); ``asks_back_share``: share made only of questions; ``mean_words``;
    ``cut_share``: share cut at the token limit.
    """
    fs = _table(prompts, responses)
    cut = ~_finished(finished, len(fs))
    all_met = np.array([all(f.met) for f in fs], dtype=float)
    heldout = np.array([any(c.kind in heldout_kinds for c in parse_constraints(p)) for p in prompts], dtype=bool)
    per_kind: dict[str, list[bool]] = {}
    for p, f in zip(prompts, fs, strict=True):
        for c, ok in zip(parse_constraints(p), f.met, strict=True):
            per_kind.setdefault(c.kind, []).append(ok)
    singles = [ok for f in fs for ok in f.met]

    def share(x) -> float:
        return float(np.mean(x)) if len(x) else float("nan")

    return {
        "all_constraints_met": share(all_met),
        "constraints_met": share(singles),
        "trained_kinds_all_met": share(all_met[~heldout]),
        "heldout_kinds_all_met": share(all_met[heldout]),
        "per_kind": {k: share(v) for k, v in sorted(per_kind.items())},
        "sense": share([sense(f) for f in fs]),
        "real_word_share": share([f.real for f in fs]),
        "asks_back_share": share([f.asks_back for f in fs]),
        "mean_words": share([f.n_words for f in fs]),
        "cut_share": share(cut),
    }


def win_matrix(judge, prompt: str, candidates: Sequence[str], finished=None) -> np.ndarray:
    """W[i, j] = P(candidate i ≻ candidate j | prompt) under a judge, ½ on the diagonal."""
    n = len(candidates)
    fin = _finished(finished, n)
    i, j = np.triu_indices(n, k=1)
    kwargs = {}
    if getattr(judge, "sees_finished", False):
        kwargs = {"first_finished": fin[i], "second_finished": fin[j]}
    p = judge.preference([prompt] * len(i), [candidates[a] for a in i], [candidates[b] for b in j], **kwargs)
    W = np.full((n, n), 0.5)
    W[i, j], W[j, i] = p, 1.0 - np.asarray(p)
    return W


def cyclic_share(judge, prompt: str, candidates: Sequence[str], finished=None) -> float:
    """Share of the candidates' triples that the judge's majority relation orders in a cycle."""
    return cyclic_triple_share(win_matrix(judge, prompt, candidates, finished))
