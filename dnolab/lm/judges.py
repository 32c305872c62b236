"""Judges: general preferences P(a ≻ b | x), with no assumption that they are transitive.

The engine needs one of two things from a judge (duck-typed, so any object works):

* ``preference(prompts, first, second) -> array``: P(first ≻ second | prompt) per triple,
  NaN where the judge could not decide (counted as invalid and left out);
* or ``scores(prompts, candidates) -> list[array]``: one score per candidate, all candidates
  of a prompt judged together (a *listwise* judge, like the paper's 6-point rubric with the
  K student samples and the gold answer side by side); pairwise preferences are then derived
  from the scores, and the pair rule sees win rates, never the raw scores (kept beside them).

Optionally, a judge that sets ``sees_finished = True`` also receives ``first_finished`` /
``second_finished``: whether each answer ended by itself or was cut at ``max_new_tokens``; and
a judge with ``response_metrics(prompts, responses, finished=None) -> dict`` adds its own
numbers (e.g. constraint satisfaction) to every iteration's metrics.json.

Implementations: the toy world's programmatic judge (``dnolab.lm.toy.ToyJudge``), a
Bradley–Terry reward-model judge over a sequence-classification model, and LLM judges over
a chat model, pairwise (both orders, to cancel position bias) and listwise (one call for all
K + 1 candidates). TRL no longer ships judges (removed in TRL 1.1), so this interface is ours.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..utils import to_plain
from .errors import DNOInputError


def check_preferences(p, judge_name: str) -> np.ndarray:
    """Validate a judge's output: values in [0, 1], or NaN for an invalid judgment."""
    p = np.asarray(p, dtype=float)
    finite = p[~np.isnan(p)]
    if np.isinf(p).any() or ((finite < 0) | (finite > 1)).any():
        bad = p[np.isinf(p) | (p < 0) | (p > 1)][0]
        raise DNOInputError(
            f"judge {judge_name!r} returned {float(bad)!r}; a judge must return probabilities P(a ≻ b) in [0, 1] "
            "(or NaN for a judgment it could not make). Fix the judge's output scaling"
        )
    return p


def judge_name(judge) -> str:
    return getattr(judge, "name", type(judge).__name__)


def is_listwise(judge) -> bool:
    return callable(getattr(judge, "scores", None))


def preferences(judge, prompts, first, second, first_finished=None, second_finished=None) -> np.ndarray:
    """P(first ≻ second | prompt) per triple, checked. A judge that declares ``sees_finished``
    also gets whether each answer ended (EOS) or was cut at ``max_new_tokens``."""
    if getattr(judge, "sees_finished", False):
        n = len(prompts)
        p = judge.preference(list(prompts), list(first), list(second),
                             first_finished=[True] * n if first_finished is None else list(first_finished),
                             second_finished=[True] * n if second_finished is None else list(second_finished))
    else:
        p = judge.preference(list(prompts), list(first), list(second))
    return check_preferences(p, judge_name(judge))


def describe_judge(judge) -> dict:
    """What a run folder records about a judge, so that resuming a run under a changed judge is
    an error rather than a silent mix: its class, name and, for a dataclass, every setting
    (a model or tokenizer by its ``name_or_path``)."""
    cls = type(judge)
    out = {"class": f"{cls.__module__}.{cls.__qualname__}", "name": judge_name(judge)}
    if dataclasses.is_dataclass(judge):
        for f in dataclasses.fields(judge):
            if f.init and f.name != "name":
                out[f.name] = to_plain(getattr(judge, f.name), other=_model_name)
    return out


def _model_name(value) -> str:
    """A model or tokenizer setting by its ``name_or_path``; any other object by its class."""
    path = getattr(value, "name_or_path", None) or getattr(getattr(value, "config", None), "_name_or_path", None)
    return str(path) if path else type(value).__name__


def win_matrix_from_scores(scores: np.ndarray, kind: str = "hard") -> np.ndarray:
    """Pairwise preferences from per-candidate scores: 1/½/0 by comparison (``hard``, rubric
    points) or σ(s_i − s_j) (``bt``, reward-model scores). NaN scores give NaN rows/columns."""
    s = np.asarray(scores, dtype=float)
    D = s[:, None] - s[None, :]
    W = 1.0 / (1.0 + np.exp(-D)) if kind == "bt" else np.where(D > 0, 1.0, np.where(D < 0, 0.0, 0.5))
    W[np.isnan(D)] = np.nan
    np.fill_diagonal(W, 0.5)
    return W


