"""A Bradley–Terry reward model fitted once on judgments: the ranker of the iterative-DPO recipe.

RLHFlow / OpenRLHF's iterative DPO ranks each prompt's samples with a fixed reward model and
trains on best-vs-worst pairs with a fixed reference. To compare DNO with it on the same
harness, we fit that reward model on the first iteration's general-preference judgments:
every decided pair of candidates becomes a (chosen, rejected) example, and TRL's
``RewardTrainer`` fits a sequence-classification head (initialised from the starting
policy) by the Bradley–Terry loss. Being a BT model, it cannot represent the judge's cycle.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import DNOInputError
from .judges import RewardModelJudge
from .rundir import save_pretrained_atomic


def comparison_rows(judgments) -> list[dict]:
    """(prompt, chosen, rejected) for every candidate pair the judge decided (P ≠ 1/2)."""
    rows = []
    for r in judgments:
        W, cands = r["win_matrix"], r["candidates"]
        for i in range(len(cands)):
            for j in range(i + 1, len(cands)):
                p = W[i][j]
                if p is None or p != p or abs(p - 0.5) < 1e-9 or cands[i] == cands[j]:
                    continue
                winner, loser = (i, j) if p > 0.5 else (j, i)
                rows.append({"prompt": r["prompt"], "chosen": cands[winner], "rejected": cands[loser]})
    if not rows:
        raise DNOInputError("the judgments decide no pair of candidates, so there is nothing to fit a reward "
                            "model on; check the judge, or use more prompts in iteration 1")
    return rows


def fit_reward_model(judgments, init_path: str, dest: Path, seed: int, chat: bool,
                     epochs: float = 12.0, learning_rate: float = 1e-3, batch_size: int = 64,
                     show_progress: bool = False) -> Path:
    """Train the reward model with TRL's RewardTrainer and save it to ``dest`` (atomically).

    On the toy world, 12 epochs over one iteration's comparisons (~4k) were needed for the
    reward model to agree with the judge's ranking on 74 % of held-out pairs (2 epochs: 53 %).
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from .data import _offline_model_kwargs
    from .trainer import quiet_trainer

    tokenizer = AutoTokenizer.from_pretrained(init_path)
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new score head is "missing" from the policy: expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(init_path, num_labels=1, **_offline_model_kwargs())
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    data = Dataset.from_list(comparison_rows(judgments)).shuffle(seed=seed)
    if chat:  # conversational format: TRL applies the chat template
        data = data.map(lambda r: {"prompt": [{"role": "user", "content": r["prompt"]}],
                                   "chosen": [{"role": "assistant", "content": r["chosen"].strip()}],
                                   "rejected": [{"role": "assistant", "content": r["rejected"].strip()}]})
    cuda = torch.cuda.is_available()
    args = RewardConfig(output_dir=str(dest.with_name(f".{dest.name}.trainer")), num_train_epochs=epochs, learning_rate=learning_rate,
                        per_device_train_batch_size=batch_size, lr_scheduler_type="cosine", report_to="none",
                        save_strategy="no", seed=seed, bf16=cuda and torch.cuda.is_bf16_supported(),
                        use_cpu=not cuda, activation_checkpointing=False, max_length=256,
                        disable_tqdm=True, logging_steps=10, dataloader_num_workers=0)
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    quiet_trainer(trainer, show_progress, desc="reward model")
    trainer.train()
    model.__dict__.pop("forward", None)
    shutil.rmtree(args.output_dir, ignore_errors=True)
    return save_pretrained_atomic(model, tokenizer, dest)


def load_reward_judge(path: Path, chat: bool, device=None) -> RewardModelJudge:
    """The fitted reward model as a (listwise, Bradley–Terry) judge."""
    judge = RewardModelJudge.from_pretrained(str(path), device=device, chat=chat, batch_size=256,
                                             append_eos=not chat)  # as RewardTrainer saw the text
    judge.name = "bt-reward-model"
    return judge


def reward_model_ranker(rundir, first_judgments, seed: int, chat: bool, state, show_progress: bool = False):
    """The ranker of ``ranker: reward_model``: fitted on iteration 1's judgments (those of π₁'s
    samples) into ``<run>/reward_model``, then reused unchanged in later iterations."""
    from .distributed import exists_everywhere
    from .errors import CorruptRunError

    path = rundir.path / "reward_model"
    if not exists_everywhere(path / "config.json", state):
        if first_judgments is None:
            raise CorruptRunError(f"{path} is missing; delete {rundir.path} to start over")
        if state.is_main_process:
            fit_reward_model(first_judgments, str(rundir.policy(0)), path, seed=seed, chat=chat,
                             show_progress=show_progress)
        state.wait_for_everyone()
    return load_reward_judge(path, chat, device=state.device)
