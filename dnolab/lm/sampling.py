"""Batched on-policy sampling: K responses per prompt (Algorithm 2, line 4).

``sample_responses`` is the one entry point the loop calls; a faster backend (vLLM on GPUs)
can replace it behind the same signature. Batches are defined over the *global* prompt list
and each is seeded from (seed, batch index), so a prompt gets the same samples whether one
process or several (``torchrun``) draw them.
"""

from __future__ import annotations

from collections import Counter

from tqdm.auto import tqdm

from .config import SamplingConfig
from .data import completion_text, encode_prompt, end_of_turn_id
from .distributed import gather_dict, my_share

__all__ = ["NucleusWarper", "SamplingConfig", "batch_indices", "is_degenerate", "prompt_rows", "sample_batch",
           "sample_mixture_batch", "sample_responses", "sample_sharded", "stop_token_ids", "top_p_filter"]

# Candidates a nucleus is looked for among before falling back to sorting the whole vocabulary.
# On a 2-vCPU AMD EPYC, transformers' top-p warper (a sort of SmolLM2's 49,152 logits) took
# 322 ms a step for 128 rows, this filter 60 ms, and at temperature 0.7 the 0.95 nucleus lay
# within the top 1,024 at every step measured (benchmarks/results/sampling.md).
NUCLEUS_CANDIDATES = 1024


def top_p_filter(logits, top_p: float, candidates: int = NUCLEUS_CANDIDATES):
    """Nucleus (top-p) filtering (Holtzman et al. 2020): keep each token whose more likely
    tokens have less than ``top_p`` probability in all; set the rest to −inf.

    The same rule as transformers' ``TopPLogitsWarper`` (which removes a token when the mass
    of it and every less likely token is ≤ 1 − top_p), found among the ``candidates`` most
    likely tokens when they hold ``top_p`` of the mass in every row (then no other token can
    be kept), by sorting the whole vocabulary otherwise.
    """
    import torch

    if top_p >= 1:
        return logits
    vocab = logits.shape[-1]
    log_total = logits.double().logsumexp(-1, keepdim=True)  # float64: the sums decide at the edge
    top, order = logits.topk(min(candidates, vocab), dim=-1)
    probs = (top.double() - log_total).exp()
    if top.shape[-1] < vocab and not bool((probs.sum(-1) >= top_p).all()):
        top, order = logits.sort(dim=-1, descending=True)
        probs = (top.double() - log_total).exp()
    more_likely = probs.cumsum(-1) - probs
    keep = more_likely < top_p  # the most likely token always stays: nothing is above it
    filtered = torch.full_like(logits, -torch.inf)
    return filtered.scatter(-1, order, top.masked_fill(~keep, -torch.inf))


class NucleusWarper:
    """Temperature, then :func:`top_p_filter`: ``generate``'s own warpers in the same order (a
    logits processor: any callable of ``(input_ids, scores)``).

    Passed to ``generate`` as its only warper (with temperature and top-p left at 1), because
    transformers runs user processors before its warpers: a top-p processor alone would
    see logits not yet divided by the temperature.

    The draw stays ``generate``'s (``torch.multinomial`` over all 49,152 probabilities). A draw
    among the nucleus candidates alone, tried, saved its 136 ms of noise a step for 128 rows on
    a 2-vCPU AMD EPYC (128 evaluation answers in 33–35 s against 40–43 s with this draw, in
    separate runs), but draws each sample with other random numbers: every stated result would
    be another run's. On that other run of notebook 06 (seed 0) the sense score fell, 0.87 →
    0.80, which the shipped run's did not.
    """

    def __init__(self, temperature: float, top_p: float):
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        return top_p_filter(scores / self.temperature, self.top_p)


def batch_indices(n_prompts: int, batch_size: int) -> list[range]:
    """The global batches of prompt indices."""
    return [range(s, min(s + batch_size, n_prompts)) for s in range(0, n_prompts, batch_size)]