def win_rates(W: np.ndarray) -> np.ndarray:
    """Each candidate's mean preference against the *other* candidates, NaN-aware: the estimate
    r̂(y) of r_t(x, y) = E_{y'~π_t} P(y ≻ y' | x) (Algorithm 2, line 5); NaN if none is valid."""
    off = np.array(W, dtype=float)
    np.fill_diagonal(off, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row of NaN (all invalid) stays NaN
        return np.nanmean(off, axis=1)


class Judgments(NamedTuple):
    """What a judge said about each prompt's candidates."""

    matrices: list[np.ndarray]  # W[i, j] = P(candidate i ≻ candidate j), NaN where invalid
    win_rates: list[np.ndarray]  # per candidate, in [0, 1]: what the pair rule and SPPO use
    raw_scores: list[np.ndarray | None]  # a listwise judge's own scores (rubric points, logits)


def judge_win_matrices(judge, prompts: Sequence[str], candidates: Sequence[Sequence[str]],
                       finished: Sequence[Sequence[bool]] | None = None) -> Judgments:
    """For each prompt, the win matrix of its candidates, their win rates and raw scores.

    A listwise judge scores all candidates of a prompt at once; its scores become a matrix
    (``score_kind``: ``hard`` comparisons or ``bt`` sigmoids) and then win rates, so that
    rubric points or reward logits never reach a rule written in win-rate units. A pairwise
    judge is asked about every pair once; P(j ≻ i) = 1 − P(i ≻ j).
    """
    if is_listwise(judge):
        raw = [np.asarray(s, dtype=float) for s in judge.scores(list(prompts), [list(c) for c in candidates])]
        mats = [win_matrix_from_scores(s, getattr(judge, "score_kind", "hard")) for s in raw]
        return Judgments(mats, [win_rates(W) for W in mats], raw)
    rows_p, rows_a, rows_b, fin_a, fin_b, where = [], [], [], [], [], []
    for k, (prompt, cands) in enumerate(zip(prompts, candidates, strict=True)):
        done = [True] * len(cands) if finished is None else list(finished[k])
        for i in range(len(cands)):
            for j in range(i + 1, len(cands)):
                rows_p.append(prompt)
                rows_a.append(cands[i])
                rows_b.append(cands[j])
                fin_a.append(done[i])
                fin_b.append(done[j])
                where.append((k, i, j))
    p = preferences(judge, rows_p, rows_a, rows_b, fin_a, fin_b) if rows_p else np.zeros(0)
    mats = [np.full((len(c), len(c)), 0.5) for c in candidates]
    for (k, i, j), value in zip(where, p, strict=True):
        mats[k][i, j], mats[k][j, i] = value, 1.0 - value
    return Judgments(mats, [win_rates(W) for W in mats], [None] * len(mats))


def judge_sharded(judge, rows: list[dict], candidates, finished, state) -> tuple[list, list, list]:
    """:func:`judge_win_matrices` with prompts shared among processes and gathered on all;
    judges see the bare text of each candidate."""
    from .distributed import gather_dict, my_share

    mine = my_share(len(rows), state)
    texts = [[c.strip() for c in candidates[i]] for i in mine]
    verdicts = judge_win_matrices(judge, [rows[i]["prompt"] for i in mine], texts, [finished[i] for i in mine])
    merged = gather_dict(dict(zip(mine, zip(*verdicts, strict=True), strict=True)), state)
    return tuple([merged[i][k] for i in range(len(rows))] for k in range(3))


def invalid_share(matrices) -> float:
    """Share of off-diagonal comparisons the judge could not decide (NaN)."""
    total = sum(m.size - len(m) for m in matrices)
    bad = sum(int(np.isnan(m).sum()) for m in matrices)
    return bad / max(total, 1)


# --- reward model (Bradley–Terry) judge --------------------------------------------------------

@dataclass
class RewardModelJudge:
    """P(a ≻ b | x) = σ(r(x, a) − r(x, b)) from a sequence-classification reward model.

    Transitive by construction (it is a BT model), included because it is what most RLHF
    pipelines use; each candidate is scored once, so it is a listwise judge with BT scores.
    """

    model: object
    tokenizer: object
    chat: bool = True
    batch_size: int = 16
    max_length: int = 1024
    name: str = "reward-model"
    score_kind: str = "bt"
    append_eos: bool = False  # plain-text models trained by TRL's RewardTrainer saw an EOS
    invalid_count: int = field(default=0, init=False)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device=None, dtype=None, **kwargs) -> RewardModelJudge:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from .data import _hub_offline, _load_error, _offline_model_kwargs

        try:
            tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=_hub_offline())
            model = AutoModelForSequenceClassification.from_pretrained(
                name_or_path, num_labels=1, dtype=dtype, **_offline_model_kwargs())
        except (OSError, ValueError) as err:
            raise _load_error("reward model", name_or_path, err) from None
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.config.pad_token_id = tok.pad_token_id
        return cls(model.to(device) if device else model.eval(), tok, name=f"reward-model:{name_or_path}", **kwargs)

    def _texts(self, prompts, responses):
        if self.chat and getattr(self.tokenizer, "chat_template", None):
            return [self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False)
                for p, r in zip(prompts, responses, strict=True)]
        eos = self.tokenizer.eos_token if self.append_eos else ""
        return [f"{p} {r}{eos}" for p, r in zip(prompts, responses, strict=True)]

    def reward(self, prompts, responses) -> np.ndarray:
        import torch

        texts = self._texts(prompts, responses)
        out = []
        self.tokenizer.padding_side = "right"
        device = next(self.model.parameters()).device
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length).to(device)
                out.append(self.model(**enc).logits[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def preference(self, prompts, first, second) -> np.ndarray:
        ra, rb = self.reward(prompts, first), self.reward(prompts, second)
        return 1.0 / (1.0 + np.exp(-(ra - rb)))

    def scores(self, prompts, candidates) -> list[np.ndarray]:
        flat_p = [p for p, c in zip(prompts, candidates, strict=True) for _ in c]
        flat_r = [r for c in candidates for r in c]
        rewards = self.reward(flat_p, flat_r)
        out, start = [], 0
        for c in candidates:
            out.append(rewards[start:start + len(c)])
            start += len(c)
        return out


# --- LLM judges ---------------------------------------------------------------------------------

Chat = list[dict[str, str]]
GenerateFn = Callable[[list[Chat], float], list[str]]


def hf_chat_generator(model, tokenizer, max_new_tokens: int = 512, batch_size: int = 8) -> GenerateFn:
    """A ``generate(chats, temperature) -> texts`` function over a Hugging Face chat model."""
    import torch

    def generate(chats: list[Chat], temperature: float) -> list[str]:
        tokenizer.padding_side = "left"
        device = next(model.parameters()).device
        texts = []
        for start in range(0, len(chats), batch_size):
            batch = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                     for c in chats[start:start + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs = {"do_sample": temperature > 0, "max_new_tokens": max_new_tokens,
                      "pad_token_id": tokenizer.pad_token_id}
            if temperature > 0:
                kwargs["temperature"] = temperature
            with torch.no_grad():
                out = model.generate(**enc, **kwargs)
            texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return texts

    return generate


PAIRWISE_TEMPLATE = """You compare two answers to the same user request and decide which one is better:
more correct, more helpful and clearer. Ignore their order and their length unless length
makes an answer worse.

[Request]
{prompt}

[Answer A]
{a}

[Answer B]
{b}

Reply with one line: "Winner: A" or "Winner: B"."""

# The paper's 6-point additive rubric (Rosset et al. 2024, Fig. 3, itself adapted from the
# Self-Rewarding LM prompt), in our own words: one point for each criterion met.
RUBRIC_TEMPLATE = """Score each candidate answer to the user request below with an additive 6-point rubric.
Start at 0 and add one point for each statement that holds:
1. It is formatted as an answer to the request.
2. It is relevant to the request.
3. It addresses a substantial part of the request without rambling.
4. It answers nearly all parts of the request correctly and directly, without excess.
5. It is entirely correct, helpful, well organised and succinct.
6. It is correct and concise, and reads as an expert answer tailored to the request.

[Request]
{prompt}

{candidates}

For every candidate give a justification of at most 100 words, then its score, as JSON:
{{"1": {{"justification": "...", "score": 4}}, "2": {{"justification": "...", "score": 2}}, ...}}"""

_WINNER = re.compile(r"winner\s*[:=]?\s*\**\s*\[?\s*(A|B)\b", re.IGNORECASE)
_SCORE_LINE = re.compile(
    r"(?:candidate|answer|response)?\s*#?\s*\[?\"?(\d+)\"?\]?\s*[:\-)]?[^\n\d]{0,200}?score\"?\s*[:=]\s*\"?([0-6](?:\.\d+)?)",
    re.IGNORECASE)


def parse_winner(text: str) -> int | None:
    """0 if the text declares answer A the winner, 1 for B, None if it cannot be read."""
    matches = _WINNER.findall(text or "")
    if len({m.upper() for m in matches}) != 1:
        return None
    return 0 if matches[0].upper() == "A" else 1


def parse_rubric_scores(text: str, n: int, max_score: int = 6) -> np.ndarray | None:
    """Scores of candidates 1..n from a rubric reply (JSON, or 'n: ... Score: s' lines); None if any is missing."""
    text = text or ""
    found: dict[int, float] = {}
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start:end + 1])
            for key, value in data.items():
                score = value.get("score") if isinstance(value, dict) else value
                found[int(key)] = float(score)
        except (ValueError, TypeError, AttributeError):
            found = {}
    if len(found) < n:
        found = {int(i): float(s) for i, s in _SCORE_LINE.findall(text)}
    scores = [found.get(i) for i in range(1, n + 1)]
    if any(s is None or not 0 <= s <= max_score for s in scores):
        return None
    return np.array(scores, dtype=float)


def _ask(judge, chats: list[Chat], parsers) -> list:
    """Ask the judge's model each chat and parse each reply; unreadable replies are asked again
    (greedy first, then sampled at ``retry_temperature``), and those still unreadable after
    ``retries`` retries are counted in ``invalid_count`` and returned as None."""
    parsed: list = [None] * len(chats)
    todo = list(range(len(chats)))
    for attempt in range(judge.retries + 1):
        if not todo:
            break
        replies = judge.generate([chats[i] for i in todo], 0.0 if attempt == 0 else judge.retry_temperature)
        judge.calls += len(todo)
        for i, reply in zip(todo, replies, strict=True):
            parsed[i] = parsers[i](reply)
        todo = [i for i in todo if parsed[i] is None]
    judge.invalid_count += len(todo)
    return parsed


@dataclass
class PairwiseLLMJudge:
    """An LLM asked "which answer is better?" in both orders; P(a ≻ b) is the mean of the two
    verdicts (1, ½ or 0), which cancels a constant position bias. Unreadable replies are
    retried with sampling, then counted as invalid; a pair with no valid verdict is NaN."""

    generate: GenerateFn
    retries: int = 2
    retry_temperature: float = 0.7
    name: str = "llm-pairwise"
    invalid_count: int = field(default=0, init=False)
    calls: int = field(default=0, init=False)

    def preference(self, prompts, first, second) -> np.ndarray:
        chats = []
        for p, a, b in zip(prompts, first, second, strict=True):
            chats.append([{"role": "user", "content": PAIRWISE_TEMPLATE.format(prompt=p, a=a, b=b)}])
            chats.append([{"role": "user", "content": PAIRWISE_TEMPLATE.format(prompt=p, a=b, b=a)}])
        v = _ask(self, chats, [parse_winner] * len(chats))
        out = np.full(len(prompts), np.nan)
        for k in range(len(prompts)):
            wins = []
            if v[2 * k] is not None:
                wins.append(1.0 if v[2 * k] == 0 else 0.0)  # A (= first) won
            if v[2 * k + 1] is not None:
                wins.append(1.0 if v[2 * k + 1] == 1 else 0.0)  # B (= first) won
            if wins:
                out[k] = float(np.mean(wins))
        return out


@dataclass
class ListwiseLLMJudge:
    """The paper's batched judge: all K + 1 candidates of a prompt in one call, each scored on
    the additive 6-point rubric; candidates are shown in a seeded random order to spread
    position bias. Unreadable replies are retried, then the prompt's scores are NaN."""

    generate: GenerateFn
    retries: int = 2
    retry_temperature: float = 0.7
    seed: int = 0
    name: str = "llm-listwise"
    score_kind: str = "hard"
    invalid_count: int = field(default=0, init=False)
    calls: int = field(default=0, init=False)

    def _chat(self, prompt: str, candidates: list[str], order: np.ndarray) -> Chat:
        blocks = "\n\n".join(f"[Candidate {i + 1}]\n{candidates[j]}" for i, j in enumerate(order))
        return [{"role": "user", "content": RUBRIC_TEMPLATE.format(prompt=prompt, candidates=blocks)}]

    def scores(self, prompts, candidates) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        orders = [rng.permutation(len(c)) for c in candidates]
        chats = [self._chat(p, list(c), o) for p, c, o in zip(prompts, candidates, orders, strict=True)]
        parsers = [functools.partial(parse_rubric_scores, n=len(c)) for c in candidates]
        parsed = _ask(self, chats, parsers)
        out = []
        for s, order, c in zip(parsed, orders, candidates, strict=True):
            scores = np.full(len(c), np.nan)
            if s is not None:
                scores[order] = s  # shown position i held candidate order[i]
            out.append(scores)
        return out

    def preference(self, prompts, first, second) -> np.ndarray:
        s = self.scores(prompts, [[a, b] for a, b in zip(first, second, strict=True)])
        return np.array([win_matrix_from_scores(x)[0, 1] for x in s])
