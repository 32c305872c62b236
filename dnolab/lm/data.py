"""Loading models, tokenizers and prompt sets, and turning prompts and responses into token ids.

The toy world and Hub models go through the same functions: ``from_pretrained`` on a local
folder or a Hub id, a prompt table with an optional gold column, and one encoding rule
(chat template when the tokenizer has one and the run asks for it, plain text otherwise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DNOInputError
from .local_models import resolve_model


def _quiet_progress_bars() -> None:
    """datasets and transformers draw a bar per map, filter, save and weight load; the loop
    draws one per stage instead."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


_quiet_progress_bars()

__all__ = ["DNOInputError", "PromptSet", "check_prompt_lengths", "completion_text", "encode_prompt", "end_of_turn_id",
           "load_causal_lm", "load_prompt_dataset", "load_tokenizer", "split_prompts"]


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


def _offline_model_kwargs() -> dict:
    """``from_pretrained`` settings for every model dnolab loads (policy, reward judges, the fitted
    reward model): offline, local files only and the model's own layers. transformers 5 swaps
    layers for Hub kernels by default (the `kernels` package it installs fetches them); offline
    none can be fetched, and on a GPU `model.train()` then fails inside the trainer (seen on an
    H200 without network)."""
    return {"local_files_only": True, "use_kernels": False} if _hub_offline() else {}


def load_tokenizer(name_or_path: str, require_pad: bool = True, pad_with_eos: bool = False):
    """``AutoTokenizer.from_pretrained`` with left padding and a checked pad token."""
    from transformers import AutoTokenizer

    name_or_path = resolve_model(name_or_path)  # a local model's name → its cached folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=_hub_offline())
    except (OSError, ValueError) as err:
        raise _load_error("tokenizer", name_or_path, err) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None and require_pad:
        if pad_with_eos and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            raise DNOInputError(
                f"the tokenizer of {name_or_path!r} has no pad token, which batched sampling and "
                "training need. Set `pad_with_eos: true` in the model section of the config (uses the "
                "end-of-sequence token for padding) or give the tokenizer a pad token"
            )
    return tokenizer


def load_causal_lm(name_or_path: str, dtype=None, device=None):
    """``AutoModelForCausalLM.from_pretrained`` with an error that says what to do when offline."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    name_or_path = resolve_model(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **_offline_model_kwargs())
    except (OSError, ValueError) as err:
        raise _load_error("model", name_or_path, err) from None
    model.__dict__.pop("forward", None)  # in case a TRL trainer patched it on an in-memory copy
    return model.to(device) if device is not None else model


def _load_error(what: str, name_or_path: str, err: Exception) -> DNOInputError:
    if Path(name_or_path).exists():
        return DNOInputError(f"could not load the {what} from the folder {name_or_path!r}: {err}")
    where = ("the Hugging Face Hub is unreachable or offline (HF_HUB_OFFLINE=1)" if _hub_offline()
             else "it is not a local folder and the Hugging Face Hub did not provide it")
    return DNOInputError(
        f"could not load the {what} {name_or_path!r}: {where}. Pass the path of a folder saved "
        f"with save_pretrained, or download it first (e.g. `huggingface-cli download {name_or_path}`) "
        f"on a machine with network access. Original error: {type(err).__name__}: {str(err)[:200]}"
    )


@dataclass
class PromptSet:
    """Prompts with optional gold (teacher) answers; ``eval_only`` marks prompts that may only
    be used for evaluation (e.g. constraint kinds held out of training)."""

    prompts: list[str]
    gold: list[str] | None = None
    eval_only: list[bool] | None = None

    def __post_init__(self):
        if not self.prompts:
            raise DNOInputError("the prompt set is empty: give at least one prompt")
        bad = [i for i, p in enumerate(self.prompts) if not isinstance(p, str) or not p.strip()]
        if bad:
            raise DNOInputError(f"prompts must be non-empty strings; prompt #{bad[0]} is {self.prompts[bad[0]]!r}")
        if self.gold is not None and len(self.gold) != len(self.prompts):
            raise DNOInputError(f"got {len(self.gold)} gold answers for {len(self.prompts)} prompts")
        if self.eval_only is not None and len(self.eval_only) != len(self.prompts):
            raise DNOInputError(f"got {len(self.eval_only)} eval_only flags for {len(self.prompts)} prompts")

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, index) -> PromptSet:
        index = list(index)
        return PromptSet([self.prompts[i] for i in index],
                         None if self.gold is None else [self.gold[i] for i in index],
                         None if self.eval_only is None else [self.eval_only[i] for i in index])


def _message_text(value) -> str:
    """Text of a prompt/answer column value: a string, or the last message of a chat list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and "content" in value[-1]:
        return str(value[-1]["content"])
    raise DNOInputError(f"cannot read text from a column value of type {type(value).__name__}: {str(value)[:80]}")


