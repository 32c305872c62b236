"""The inner optimisation of one DNO iteration, on ``transformers.Trainer``.

Building on ``Trainer`` gives ``accelerate launch`` / ``torchrun``, bf16, gradient
accumulation, DeepSpeed and FSDP unchanged. The reference π_t is never held in memory during
training: its sequence log-probabilities are computed once per iteration
(:func:`add_reference_logps`) and travel with the pairs, which also makes the first step's
loss exactly log 2.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .config import LOSSES, TrainingConfig
from .data import encode_prompt, end_of_turn_id
from .errors import ConfigError, DNOInputError
from .frozen import FrozenPrefix, freeze_lowest_layers, only_layers
from .losses import dno_loss, pair_completion_logps, sppo_loss

__all__ = ["LOSSES", "DNOTrainer", "PreferenceCollator", "TrainingConfig", "add_reference_logps", "collator_for",
           "cpu_has_bf16_matmul", "reference_logps", "tokenize_pairs", "train_on_pairs", "uses_bf16"]

def tokenize_pairs(pairs, tokenizer, chat: bool):
    """Add ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` to a pair dataset.

    A completion that ended by itself gets the token that ends an answer (the end-of-sequence
    token, as TRL does, or a chat template's end of turn: :func:`dnolab.lm.data.end_of_turn_id`);
    one that was cut at ``max_new_tokens`` (``chosen_finished`` / ``rejected_finished`` false)
    does not, or training would teach the policy to stop mid-sentence.
    """
    end = end_of_turn_id(tokenizer, chat)

    def encode(batch):
        if chat:
            prompt_ids = [encode_prompt(tokenizer, p, chat=True) for p in batch["prompt"]]
        else:
            prompt_ids = tokenizer(batch["prompt"], add_special_tokens=True)["input_ids"]
        n = len(batch["prompt"])
        out = {"prompt_ids": prompt_ids}
        for side in ("chosen", "rejected"):
            ids = tokenizer(batch[side], add_special_tokens=False)["input_ids"]
            ended = batch.get(f"{side}_finished") or [True] * n
            out[f"{side}_ids"] = [[*c, end] if done else list(c) for c, done in zip(ids, ended, strict=True)]
        return out

    return pairs.map(encode, batched=True, batch_size=1000)


# The attention implementations that take a custom 4D mask, and the mask's dtype for each.
SHARED_PROMPT_MASKS = {"sdpa": torch.bool, "eager": torch.float32}


class PreferenceCollator:
    """Pairs → one batch, with the columns TRL's preference collator makes (``input_ids``,
    ``attention_mask``, ``completion_mask``, reference log-probs) plus ``position_ids``, the
    per-pair soft ``target`` of Algorithm 1 (1.0 when absent) and, for SPPO, the win rates
    ``chosen_score`` / ``rejected_score``. Two layouts:

    * two rows per pair, [chosen; rejected], each ``prompt + completion``. Unlike TRL's
      (right-padded rows), prompts are left-padded and completions right-padded, so every
      completion starts at the same column and the model's head can skip the prompt columns
      (:func:`dnolab.lm.losses.completion_logps`); positions count from each row's first real
      token, so padding changes nothing.
    * ``share_prompt``: one row per pair, ``prompt | chosen | rejected``, under a 4D mask in
      which the rejected answer cannot see the chosen one (:func:`dnolab.lm.losses.shared_prompt_logps`).
      The same log-probs for one prompt's work instead of two: on notebook 06's pairs (batches
      of 8), the prompts are 61 % of a two-row batch's real tokens, and a batch has 1.44× fewer
      tokens this way (27 % padding in either layout).
      ``mask_dtype``: bool (sdpa) or a float dtype (eager: 0 or the dtype's minimum, added to
      the scores); see :func:`collator_for`.
    """

    def __init__(self, pad_token_id: int, share_prompt: bool = False, mask_dtype: torch.dtype = torch.bool):
        self.pad_token_id, self.share_prompt, self.mask_dtype = pad_token_id, share_prompt, mask_dtype

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if self.share_prompt and all(e["prompt_ids"] for e in examples):
            batch = self.shared_rows([(e["prompt_ids"], e["chosen_ids"], e["rejected_ids"]) for e in examples])
        else:
            rows = [(e["prompt_ids"], e["chosen_ids"]) for e in examples]
            rows += [(e["prompt_ids"], e["rejected_ids"]) for e in examples]
            batch = self.rows(rows)
        for key in ("ref_chosen_logps", "ref_rejected_logps", "chosen_score", "rejected_score"):
            if key in examples[0]:
                batch[key] = torch.tensor([float(e[key]) for e in examples])
        batch["target"] = torch.tensor([float(e.get("target", 1.0)) for e in examples])
        if "pair_index" in examples[0]:  # the key to a pair's cached frozen-layer states
            batch["pair_index"] = torch.tensor([int(e["pair_index"]) for e in examples])
        return batch

    def rows(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """(prompt ids, completion ids) rows, aligned on the first completion column."""
        width_p = max(len(p) for p, _ in rows)
        width_c = max(len(c) for _, c in rows)
        ids, attention, completion = [], [], []
        for p, c in rows:
            left, right = width_p - len(p), width_c - len(c)
            ids.append([self.pad_token_id] * left + list(p) + list(c) + [self.pad_token_id] * right)
            attention.append([0] * left + [1] * (len(p) + len(c)) + [0] * right)
            completion.append([0] * width_p + [1] * len(c) + [0] * right)
        batch = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(attention),
                 "completion_mask": torch.tensor(completion)}
        batch["position_ids"] = (batch["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
        return batch

    def shared_rows(self, rows: list[tuple[list[int], list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """(prompt, chosen, rejected) ids → rows ``prompt | chosen | rejected`` in column blocks
        of the same widths in every row (``shared_prompt_widths``), a 4D attention mask and
        positions that restart after the prompt for each answer."""
        w_p, w_c, w_r = (max(len(row[i]) for row in rows) for i in range(3))
        pad = self.pad_token_id
        ids, real, positions, completion = [], [], [], []
        for p, c, r in rows:
            left, gap_c, gap_r = w_p - len(p), w_c - len(c), w_r - len(r)
            ids.append([pad] * left + list(p) + list(c) + [pad] * gap_c + list(r) + [pad] * gap_r)
            real.append([0] * left + [1] * (len(p) + len(c)) + [0] * gap_c + [1] * len(r) + [0] * gap_r)
            answer = list(range(len(p), len(p) + len(c))), list(range(len(p), len(p) + len(r)))
            positions.append([0] * left + list(range(len(p))) + answer[0] + [0] * gap_c + answer[1] + [0] * gap_r)
            completion.append([0] * w_p + [1] * len(c) + [0] * gap_c + [1] * len(r) + [0] * gap_r)
        column = torch.arange(w_p + w_c + w_r)
        causal = column[None, :] <= column[:, None]  # [query, key]
        rejected_sees_chosen = ((column[:, None] >= w_p + w_c)
                                & (column[None, :] >= w_p) & (column[None, :] < w_p + w_c))
        allowed = (causal & ~rejected_sees_chosen)[None] & torch.tensor(real, dtype=torch.bool)[:, None, :]
        # A padding column sees itself, so no query row is fully masked: some sdpa kernels (e.g.
        # CUDA's memory-efficient one) return NaN for such a row. Its output is never used.
        allowed |= torch.eye(len(column), dtype=torch.bool)
        mask = allowed[:, None]
        if self.mask_dtype != torch.bool:
            mask = torch.zeros(mask.shape, dtype=self.mask_dtype).masked_fill(~mask, torch.finfo(self.mask_dtype).min)
        return {"input_ids": torch.tensor(ids), "attention_mask": mask, "position_ids": torch.tensor(positions),
                "completion_mask": torch.tensor(completion), "shared_prompt_widths": torch.tensor([w_p, w_c, w_r])}


def collator_for(model, pad_token_id: int, share_prompt: bool = True) -> PreferenceCollator:
    """The shared-prompt layout where asked for and the model's attention takes a custom 4D
    mask (sdpa, eager); the two-row layout otherwise (e.g. flash-attention, which takes none)."""
    config = getattr(model, "config", None)
    mask_dtype = SHARED_PROMPT_MASKS.get(getattr(config, "_attn_implementation", None)) if share_prompt else None
    return PreferenceCollator(pad_token_id, share_prompt=mask_dtype is not None,
                              mask_dtype=mask_dtype or torch.bool)


def chosen_token_counts(batch: dict) -> torch.Tensor:
    """Tokens in each pair's chosen answer, in either layout."""
    mask = batch["completion_mask"]
    if "shared_prompt_widths" in batch:
        w_p, w_c, _ = (int(w) for w in batch["shared_prompt_widths"])
        return mask[:, w_p:w_p + w_c].sum(dim=1)
    return mask[:, 1:].sum(dim=1).chunk(2)[0]  # column 0 is predicted by nothing


@torch.no_grad()
def pair_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probabilities of the chosen and rejected completions of a collated batch."""
    return pair_completion_logps(model, batch).chunk(2)


def add_reference_logps(model, dataset, tokenizer, batch_size: int = 256, device=None, show_progress: bool = False,
                        bf16: bool = False, share_prompt: bool = True):
    """Score every pair with the reference π_t once; add ``ref_chosen_logps``/``ref_rejected_logps``.

    ``bf16``: under the same bfloat16 autocast as a step that trains in bf16 (:func:`uses_bf16`),
    so that β·Δ starts at 0 up to bf16 rounding, which also depends on how a batch is padded
    (benchmarks/results/cpu_bf16.md); scored in fp32 instead, each answer's would be about 0.17
    nats (median) away from what the step computes.
    """
    from tqdm.auto import tqdm

    device = torch.device(device) if device else next(model.parameters()).device
    collator = collator_for(model, tokenizer.pad_token_id, share_prompt)
    columns = dataset.select_columns(["prompt_ids", "chosen_ids", "rejected_ids"]).to_dict()
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    for start in tqdm(range(0, len(dataset), batch_size), desc="reference log-probs",
                      disable=not show_progress, leave=False):
        rows = [{k: v[i] for k, v in columns.items()} for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(device) for k, v in collator(rows).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            c, r = pair_logps(model, batch)
        chosen += c.float().cpu().tolist()
        rejected += r.float().cpu().tolist()
    model.train(was_training)
    for name in ("ref_chosen_logps", "ref_rejected_logps"):
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
    return dataset.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)


def reference_logps(pairs, reference: str, policy, load_initial, tokenizer, config: TrainingConfig,
                    alpha: float, show_progress: bool = False):
    """The reference log-probs of the contrastive step, computed once per iteration: π_t
    (``previous``: DNO, Algorithm 2 line 7), π₁ (``initial``: DPO with a fixed reference), or
    the unnormalised geometric mixture (1 − α)·log π_t + α·log π₁ (``mixture``: DNO's
    regularised Algorithm 4, reference π_t^(1−τ/η)·π_ref^(τ/η) with α = τ/η).
    ``load_initial()`` returns π₁ when needed."""
    if config.loss == "sft":  # maximum likelihood has no reference
        zeros = [0.0] * len(pairs)
        return pairs.add_column("ref_chosen_logps", zeros).add_column("ref_rejected_logps", zeros)
    batch = config.reference_batch_size
    kwargs = {"show_progress": show_progress, "bf16": uses_bf16(config, next(policy.parameters()).is_cuda),
              "share_prompt": config.share_prompt}
    if reference == "previous":
        return add_reference_logps(policy, pairs, tokenizer, batch, **kwargs)
    initial = add_reference_logps(load_initial(), pairs, tokenizer, batch, **kwargs)
    if reference == "initial":
        return initial
    current = add_reference_logps(policy, pairs, tokenizer, batch, **kwargs)
    keys = ("ref_chosen_logps", "ref_rejected_logps")
    mixed = {k: [(1 - alpha) * x + alpha * y for x, y in zip(current[k], initial[k], strict=True)] for k in keys}
    current = current.remove_columns(list(keys))
    return current.add_column(keys[0], mixed[keys[0]]).add_column(keys[1], mixed[keys[1]])


class StepProgress(TrainerCallback):
    """A quiet progress bar over optimiser steps (the Trainer's own prints every log dict)."""

    def __init__(self, desc: str = "training"):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_local_process_zero:
            self.bar = tqdm(total=state.max_steps, desc=self.desc, leave=False)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(1)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


def quiet_trainer(trainer, show_progress: bool, desc: str = "training"):
    """Replace the Trainer's printing callbacks by :class:`StepProgress` (or nothing)."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if show_progress:
        trainer.add_callback(StepProgress(desc))
    return trainer


STEP_KEYS = ("loss", "margin", "accuracy", "chosen_logratio", "rejected_logratio", "grad_norm", "learning_rate")


class StepRecorder(TrainerCallback):
    """Keeps each optimiser step's log (the Trainer averages the loss over processes)."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    @property
    def losses(self) -> list[float]:
        return [s["loss"] for s in self.steps]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.steps.append({k: float(logs[k]) for k in STEP_KEYS if k in logs})


def dno_batch_loss(model, inputs: dict, beta: float, loss: str = "dno", nll_weight: float = 0.0):
    """Mean loss of a collated batch (either layout of PreferenceCollator) and the policy's log-probs;
    ``nll_weight`` > 0 adds that multiple of the chosen answers' NLL per token (RPO)."""
    chosen, rejected = pair_completion_logps(model, inputs).chunk(2)
    chosen_tokens = chosen_token_counts(inputs)
    if loss == "sft":  # per-token NLL of the chosen (gold) answer
        return (-chosen / chosen_tokens.clamp(min=1)).mean(), chosen, rejected
    if loss == "sppo":
        losses = sppo_loss(chosen, rejected, inputs["ref_chosen_logps"], inputs["ref_rejected_logps"],
                           inputs["chosen_score"], inputs["rejected_score"], beta)
        return losses.mean(), chosen, rejected
    target = inputs.get("target", 1.0)
    losses = dno_loss(chosen, rejected, inputs["ref_chosen_logps"], inputs["ref_rejected_logps"], beta, target)
    if nll_weight:  # over the batch's chosen tokens, as TRL's "sft" loss term
        return losses.mean() - nll_weight * chosen.sum() / chosen_tokens.sum().clamp(min=1), chosen, rejected
    return losses.mean(), chosen, rejected


class DNOTrainer(Trainer):
    """``Trainer`` whose loss is DNO's BCE(β·Δ, target) with precomputed reference log-probs."""

    # compute_loss returns a per-batch mean, so the Trainer must divide by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, beta: float, loss: str = "dno", nll_weight: float = 0.0, **kwargs):
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta, self.loss_type, self.nll_weight = beta, loss, nll_weight
        self.prefix: FrozenPrefix | None = None  # set by train_on_pairs with training.frozen_layers
        self._step_metrics: dict[str, list[float]] = {}
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.prefix is None:
            loss, chosen, rejected = dno_batch_loss(model, inputs, self.beta, self.loss_type, self.nll_weight)
        else:  # the frozen lower layers' output was computed once: run the layers above it
            inputs = {**inputs, "inputs_embeds": self.prefix.hidden_for(inputs)}
            with only_layers(self.accelerator.unwrap_model(model), self.prefix.n_layers):
                loss, chosen, rejected = dno_batch_loss(model, inputs, self.beta, self.loss_type, self.nll_weight)
        if model.training:
            self._record(chosen.detach(), rejected.detach(), inputs)
        return (loss, {"chosen_logps": chosen, "rejected_logps": rejected}) if return_outputs else loss

    def _record(self, chosen, rejected, inputs):
        """What TRL's DPO trainer logs to show that training works, per micro-batch, averaged
        over processes: β·Δ (the implicit reward margin), the share of pairs with β·Δ > 0,
        and the log-ratios log π/π_t of the chosen and rejected answers."""
        chosen_ratio = chosen - inputs["ref_chosen_logps"]
        rejected_ratio = rejected - inputs["ref_rejected_logps"]
        margin = self.beta * (chosen_ratio - rejected_ratio)
        values = {"margin": margin, "accuracy": (margin > 0).float(),
                  "chosen_logratio": chosen_ratio, "rejected_logratio": rejected_ratio}
        for name, value in values.items():
            self._step_metrics.setdefault(name, []).append(
                self.accelerator.gather_for_metrics(value.float()).mean().item())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._step_metrics:
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._step_metrics.items()}}
            self._step_metrics = {}
        super().log(logs, start_time)


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16). Without either
    torch emulates them, and bf16 is then slower than fp32 (benchmarks/results/cpu_bf16_emulated.md)."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is None:  # torch too old to say: assume it does rather than warn wrongly
        return True
    caps = get()
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def uses_bf16(config: TrainingConfig, cuda: bool) -> bool:
    """Whether the step trains under bfloat16 autocast: ``auto`` where the GPU supports it;
    ``true`` also on a CPU, where it pays on one with AMX (benchmarks/results/cpu_bf16.md)."""
    return (cuda and torch.cuda.is_bf16_supported()) if config.bf16 == "auto" else bool(config.bf16)


def training_arguments(config: TrainingConfig, output_dir: str, seed: int, n_pairs: int,
                       world_size: int = 1, use_cpu: bool | None = None, show_progress: bool = False,
                       logging_steps: int = 1) -> TrainingArguments:
    """TrainingArguments for one iteration: global batch ``config.batch_size`` split over processes."""
    per_device, rest = divmod(config.batch_size, world_size * config.gradient_accumulation_steps)
    if per_device < 1 or rest:
        raise ConfigError(
            f"training.batch_size={config.batch_size} must be a multiple of processes × accumulation "
            f"({world_size} × {config.gradient_accumulation_steps})")
    cuda = torch.cuda.is_available() and not use_cpu
    bf16 = uses_bf16(config, cuda)
    return TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=math.ceil(config.warmup_ratio * max(
            1, n_pairs // config.batch_size)), weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, logging_steps=logging_steps, save_strategy="no",
        report_to="none", seed=seed, data_seed=seed, bf16=bf16, use_cpu=not cuda,
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True,
        # A last, incomplete batch is dropped: under torchrun accelerate would pad it with
        # repeated pairs, so one process and several would train on different data.
        dataloader_drop_last=n_pairs >= config.batch_size,
    )


def train_on_pairs(model, tokenizer, pairs, config: TrainingConfig, output_dir: str, seed: int,
                   world_size: int = 1, use_cpu: bool | None = None, show_progress: bool = False,
                   callbacks: list | None = None):
    """One contrastive step over the pairs (≤ ``epochs`` passes); returns (model, per-step logs):
    loss, β·Δ margin, pair accuracy, log-ratios, gradient norm, learning rate.

    ``pairs`` must already hold token ids and reference log-probs (:func:`tokenize_pairs`,
    :func:`add_reference_logps`).
    """
    needed = {"prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps", "ref_rejected_logps"}
    missing = needed - set(pairs.column_names)
    if missing:
        raise DNOInputError(f"pairs lack columns {sorted(missing)}: run tokenize_pairs and add_reference_logps first")
    optional = ["target"] + (["chosen_score", "rejected_score"] if config.loss == "sppo" else [])
    keep = [*sorted(needed), *(c for c in optional if c in pairs.column_names)]
    args = training_arguments(config, output_dir, seed, len(pairs), world_size, use_cpu, show_progress)
    if config.lora_rank:
        model = with_lora(model, config.lora_rank, config.lora_alpha)
    if config.frozen_layers:
        freeze_lowest_layers(model, config.frozen_layers)
        pairs = pairs.remove_columns([c for c in ["pair_index"] if c in pairs.column_names])
        pairs = pairs.add_column("pair_index", list(range(len(pairs))))
        keep.append("pair_index")
    recorder = StepRecorder()
    collator = collator_for(model, tokenizer.pad_token_id, config.share_prompt)
    trainer = DNOTrainer(model=model, args=args, beta=config.beta, loss=config.loss,
                         nll_weight=config.nll_weight, train_dataset=pairs.select_columns(keep),
                         data_collator=collator, callbacks=[recorder, *(callbacks or [])])
    if config.frozen_layers:  # after the Trainer has put the model on its device
        examples = pairs.select_columns(["pair_index", "prompt_ids", "chosen_ids", "rejected_ids"]).to_list()
        trainer.prefix = FrozenPrefix(config.frozen_layers).build(
            model, examples, collator, config.reference_batch_size, bf16=args.bf16)
    quiet_trainer(trainer, show_progress, desc="training")
    trainer.train()
    model = trainer.model
    if config.lora_rank:
        model = model.merge_and_unload()  # W + (α/r)·B·A: the next iterate is a plain model
    if config.frozen_layers:
        model.requires_grad_(True)  # the next iterate is an ordinary model again
    return model, recorder.steps


def with_lora(model, rank: int, alpha: float):
    """The model with trainable LoRA adapters (Hu et al. 2021, arXiv:2106.09685) on every linear
    layer but the output head, everything else frozen: W·x + (α/r)·B·A·x, B = 0 at the start, so
    the first step starts exactly at π_t."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))
