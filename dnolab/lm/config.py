"""Configuration of a DNO run: one dataclass tree, loaded from YAML, checked key by key.

Unknown keys are an error that lists the valid ones (a typo must never be silently ignored).
``configs/toy.yaml`` is the CPU default; ``configs/hub_qwen_ultrafeedback.yaml`` the Colab GPU one.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .pairs import PairRule
from .sampling import SamplingConfig
from .trainer import TrainingConfig


class ConfigError(ValueError):
    """A config that cannot describe a run; the message names the key and the fix."""


@dataclass(frozen=True)
class ModelSection:
    """The starting policy π₁: a folder or Hub id, or (toy world, empty) trained here by SFT."""

    name_or_path: str | None = None
    chat: bool = False  # wrap prompts in the tokenizer's chat template
    pad_with_eos: bool = False  # use EOS as the pad token when the tokenizer has none
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16


@dataclass(frozen=True)
class PromptsSection:
    """Where prompts (and gold answers) come from: ``toy``, a Hub dataset id, a folder or a JSON file."""

    source: str = "toy"
    split: str = "train"
    prompt_column: str = "prompt"
    gold_column: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class JudgeSection:
    """The general-preference judge: toy | reward-model | llm-pairwise | llm-listwise."""

    kind: str = "toy"
    name_or_path: str | None = None
    quality_weight: float = 2.0  # toy
    cycle_weight: float = 1.0  # toy
    noise: float = 0.0  # toy
    transitive_only: bool = False  # toy
    length_weight: float = 0.0  # toy: > 0 makes a verbosity-biased judge
    max_new_tokens: int = 512  # llm judges
    retries: int = 2  # llm judges
    batch_size: int = 8

    def __post_init__(self):
        kinds = {"toy", "reward-model", "llm-pairwise", "llm-listwise"}
        if self.kind not in kinds:
            raise ConfigError(f"judge.kind must be one of {sorted(kinds)}, got {self.kind!r}")
        if self.kind != "toy" and not self.name_or_path:
            raise ConfigError(f"judge.kind={self.kind!r} needs judge.name_or_path (a Hub id or a folder)")


@dataclass(frozen=True)
class ToySection:
    """The toy world's SFT starting point (see dnolab.lm.toy)."""

    sft_steps: int = 1000
    sft_batch_size: int = 64
    sft_learning_rate: float = 3e-3
    hidden_size: int = 64
    num_layers: int = 2


@dataclass(frozen=True)
class EvalSection:
    """Held-out prompts: ``prompts`` for reported win rates, ``validation_prompts`` to pick the best iterate."""

    prompts: int = 1000
    validation_prompts: int = 200
    samples_per_prompt: int = 2


@dataclass(frozen=True)
class DNOConfig:
    """A whole DNO-Prct run (Algorithm 2) and its variants."""

    name: str = "toy"
    seed: int = 0
    output_dir: str = "runs"
    iterations: int = 4
    prompts_per_iteration: int = 1000
    samples_per_prompt: int = 4  # K
    use_gold: bool = True  # add the teacher's answer to the candidates (Algorithm 2, line 3)
    # The reference of the contrastive step: previous = π_t (DNO); initial = π₁ throughout
    # (iterative / offline DPO); mixture = π_t^(1−α)·π₁^α with α = mixture_alpha = τ/η
    # (DNO's regularised Algorithm 4, Option II).
    reference: str = "previous"
    # Whose samples make the pairs: current = π_t (on-policy); initial = π₁ (offline data);
    # mixture = the token-level geometric mixture π_t^(1−α)·π₁^α (Algorithm 4, Option II).
    sample_from: str = "current"
    mixture_alpha: float = 0.1
    # Who ranks the candidates for the pairs: judge = the general-preference judge; reward_model
    # = a Bradley–Terry reward model fitted once on the first iteration's judgments (the
    # RLHFlow/OpenRLHF iterative-DPO recipe). Evaluation always uses the judge.
    ranker: str = "judge"
    replay: tuple[float, ...] = ()  # shares of pairs replayed from t−1, t−2, … (paper: 0.3, 0.15)
    max_invalid_share: float = 0.5  # fail when more judgments than this are invalid
    model: ModelSection = field(default_factory=ModelSection)
    prompts: PromptsSection = field(default_factory=PromptsSection)
    judge: JudgeSection = field(default_factory=JudgeSection)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    pairs: PairRule = field(default_factory=PairRule)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalSection = field(default_factory=EvalSection)
    toy: ToySection = field(default_factory=ToySection)

    def __post_init__(self):
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.samples_per_prompt < 2:
            raise ConfigError(
                f"samples_per_prompt (K) must be >= 2 to compare a policy's samples, got {self.samples_per_prompt}")
        if self.prompts_per_iteration < 1:
            raise ConfigError("prompts_per_iteration must be >= 1")
        if self.reference not in {"previous", "initial", "mixture"}:
            raise ConfigError(
                f"reference must be 'previous' (DNO), 'initial' or 'mixture', got {self.reference!r}")
        if self.sample_from not in {"current", "initial", "mixture"}:
            raise ConfigError(
                f"sample_from must be 'current', 'initial' or 'mixture', got {self.sample_from!r}")
        if not 0 < self.mixture_alpha < 1:
            raise ConfigError(f"mixture_alpha (τ/η) must be in (0, 1), got {self.mixture_alpha}")
        if self.ranker not in {"judge", "reward_model"}:
            raise ConfigError(f"ranker must be 'judge' or 'reward_model', got {self.ranker!r}")
        if self.pairs.mode in {"spin", "gold"} and not self.use_gold:
            raise ConfigError(f"pairs.mode {self.pairs.mode!r} needs use_gold: true (the gold answer wins)")
        if self.training.loss == "sppo" and self.pairs.mode != "best_worst":
            raise ConfigError("training.loss 'sppo' regresses the best and worst sample: set pairs.mode best_worst")
        if not 0 <= self.max_invalid_share <= 1:
            raise ConfigError("max_invalid_share must be in [0, 1]")
        if any(not 0 <= s <= 1 for s in self.replay):
            raise ConfigError(f"replay shares must be in [0, 1], got {list(self.replay)}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name must be a plain folder name, got {self.name!r}")

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes) -> DNOConfig:
        """A copy with top-level fields or dotted section fields replaced, e.g. ``{"training.beta": 0.5}``."""
        data = self.to_dict()
        for key, value in changes.items():
            parts = key.replace("__", ".").split(".")
            node = data
            for part in parts[:-1]:
                node = node[part]
            node[parts[-1]] = value
        return from_dict(data)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(repr(where + k) for k in unknown)}; "
            f"valid keys{' in ' + where.rstrip('.') if where else ''}: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{where}{name}.")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid value in {where.rstrip('.') or 'the config'}: {err}") from None


def from_dict(data: dict) -> DNOConfig:
    """A checked config from a plain mapping."""
    return _build(DNOConfig, data or {}, "")


def load_config(path: str | Path, overrides: dict | None = None) -> DNOConfig:
    """Read a YAML config; ``overrides`` are dotted keys, e.g. ``{"iterations": 2}``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    config = from_dict(data)
    return config.replace(**overrides) if overrides else config
