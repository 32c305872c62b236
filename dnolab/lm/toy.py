"""The embedded toy world: a task, a teacher, a general-preference judge and a tiny model.

Runs with no network, on a laptop CPU, through the same Hugging Face calls a Hub model uses.

* **Task.** Prompt ``sort d1 … dn =`` (n = 3–6 digits); a response is the sorted digits,
  then one *style* token from ``! ? .``, then end-of-sequence.
* **Teacher.** The sort in the fixed style ``.`` (the gold answer, as GPT-4-Turbo's answers
  are in the paper), with a stated, systematic *slip*: on prompts with at least
  ``slip_min_digits`` digits (a ``slip_share`` of them, picked by a hash of the prompt) it
  swaps the first two unequal neighbours of the sorted answer from its 2nd digit on, so it is
  wrong in two places. GPT-4's answers are not always right either; the judge still knows
  the right answer, so a student can pass its teacher on quality alone.
* **Judge.** A general preference P(a ≻ b | x) = σ(k·(q(a) − q(b)) + c·cyc(a, b)):
  a *transitive* quality part (q = digits in the right place minus extra or missing ones)
  and an *intransitive* style part, a rock–paper–scissors cycle ``!`` ≻ ``.`` ≻ ``?`` ≻ ``!``
  (a response without a style loses that part to any styled one). No reward reproduces it:
  against the teacher's fixed ``.``, the style ``!`` is an exploit, while the style game's
  Nash equilibrium is the uniform mixture.
* **Policy.** A 2-layer Llama (hidden 64, ≈132k parameters) trained by SFT on imperfect
  demonstrations (every one has a wrong digit; styles skewed toward ``?``), so that it starts
  far below the teacher.

The defaults were calibrated by runs of notebook 04 on three seeds (see ``configs/toy.yaml``).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DIGITS = tuple(str(d) for d in range(10))
STYLES = ("!", "?", ".")
PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
VOCAB = (PAD, EOS, UNK, "sort", "=", *DIGITS, *STYLES)
# cyc[s, s'] = +1 if style s beats s', −1 if it loses; index 3 is "no style".
_CYCLE = np.zeros((4, 4))
for _winner, _loser in (("!", "."), (".", "?"), ("?", "!")):
    _CYCLE[STYLES.index(_winner), STYLES.index(_loser)] = 1.0
    _CYCLE[STYLES.index(_loser), STYLES.index(_winner)] = -1.0
_CYCLE[:3, 3], _CYCLE[3, :3] = 1.0, -1.0
STYLE_CYCLE = _CYCLE
NO_STYLE = 3


@dataclass(frozen=True)
class ToyTask:
    """Digit sorting with a style token; the prompt distribution of the toy world.

    ``slip_min_digits`` / ``slip_share``: the teacher's stated slip (see :meth:`teacher`);
    ``slip_min_digits=None`` gives a perfect teacher. The defaults are the shipped world
    (``configs/toy.yaml``).
    """

    min_digits: int = 3
    max_digits: int = 6
    teacher_style: str = "."
    slip_min_digits: int | None = 6
    slip_share: float = 1.0

    def __post_init__(self):
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError("need 1 <= min_digits <= max_digits")
        if self.teacher_style not in STYLES:
            raise ValueError(f"teacher_style must be one of {STYLES}")
        if self.slip_min_digits is not None and self.slip_min_digits < 3:
            raise ValueError(f"slip_min_digits must be >= 3 (a slip swaps digits 2 and 3 or later), "
                             f"got {self.slip_min_digits}")
        if not 0.0 <= self.slip_share <= 1.0:
            raise ValueError(f"slip_share must be in [0, 1], got {self.slip_share}")

    def prompts(self, n: int, rng: np.random.Generator, exclude: set[str] | None = None) -> list[str]:
        """n distinct prompts, none in ``exclude`` (so partitions never overlap)."""
        exclude = set() if exclude is None else exclude
        seen, out = set(), []
        while len(out) < n:
            length = int(rng.integers(self.min_digits, self.max_digits + 1))
            prompt = "sort " + " ".join(DIGITS[d] for d in rng.integers(0, 10, length)) + " ="
            if prompt not in seen and prompt not in exclude:
                seen.add(prompt)
                out.append(prompt)
        return out

    @staticmethod
    def answer(prompt: str) -> list[str]:
        """The sorted digits of a prompt."""
        return sorted(t for t in prompt.split() if t in DIGITS)

    def slips_on(self, prompt: str) -> bool:
        """Whether the teacher's answer to ``prompt`` is wrong: the prompt is long enough, lies in
        the slipping share (by a hash of its text, so the teacher is a fixed function of the
        prompt), and its sorted answer has two unequal neighbours from the 2nd digit on."""
        answer = self.answer(prompt)
        if self.slip_min_digits is None or len(answer) < self.slip_min_digits:
            return False
        if self.slip_share < 1.0 and zlib.crc32(prompt.encode()) / 2**32 >= self.slip_share:
            return False
        return any(a != b for a, b in itertools.pairwise(answer[1:]))

    def teacher(self, prompt: str) -> str:
        """The gold response in the teacher's fixed style: the correct sort, except on the
        prompts it slips on (:meth:`slips_on`), where the first two unequal neighbours from the
        2nd sorted digit on are swapped (two digits out of place)."""
        digits = self.answer(prompt)
        if self.slips_on(prompt):
            i = next(k for k in range(1, len(digits) - 1) if digits[k] != digits[k + 1])
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
        return " ".join([*digits, self.teacher_style])

    def demonstration(self, prompt: str, rng: np.random.Generator, p_shift: float = 0.3,
                      style_probs=(0.15, 0.70, 0.15)) -> str:
        """An imperfect SFT demonstration: at least one digit shifted by ±1 or ±2."""
        digits = [int(d) for d in self.answer(prompt)]
        shift = rng.random(len(digits)) < p_shift
        if not shift.any():
            shift[rng.integers(len(digits))] = True
        for i in np.flatnonzero(shift):
            step = int(rng.choice([-2, -1, 1, 2]))
            digits[i] = int(np.clip(digits[i] + step, 0, 9))
            if digits[i] == int(self.answer(prompt)[i]):  # clipping undid the shift
                digits[i] = digits[i] + 1 if digits[i] < 9 else digits[i] - 1
        style = STYLES[int(rng.choice(3, p=style_probs))]
        return " ".join([*map(str, digits), style])


def parse_response(response: str) -> tuple[list[str], int, int]:
    """Split a response into (digits, style index, junk-token count); style 3 means none."""
    tokens = response.split()
    style = NO_STYLE
    if tokens and tokens[-1] in STYLES:
        style = STYLES.index(tokens[-1])
        tokens = tokens[:-1]
    digits = [t for t in tokens if t in DIGITS]
    return digits, style, len(tokens) - len(digits)


def quality(prompt: str, response: str) -> float:
    """q = digits in the right place − |length error| − junk tokens (the transitive part)."""
    target = ToyTask.answer(prompt)
    digits, _, junk = parse_response(response)
    matches = sum(a == b for a, b in zip(digits, target, strict=False))
    return float(matches - abs(len(digits) - len(target)) - junk)


def style_of(response: str) -> int:
    """Index of the response's style in STYLES, or 3 for none."""
    return parse_response(response)[1]


