"""What a run is about: its prompts and gold answers, its judge, and its starting policy.

``make_world(config)`` returns the toy world (no network), the instruction-following world of
notebook 06 (``prompts.source: ifeval``: prompts with verifiable constraints made by
dnolab.lm.ifeval, a real chat model, programmatic judges; no network either), or a Hub world
(model, prompts and judge named by Hub ids or local folders). The loop treats all the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import PROGRAMMATIC_JUDGES, DNOConfig, JudgeSection
from .data import PromptSet, load_causal_lm, load_prompt_dataset, load_tokenizer
from .errors import DNOInputError
from .rundir import save_pretrained_atomic
from .toy import (
    SFTConfig,
    ToyJudge,
    ToyModelConfig,
    ToyTask,
    ToyWorld,
    build_initial_policy,
    response_metrics,
)


@dataclass
class World:
    kind: str
    judge: Any
    chat: bool
    config: DNOConfig
    toy: ToyWorld | None = None

    def prompt_pool(self, n: int, seed: int) -> PromptSet:
        """At least ``n`` distinct prompts with gold answers where the world has them."""
        if self.toy is not None:
            prompts = self.toy.task.prompts(n, np.random.default_rng([seed, 7]))
            return PromptSet(prompts, [self.toy.task.teacher(p) for p in prompts])
        if self.kind == "ifeval":  # prompts with a held-out constraint kind are for evaluation only
            from .ifeval import make_prompt_table

            rows = make_prompt_table(2 * n + 100, seed)  # room for the evaluation-only ones
            return PromptSet([r["prompt"] for r in rows], [r["gold"] for r in rows], [r["heldout"] for r in rows])
        p = self.config.prompts
        return load_prompt_dataset(p.source, p.split, p.prompt_column, p.gold_column, p.limit, seed)

    def teacher_answers(self, prompts: list[str], samples: dict[int, list[str]], finished: dict[int, list[bool]],
                        gold: list[str]) -> list[str]:
        """The gold answers of one iteration (Algorithm 2, line 3): the prompt set's own, or, with
        ``prompts.teacher: corrector``, a correction of one of the student's samples."""
        if self.config.prompts.teacher != "corrector":
            return list(gold)
        from .ifeval.corrector import correcting_teacher

        return [correcting_teacher(p, samples[i], finished[i], g)[0]  # by position: lists or {index: ...}
                for i, (p, g) in enumerate(zip(prompts, gold, strict=True))]

    def response_metrics(self, prompts: list[str], responses: list[str]) -> dict:
        """World-specific diagnostics of a policy's responses (toy: exact match, styles)."""
        if self.toy is not None:
            return response_metrics(prompts, responses, self.toy.judge)
        return {}

    def heldout_judges(self, device=None) -> dict:
        """The judges of ``eval.heldout_judges``, by label: never used to make training pairs."""
        return {section.label or section.kind: make_judge(section, self.config, device)
                for section in self.config.eval.heldout_judges}

    def build_initial_policy(self, dest: Path, seed: int, show_progress: bool) -> Path:
        """π₁ saved with save_pretrained: the toy SFT model, or a copy of the named model."""
        name = self.config.model.name_or_path
        if name is None:
            if self.toy is None:
                raise DNOInputError("model.name_or_path is required outside the toy world")
            from accelerate import PartialState

            if PartialState().num_processes > 1:
                raise DNOInputError(
                    "the toy SFT policy is built in one process; run `dnolab toy-policy --out DIR` first "
                    "and set model.name_or_path: DIR for multi-process runs")
            return build_initial_policy(self.toy, dest, seed, show_progress=show_progress)
        tokenizer = load_tokenizer(name, pad_with_eos=self.config.model.pad_with_eos)
        model = load_causal_lm(name, dtype=_dtype(self.config.model.dtype))
        return save_pretrained_atomic(model, tokenizer, dest)


def _dtype(name: str):
    """``auto``: bfloat16 on a GPU that supports it (A100, L4, H100), float32 otherwise (CPUs,
    T4): a T4 has no bf16 and fp16 weights would need a loss scaler."""
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if name not in table:
        raise DNOInputError(f"model.dtype must be 'auto' or one of {sorted(table)}, got {name!r}")
    return table[name]