def load_prompt_dataset(source: str, split: str = "train", prompt_column: str = "prompt",
                        gold_column: str | None = None, limit: int | None = None,
                        seed: int = 0) -> PromptSet:
    """Prompts (and gold answers) from a Hub dataset id, a ``save_to_disk`` folder or a JSON(L) file.

    Chat-formatted columns (lists of messages, as in UltraFeedback's ``chosen``) contribute
    their last message. Rows come in a seeded random order, and ``limit`` keeps the first
    ``limit`` of them, so a larger limit only adds prompts at the end.
    """
    import datasets

    path = Path(source)
    try:
        if path.is_dir() and (path / "dataset_info.json").exists():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
        elif path.is_file():
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        elif _hub_offline():
            raise FileNotFoundError(f"{source!r} is not a local folder or file")
        else:
            ds = datasets.load_dataset(source, split=split)
    except DNOInputError:
        raise
    except Exception as err:
        raise _load_error("prompt dataset", source, err) from None
    missing = [c for c in (prompt_column, gold_column) if c is not None and c not in ds.column_names]
    if missing:
        raise DNOInputError(
            f"the prompt dataset {source!r} has no column {missing[0]!r}; its columns are {ds.column_names}. "
            "Set prompt_column / gold_column in the prompts section of the config"
        )
    ds = ds.shuffle(seed=seed)
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    prompts = [_message_text(v) for v in ds[prompt_column]]
    gold = [_message_text(v) for v in ds[gold_column]] if gold_column else None
    return PromptSet(prompts, gold)


def split_prompts(prompts: PromptSet, sizes: dict[str, int]) -> dict[str, PromptSet]:
    """Disjoint partitions of a prompt set, carved in the order of ``sizes`` from its start.

    The pool is already in a seeded random order, so taking consecutive blocks is a random
    split; and since evaluation and validation come first, their prompts do not depend on how
    many iterations follow (a finished run can be extended without reshuffling them). Prompts
    marked ``eval_only`` go only to the part named ``eval``; other parts skip them.
    """
    eval_only = prompts.eval_only or [False] * len(prompts)
    out, cursor = {}, 0
    for name, size in sizes.items():
        take = []
        while len(take) < size and cursor < len(prompts):
            if name == "eval" or not eval_only[cursor]:
                take.append(cursor)
            cursor += 1
        if len(take) < size:
            raise DNOInputError(
                f"the run needs {sum(sizes.values())} distinct prompts ({sizes}) but the prompt set has "
                f"{len(prompts)}{' usable ones' if any(eval_only) else ''}; lower prompts_per_iteration / "
                "eval sizes or give more prompts")
        out[name] = prompts.subset(take)
    return out


def completion_text(text: str, chat: bool) -> str:
    """A response as TRL expects a raw-text completion: with a leading space (none for chat)."""
    text = text.strip()
    return text if chat else " " + text


def encode_prompt(tokenizer, prompt: str, chat: bool) -> list[int]:
    """Token ids of a prompt: the chat template with a generation prompt, or plain text."""
    if chat:
        if getattr(tokenizer, "chat_template", None) is None:
            raise DNOInputError("chat: true needs a tokenizer with a chat template; set chat: false for plain prompts")
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def end_of_turn_id(tokenizer, chat: bool) -> int:
    """The token that ends an answer: for a chat model, the one its chat template writes after
    an assistant message (SmolLM2's and Qwen's ``<|im_end|>``, Llama 3's ``<|eot_id|>``,
    Gemma's ``<end_of_turn>``), which is not always the tokenizer's EOS (Gemma's is ``<eos>``);
    otherwise, and where the template does not show one, the tokenizer's EOS."""
    eos = tokenizer.eos_token_id
    if not chat or getattr(tokenizer, "chat_template", None) is None:
        return eos
    probe = "dnolab-end-of-turn-probe"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": probe}], tokenize=False)
    except Exception:  # a template with rules of its own (roles, system turns): keep the EOS
        return eos
    if probe not in text:
        return eos
    after = tokenizer(text.split(probe, 1)[1], add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    return after[0] if after and after[0] in special else eos


def context_length(model) -> int | None:
    """The model's maximum sequence length, if its config states one."""
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_lengths(tokenizer, prompts: list[str], chat: bool, max_new_tokens: int, model) -> None:
    """Refuse prompts that leave no room for a response within the model's context."""
    limit = context_length(model)
    if limit is None:
        return
    for i, prompt in enumerate(prompts):
        n = len(encode_prompt(tokenizer, prompt, chat))
        if n + max_new_tokens > limit:
            raise DNOInputError(
                f"prompt #{i} has {n} tokens; with max_new_tokens={max_new_tokens} that exceeds the model's "
                f"context of {limit} tokens ({prompt[:50]!r}...). Drop or shorten long prompts (e.g. filter the dataset by length) "
                "or lower sampling.max_new_tokens"
            )