@dataclass
class ToyJudge:
    """P(a ≻ b | x) = σ(k·(q(a) − q(b)) + c·cyc(style_a, style_b)), optionally noisy.

    ``noise`` = ε flips each judgment with probability ε: P ← (1 − 2ε)·P + ε.
    ``transitive_only`` drops the style cycle (used to separate quality from style gains).
    ``length_weight`` = λ adds λ·(words(a) − words(b)) to the logit: a judge that likes long
    answers, as LLM judges are known to (the reason for AlpacaEval 2.0's length control).
    Vectorised over a batch of pairs; never returns an invalid value.
    """

    quality_weight: float = 2.0
    cycle_weight: float = 1.0
    noise: float = 0.0
    transitive_only: bool = False
    length_weight: float = 0.0  # > 0: a verbosity-biased judge, + λ per extra word
    name: str = "toy"
    invalid_count: int = field(default=0, init=False)

    def __post_init__(self):
        if not 0.0 <= self.noise < 0.5:
            raise ValueError(f"noise must be in [0, 0.5), got {self.noise}")

    def logits(self, prompts, first, second) -> np.ndarray:
        qa = np.array([quality(p, a) for p, a in zip(prompts, first, strict=True)])
        qb = np.array([quality(p, b) for p, b in zip(prompts, second, strict=True)])
        z = self.quality_weight * (qa - qb)
        if self.length_weight:
            la = np.array([len(a.split()) for a in first], dtype=float)
            lb = np.array([len(b.split()) for b in second], dtype=float)
            z = z + self.length_weight * (la - lb)
        if not self.transitive_only:
            sa = np.array([style_of(a) for a in first], dtype=int)
            sb = np.array([style_of(b) for b in second], dtype=int)
            z = z + self.cycle_weight * STYLE_CYCLE[sa, sb]
        return z

    def preference(self, prompts, first, second) -> np.ndarray:
        """P(first ≻ second | prompt) for each triple."""
        p = 1.0 / (1.0 + np.exp(-self.logits(prompts, first, second)))
        return (1.0 - 2.0 * self.noise) * p + self.noise

    def style_game(self) -> np.ndarray:
        """The 4×4 preference matrix of the style part alone (styles ! ? . and none)."""
        p = 1.0 / (1.0 + np.exp(-self.cycle_weight * STYLE_CYCLE))
        return (1.0 - 2.0 * self.noise) * p + self.noise