def toy_judge(section: JudgeSection) -> ToyJudge:
    return ToyJudge(quality_weight=section.quality_weight, cycle_weight=section.cycle_weight, noise=section.noise,
                    transitive_only=section.transitive_only, length_weight=section.length_weight,
                    name=section.label or "toy")


def toy_world_from_config(config: DNOConfig) -> ToyWorld:
    j, t = config.judge, config.toy
    return ToyWorld(
        task=ToyTask(teacher_style=t.teacher_style, slip_min_digits=t.teacher_slip_min_digits,
                     slip_share=t.teacher_slip_share),
        judge=toy_judge(j),
        model=ToyModelConfig(hidden_size=t.hidden_size, num_layers=t.num_layers),
        sft=SFTConfig(steps=t.sft_steps, batch_size=t.sft_batch_size, learning_rate=t.sft_learning_rate,
                      examples=t.sft_steps * t.sft_batch_size),
    )


def make_judge(j: JudgeSection, config: DNOConfig, device=None):
    """The judge a config section describes (a toy or ifeval judge, a reward model or an LLM judge)."""
    if j.kind == "toy":
        return toy_judge(j)
    if j.kind in {"ifeval-panel", "ifeval-heldout"}:
        from .ifeval import HeldoutJudge, PanelJudge

        judge = PanelJudge() if j.kind == "ifeval-panel" else HeldoutJudge()
        judge.name = j.label or j.kind
        return judge
    if j.kind == "reward-model":
        from .judges import RewardModelJudge

        return RewardModelJudge.from_pretrained(j.name_or_path, device=device, dtype=_dtype(config.model.dtype),
                                                chat=config.model.chat, batch_size=j.batch_size)
    from .judges import ListwiseLLMJudge, PairwiseLLMJudge, hf_chat_generator

    tokenizer = load_tokenizer(j.name_or_path, pad_with_eos=True)
    model = load_causal_lm(j.name_or_path, dtype=_dtype(config.model.dtype), device=device).eval()
    generate = hf_chat_generator(model, tokenizer, max_new_tokens=j.max_new_tokens, batch_size=j.batch_size)
    cls = PairwiseLLMJudge if j.kind == "llm-pairwise" else ListwiseLLMJudge
    return cls(generate, retries=j.retries, name=j.label or f"{j.kind}:{j.name_or_path}")


def make_world(config: DNOConfig, device=None, judge=None) -> World:
    """The toy world when ``prompts.source == 'toy'``, a Hub world otherwise; ``judge`` overrides."""
    if config.prompts.source == "toy":
        if config.judge.kind != "toy":
            raise DNOInputError("prompts.source 'toy' needs judge.kind 'toy' (the toy task has its own judge)")
        toy = toy_world_from_config(config)
        return World("toy", judge if judge is not None else toy.judge, chat=False, config=config, toy=toy)
    if config.prompts.source == "ifeval":
        if judge is None and config.judge.kind == "toy":
            raise DNOInputError("judge.kind 'toy' only understands the toy task; for prompts.source 'ifeval' use "
                                "ifeval-panel, a reward model or an LLM judge")
        if not config.model.chat or not config.model.name_or_path:
            raise DNOInputError("prompts.source 'ifeval' is for chat models: set model.name_or_path (e.g. "
                                "smollm2-135m-instruct) and model.chat: true")
        return World("ifeval", judge if judge is not None else make_judge(config.judge, config, device),
                     chat=True, config=config)
    if config.use_gold and not config.prompts.gold_column:
        raise DNOInputError("use_gold: true needs prompts.gold_column (the teacher's answers); "
                            "set it, or set use_gold: false to rank the policy's own samples only")
    if judge is None and config.judge.kind in PROGRAMMATIC_JUDGES:
        raise DNOInputError(f"judge.kind {config.judge.kind!r} only understands its own task; pick reward-model "
                            "or an llm judge")
    return World("hub", judge if judge is not None else make_judge(config.judge, config, device),
                 chat=config.model.chat, config=config)