def sample_batch(model, tokenizer, prompts: list[str], k: int, config: SamplingConfig,
                 seed: int, chat: bool = False) -> tuple[list[list[str]], list[list[bool]]]:
    """K sampled responses for each prompt of one batch (one generate call), and whether each one
    ended by itself (one of ``stop_token_ids``) rather than being cut at ``max_new_tokens``."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    device = next(model.parameters()).device
    stops = stop_token_ids(model, tokenizer, chat)
    input_ids, attention, shared = prompt_rows([encode_prompt(tokenizer, p, chat) for p in prompts],
                                               tokenizer.pad_token_id)
    input_ids, attention = input_ids.to(device), attention.to(device)
    width = input_ids.shape[1]
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        cache = _prompt_cache(model, input_ids, attention, shared, k) if width > 1 else {}
        if cache:  # one row per sample from here on; the prompts' cache is already expanded
            input_ids, attention = input_ids.repeat_interleave(k, 0), attention.repeat_interleave(k, 0)
        # Samples come from π_t as the config states (Algorithm 2, line 4), nothing else:
        # generate fills every setting not passed here from the model's generation_config.json,
        # where Hub chat models keep their own decoding (a repetition penalty, min-p, a minimum
        # length), so it draws under an empty one.
        own_defaults, model.generation_config = model.generation_config, GenerationConfig()
        try:
            out = model.generate(
                input_ids=input_ids, attention_mask=attention, do_sample=True,
                temperature=1.0, top_p=1.0, top_k=0,
                logits_processor=LogitsProcessorList([NucleusWarper(config.temperature, config.top_p)]),
                max_new_tokens=config.max_new_tokens, num_return_sequences=1 if cache else k,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=stops, **cache,
            )
        finally:
            model.generation_config = own_defaults
    model.train(was_training)
    new = out[:, width:]
    texts = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finished = torch.isin(new, torch.tensor(stops, device=new.device)).any(dim=1).tolist()
    return _per_prompt(texts, k), _per_prompt(finished, k)


def stop_token_ids(model, tokenizer, chat: bool) -> list[int]:
    """Every token that ends an answer: the chat template's end of turn first, then the
    tokenizer's EOS and the model's own ``eos_token_id`` list (Llama 3 Instruct's names three),
    so that a chat model stops where it ends its turn, and its answer counts as finished."""
    own = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    own = [own] if isinstance(own, int) else list(own or [])
    ids = [end_of_turn_id(tokenizer, chat), tokenizer.eos_token_id, *own]
    return list(dict.fromkeys(i for i in ids if i is not None))


def prompt_rows(ids: list[list[int]], pad: int):
    """``(input_ids, attention_mask, shared)`` for a batch of encoded prompts: the tokens all of
    them start with (``shared``: a chat template's system turn, 24 of SmolLM2's 41–71 prompt
    tokens), then padding, then each prompt's own tokens, so every prompt ends in the last
    column, as left padding would have it. Each keeps at least one token of its own."""
    import torch

    shared = 0
    shortest = min(len(x) for x in ids)
    while shared < shortest - 1 and all(x[shared] == ids[0][shared] for x in ids):
        shared += 1
    width = max(len(x) for x in ids)
    input_ids = torch.tensor([x[:shared] + [pad] * (width - len(x)) + x[shared:] for x in ids])
    attention = torch.tensor([[1] * shared + [0] * (width - len(x)) + [1] * (len(x) - shared) for x in ids])
    return input_ids, attention, shared


def _prompt_cache(model, input_ids, attention, shared: int, k: int) -> dict:
    """The prompts' key-value cache, each token encoded once, repeated for the K samples.

    ``generate`` would encode the ``shared`` tokens once per row and every prompt once per sample.
    We encode the shared tokens once (one row), then each prompt's own tokens once, all but the
    last (which ``generate`` needs to produce the first new token's logits), with the positions
    ``generate`` itself gives padded rows and without the 49k-token head on those positions,
    and hand ``generate`` the repeated cache. The same samples, less work: a forward pass over
    128 of notebook 06's prompts took 18.4 s whole and 10.6 s without the 24 shared tokens, and
    encoding each prompt once made K = 4 1.26× as fast (benchmarks/results/sampling.md).
    An empty dict (``generate`` encodes everything itself) for a model without a standard cache.
    """
    from transformers.generation import utils

    # transformers 5.19 calls the cache past_key_values; later 5.x releases call it cache
    name = "cache" if "cache" in getattr(utils, "ALL_CACHE_NAMES", ()) else "past_key_values"
    head = {"logits_to_keep": 1} if getattr(model, "_supports_logits_to_keep", lambda: False)() else {}
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    cache = None
    if shared:
        cache = model(input_ids=input_ids[:1, :shared], use_cache=True, **head).get(name)
        if not hasattr(cache, "batch_repeat_interleave"):
            return {}
        cache.batch_repeat_interleave(len(input_ids))
    if input_ids.shape[1] - 1 > shared:
        past = {name: cache} if cache is not None else {}
        cache = model(input_ids=input_ids[:, shared:-1], attention_mask=attention[:, :-1],
                      position_ids=positions[:, shared:-1], use_cache=True, **past, **head).get(name)
    if not hasattr(cache, "batch_repeat_interleave"):
        return {}
    cache.batch_repeat_interleave(k)
    return {name: cache}


def _per_prompt(flat: list, k: int) -> list[list]:
    return [flat[i * k:(i + 1) * k] for i in range(len(flat) // k)]


def sample_mixture_batch(model, reference, tokenizer, prompts: list[str], k: int, config: SamplingConfig,
                         seed: int, alpha: float, chat: bool = False) -> tuple[list[list[str]], list[list[bool]]]:
    """K samples per prompt from the token-level geometric mixture π^(1−α)·π_ref^α.

    DNO's regularised variant (Algorithm 4, Option II) samples from π_t^(1−τ/η)·π_ref^(τ/η);
    like Nash-MD (Munos et al. 2024) and TRL's former GeometricMixtureWrapper we mix the
    next-token log-probabilities, (1−α)·log π + α·log π_ref, and renormalise at each step.
    """
    import torch

    device = next(model.parameters()).device
    ids = [encode_prompt(tokenizer, p, chat) for p in prompts]
    width = max(len(x) for x in ids)
    pad, stops = tokenizer.pad_token_id, torch.tensor(stop_token_ids(model, tokenizer, chat), device=device)
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device).repeat_interleave(k, 0)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device).repeat_interleave(k, 0)
    done = torch.zeros(len(input_ids), dtype=torch.bool, device=device)
    torch.manual_seed(seed)
    states = model.training, reference.training
    model.eval()
    reference.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        for _ in range(config.max_new_tokens):
            lp = torch.log_softmax(model(input_ids=input_ids, attention_mask=mask).logits[:, -1].float(), -1)
            lr = torch.log_softmax(reference(input_ids=input_ids, attention_mask=mask).logits[:, -1].float(), -1)
            logits = top_p_filter(((1 - alpha) * lp + alpha * lr) / config.temperature, config.top_p)
            nxt = torch.multinomial(logits.softmax(-1), 1).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            input_ids = torch.cat([input_ids, nxt[:, None]], 1)
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            done |= torch.isin(nxt, stops)
            if done.all():
                break
    model.train(states[0])
    reference.train(states[1])
    texts = [t.strip() for t in tokenizer.batch_decode(input_ids[:, width:], skip_special_tokens=True)]
    return _per_prompt(texts, k), _per_prompt(done.tolist(), k)


def sample_responses(model, tokenizer, prompts: list[str], k: int, config: SamplingConfig,
                     seed: int, chat: bool = False, batches: list[int] | None = None,
                     show_progress: bool = True, desc: str = "sampling", reference=None,
                     alpha: float = 0.0, with_finished: bool = False):
    """K responses for each prompt, as ``{prompt index: [responses]}`` (and, ``with_finished``,
    ``{prompt index: [ended by itself?]}`` beside it).

    ``batches`` restricts the work to some global batch numbers (a process's share under
    ``torchrun``); by default all of them are drawn. With a ``reference`` model, samples come
    from the geometric mixture π^(1−α)·π_ref^α (:func:`sample_mixture_batch`).
    """
    if k < 1:
        raise ValueError(f"need at least one sample per prompt, got k={k}")
    all_batches = batch_indices(len(prompts), config.batch_size)
    todo = range(len(all_batches)) if batches is None else batches
    texts: dict[int, list[str]] = {}
    finished: dict[int, list[bool]] = {}
    for b in tqdm(list(todo), desc=desc, disable=not show_progress, leave=False):
        idx = all_batches[b]
        batch_prompts, batch_seed = [prompts[i] for i in idx], seed * 1_000_003 + b
        if reference is None:
            out, ended = sample_batch(model, tokenizer, batch_prompts, k, config, seed=batch_seed, chat=chat)
        else:
            out, ended = sample_mixture_batch(model, reference, tokenizer, batch_prompts, k, config,
                                              seed=batch_seed, alpha=alpha, chat=chat)
        texts.update(zip(idx, out, strict=True))
        finished.update(zip(idx, ended, strict=True))
    return (texts, finished) if with_finished else texts


def sample_sharded(model, tokenizer, prompts: list[str], k: int, config: SamplingConfig, seed: int,
                   state, chat: bool, show_progress: bool = True, desc: str = "sampling",
                   reference=None, alpha: float = 0.0) -> tuple[dict[int, list[str]], dict[int, list[bool]]]:
    """:func:`sample_responses` with the batches shared among processes and gathered on all;
    responses are stored as TRL expects raw-text completions (see ``completion_text``)."""
    n_batches = len(batch_indices(len(prompts), config.batch_size))
    texts, finished = sample_responses(model, tokenizer, prompts, k, config, seed, chat=chat,
                                       batches=my_share(n_batches, state), show_progress=show_progress,
                                       desc=desc, reference=reference, alpha=alpha, with_finished=True)
    merged = gather_dict({i: (texts[i], finished[i]) for i in texts}, state)
    return ({i: [completion_text(r, chat) for r in merged[i][0]] for i in range(len(prompts))},
            {i: [bool(f) for f in merged[i][1]] for i in range(len(prompts))})


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of the text's word n-grams that repeat an earlier one (0 for short texts)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def is_degenerate(text: str, n: int = 3, max_share: float = 0.3, min_ngrams: int = 4) -> bool:
    """The paper's automatic negative: a sample with many repeated n-grams.

    The paper gives no threshold; we flag a response whose word n-grams (n = 3) repeat in
    more than 30 % of positions once it has at least four of them.
    """
    if len(text.split()) - n + 1 < min_ngrams:
        return False
    return repeated_ngram_share(text, n) > max_share