def style_distribution(responses) -> np.ndarray:
    """Shares of the styles ! ? . and none among responses."""
    counts = np.bincount([style_of(r) for r in responses], minlength=4).astype(float)
    return counts / max(counts.sum(), 1.0)


def response_metrics(prompts, responses, judge: ToyJudge | None = None) -> dict:
    """Toy-world diagnostics: exact-match rate, mean quality, style mix and its exploitability."""
    from ..games import exploitability

    judge = judge or ToyJudge()
    exact = np.mean([parse_response(r)[0] == ToyTask.answer(p) for p, r in zip(prompts, responses, strict=True)])
    styles = style_distribution(responses)
    return {
        "exact_match": float(exact),
        "mean_quality": float(np.mean([quality(p, r) for p, r in zip(prompts, responses, strict=True)])),
        "style_shares": dict(zip([*STYLES, "none"], styles.round(4).tolist(), strict=True)),
        "style_exploitability": exploitability(judge.style_game(), styles),
        "mean_length": float(np.mean([len(r.split()) for r in responses])),
    }


# --- the tokenizer and the model --------------------------------------------------------------

def build_tokenizer():
    """A word-level Hugging Face tokenizer over the toy vocabulary (left padding, for sampling)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens([PAD, EOS, UNK])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS,
                                   unk_token=UNK, padding_side="left")


@dataclass(frozen=True)
class ToyModelConfig:
    """Size of the toy policy (the calibration's model: 132k parameters)."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_positions: int = 32


def build_model(config: ToyModelConfig, tokenizer, seed: int):
    """A randomly initialised LlamaForCausalLM sized by ``config``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(cfg)


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning of the toy policy on imperfect demonstrations."""

    examples: int = 64_000
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3
    p_shift: float = 0.3
    style_probs: tuple = (0.15, 0.70, 0.15)


def sft_dataset(task: ToyTask, config: SFTConfig, seed: int):
    """Prompt–completion pairs for SFT (completion = imperfect demonstration)."""
    from datasets import Dataset

    rng = np.random.default_rng([seed, 101])
    prompts = task.prompts(config.examples, rng)
    completions = [" " + task.demonstration(p, rng, config.p_shift, config.style_probs) for p in prompts]
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


def train_sft(model, tokenizer, dataset, config: SFTConfig, output_dir: str | os.PathLike,
              seed: int, use_cpu: bool = True, show_progress: bool = True):
    """SFT with TRL's SFTTrainer (completion-only loss, cosine schedule)."""
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    args = TRLSFTConfig(
        output_dir=str(output_dir), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=int(0.03 * config.steps),
        weight_decay=0.0, logging_steps=max(config.steps // 10, 1), save_strategy="no", report_to="none",
        seed=seed, data_seed=seed, bf16=False, use_cpu=use_cpu, activation_checkpointing=False,
        max_length=32, completion_only_loss=True, dataloader_num_workers=0,
        disable_tqdm=True, packing=False,
    )
    from .trainer import quiet_trainer

    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    quiet_trainer(trainer, show_progress, desc="SFT")
    trainer.train()
    model.__dict__.pop("forward", None)  # TRL may patch forward on the instance; undo it
    return model


@dataclass
class ToyWorld:
    """Everything the toy DNO run needs, created from one seed."""

    task: ToyTask = field(default_factory=ToyTask)
    judge: ToyJudge = field(default_factory=ToyJudge)
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    def to_dict(self) -> dict:
        return {"task": asdict(self.task), "judge": {k: v for k, v in asdict(self.judge).items()
                                                   if k != "invalid_count"},
                "model": asdict(self.model), "sft": {**asdict(self.sft), "style_probs": list(self.sft.style_probs)}}


def build_initial_policy(world: ToyWorld, output_dir: str | os.PathLike, seed: int,
                         use_cpu: bool = True, show_progress: bool = True) -> Path:
    """Train the SFT policy π₁ and save it (model + tokenizer) with ``save_pretrained``.

    Written to a temporary folder and renamed, so an interrupted build leaves nothing behind.
    Returns the folder, loadable with ``AutoModelForCausalLM.from_pretrained``.
    """
    from .rundir import atomic_dir

    with atomic_dir(Path(output_dir)) as tmp:
        tokenizer = build_tokenizer()
        model = build_model(world.model, tokenizer, seed)
        data = sft_dataset(world.task, world.sft, seed)
        train_sft(model, tokenizer, data, world.sft, tmp / "trainer", seed, use_cpu, show_progress)
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "toy_world.json").write_text(json.dumps(world.to_dict(), indent=2) + "\n")
    return Path(output_dir)
