"""Configuration of a DNO run: one tree of plain dataclasses, loaded from YAML, checked key by key.

Plain data only: importing this module loads neither torch nor transformers nor TRL, so a
config can be read, checked and compared anywhere (the trainer imports the config, never the
other way round, as TRL's ``DPOConfig`` / ``DPOTrainer`` are split). Unknown keys are an
error that lists the valid ones, and every value is checked against its field's type, so a
typo or a wrong type is never silently ignored.

Shipped configs (``configs/*.yaml``, also reachable by name: ``load_config("toy")``):
``toy`` is the CPU default of notebook 04, ``toy_smoke`` a small run for tests,
``hub_qwen_ultrafeedback`` the Colab GPU one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

PAIR_TYPES = ("T>S", "S>T", "S>S")  # teacher beats student, student beats teacher, student beats student
PAIR_MODES = ("margin", "soft", "best_worst", "spin", "gold")
LOSSES = ("dno", "sppo", "sft")
JUDGE_KINDS = ("toy", "ifeval-panel", "ifeval-heldout", "reward-model", "llm-pairwise", "llm-listwise")
PROGRAMMATIC_JUDGES = ("toy", "ifeval-panel", "ifeval-heldout")  # need no model


@dataclass(frozen=True)
class ModelSection:
    """The starting policy π₁: a folder or Hub id, or (toy world, empty) trained here by SFT."""

    name_or_path: str | None = None
    chat: bool = False  # wrap prompts in the tokenizer's chat template
    pad_with_eos: bool = False  # use EOS as the pad token when the tokenizer has none
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16


@dataclass(frozen=True)
class PromptsSection:
    """Where prompts (and gold answers) come from: ``toy``, ``ifeval`` (made by dnolab.lm.ifeval),
    a Hub dataset id, a folder or a JSON file."""

    source: str = "toy"
    split: str = "train"
    prompt_column: str = "prompt"
    gold_column: str | None = None
    limit: int | None = None
    # ifeval only: who writes the gold answer. template = a fixed templated answer per prompt;
    # corrector = one of the student's K answers, corrected to meet the constraints
    # (dnolab.lm.ifeval.corrector: nearly on-policy gold), the template where that fails.
    teacher: str = "template"

    def __post_init__(self):
        if self.teacher not in {"template", "corrector"}:
            raise ConfigError(f"prompts.teacher must be 'template' or 'corrector', got {self.teacher!r}")
        if self.teacher == "corrector" and self.source != "ifeval":
            raise ConfigError("prompts.teacher 'corrector' corrects answers to constraint prompts: it needs "
                              f"prompts.source 'ifeval', got {self.source!r}")


@dataclass(frozen=True)
class JudgeSection:
    """A general-preference judge: toy | ifeval-panel | ifeval-heldout (programmatic, see
    dnolab.lm.toy and dnolab.lm.ifeval) | reward-model | llm-pairwise | llm-listwise (a model)."""

    kind: str = "toy"
    name_or_path: str | None = None
    label: str | None = None  # how a held-out judge is named in metrics.json
    quality_weight: float = 2.0  # toy
    cycle_weight: float = 1.0  # toy
    noise: float = 0.0  # toy
    transitive_only: bool = False  # toy: drop the style cycle (quality alone)
    length_weight: float = 0.0  # toy: > 0 makes a verbosity-biased judge
    max_new_tokens: int = 512  # llm judges
    retries: int = 2  # llm judges
    batch_size: int = 8

    def __post_init__(self):
        if self.kind not in JUDGE_KINDS:
            raise ConfigError(f"judge.kind must be one of {list(JUDGE_KINDS)}, got {self.kind!r}")
        if self.kind not in PROGRAMMATIC_JUDGES and not self.name_or_path:
            raise ConfigError(f"judge.kind={self.kind!r} needs judge.name_or_path (a Hub id or a folder)")


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings (the paper: K = 5, temperature 0.7, top-p 0.95)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 12
    batch_size: int = 256  # prompts per generate() call
    # true: generate under bfloat16 autocast, weights staying fp32 (1.4x on a CPU with AMX,
    # benchmarks/results/cpu_bf16.md); samples then differ from fp32 ones by bf16 rounding.
    bf16: bool = False

    def __post_init__(self):
        if self.temperature <= 0:
            raise ConfigError(f"sampling.temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("sampling.max_new_tokens and sampling.batch_size must be >= 1")


@dataclass(frozen=True)
class PairRule:
    """Which (positive, negative) pairs to keep; scores are win rates in [0, 1].

    ``mode="margin"`` (DNO-Prct, Algorithm 2 line 6): the positive must reach the top band —
    ``positive_min`` (absolute; the paper's rubric rule "scores 5 or 6" becomes a win rate)
    and/or within ``positive_band`` of the prompt's best win rate — and each negative must be
    at least ``margin_teacher`` lower when the positive is the gold answer (paper: 2 rubric
    points) or ``margin_student`` lower when it is a student sample (paper: 1 point). Pairs of
    a type outside ``allowed_types`` and repeated text pairs are dropped first, then at most
    ``max_pairs_per_prompt`` pairs are kept, largest margins first.

    ``mode="soft"`` (Algorithm 1, eq. 8): every pair of candidates, with soft label
    σ(c·(r(y₁) − r(y₂))); c = ``soft_label_scale`` (1 is eq. 8 literally).
    ``mode="best_worst"`` (the iterative-DPO recipe, SPPO's pair): best vs worst candidate.
    ``mode="spin"`` (SPIN as the DNO paper re-implements it): the gold answer beats every
    student sample, whatever the judge says. ``mode="gold"``: the gold answer alone (SFT).
    ``allowed_types`` keeps only some pair types (DNO-Restrictive: ``("T>S",)``).

    ``deduplicate``: when samples repeat (a confident policy often draws the same answer K
    times), the same text pair would enter the data several times and weigh that prompt
    several-fold; with it on, each distinct (chosen, rejected) text pair counts once, the gold
    answer taking precedence over an identical student sample. The paper does not say.
    """

    mode: str = "margin"
    positive_min: float | None = None
    positive_band: float | None = 0.05
    margin_teacher: float = 0.2
    margin_student: float = 0.1
    max_pairs_per_prompt: int = 6
    soft_label_scale: float = 1.0
    allowed_types: tuple[str, ...] = PAIR_TYPES
    deduplicate: bool = True

    def __post_init__(self):
        if self.mode not in PAIR_MODES:
            raise ConfigError(f"pairs.mode must be one of {list(PAIR_MODES)}, got {self.mode!r}")
        if self.max_pairs_per_prompt < 1:
            raise ConfigError("pairs.max_pairs_per_prompt must be >= 1")
        if self.margin_teacher < 0 or self.margin_student < 0:
            raise ConfigError("pairs margins must be >= 0")
        for name in ("positive_min", "positive_band", "margin_teacher", "margin_student"):
            value = getattr(self, name)
            if value is not None and value > 1:
                raise ConfigError(f"pairs.{name}={value}: scores are win rates in [0, 1], so margins and "
                                  "bands above 1 keep nothing (a judge's raw scores are never compared)")
        unknown = set(self.allowed_types) - set(PAIR_TYPES)
        if unknown:
            raise ConfigError(f"unknown pair types {sorted(unknown)} in pairs.allowed_types; use {list(PAIR_TYPES)}")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser settings of the contrastive step (the paper: ≤ 1 epoch, effective batch 64)."""

    beta: float = 1.0
    learning_rate: float = 3e-4
    batch_size: int = 32  # effective (global) batch: per-device × processes × accumulation
    gradient_accumulation_steps: int = 1
    epochs: float = 1.0
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    bf16: str | bool = "auto"  # auto: bf16 where the GPU supports it
    reference_batch_size: int = 256
    # 0: full fine-tuning. > 0: LoRA adapters of this rank on every linear layer (peft), merged
    # into the weights at the end of the step, so that π_{t+1} is an ordinary model again.
    lora_rank: int = 0
    lora_alpha: float = 16.0
    # > 0: the input embeddings (with a tied output head, the head too) and the lowest this many
    # decoder layers stay fixed and run once per pair, not at every step (dnolab.lm.frozen); the
    # step trains the layers above (benchmarks/results/frozen_layers.md: 22 of 30 on SmolLM2-135M,
    # a step 0.28x as long).
    frozen_layers: int = 0
    # One row per pair (prompt | chosen | rejected under a 4D mask: the prompt computed once)
    # where the model's attention takes a custom mask (sdpa, eager); false: two rows per pair.
    # The same log-probs either way (tests/test_real_model_path.py), fewer tokens this way.
    share_prompt: bool = True
    # dno: BCE(β·Δ, target) (eq. 8 / eq. 13); sppo: SPPO's squared loss toward the win
    # rates of chosen and rejected (Wu et al. 2024), η = 1/β; sft: NLL of the chosen answer.
    loss: str = "dno"
    # > 0: adds nll_weight × the chosen answers' per-token NLL to the dno loss (RPO, Pang et al.
    # 2024, arXiv:2404.19733; TRL: loss_type ["sigmoid", "sft"], loss_weights [1, nll_weight]).
    # The DNO paper lists an undefined "alpha = 0.005" among its settings; this may be it.
    nll_weight: float = 0.0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"training.loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if not self.beta > 0:
            raise ConfigError(f"training.beta must be > 0 (it is DNO's η), got {self.beta}")
        if not self.nll_weight >= 0:
            raise ConfigError(f"training.nll_weight must be >= 0 (0: no NLL term), got {self.nll_weight}")
        if self.nll_weight and self.loss != "dno":
            raise ConfigError(f"training.nll_weight adds to the dno loss only; training.loss is {self.loss!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"training.learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("training.batch_size and gradient_accumulation_steps must be >= 1")
        if not self.epochs > 0:
            raise ConfigError(f"training.epochs must be > 0, got {self.epochs}")
        if self.lora_rank < 0 or not self.lora_alpha > 0:
            raise ConfigError(f"training.lora_rank must be >= 0 (0: full fine-tuning) and lora_alpha > 0, got "
                              f"{self.lora_rank} and {self.lora_alpha}")
        if self.frozen_layers < 0:
            raise ConfigError(f"training.frozen_layers must be >= 0 (0: every layer trains), got {self.frozen_layers}")
        if self.frozen_layers and self.lora_rank:
            raise ConfigError("training.frozen_layers and training.lora_rank both limit what trains: set one of them")
        if self.bf16 not in (True, False, "auto"):
            raise ConfigError(f"training.bf16 must be true, false or 'auto', got {self.bf16!r}")


@dataclass(frozen=True)
class ToySection:
    """The toy world (see dnolab.lm.toy): its SFT starting point and its teacher (style, slip).

    The teacher slips on prompts with at least ``teacher_slip_min_digits`` digits (null: a
    perfect teacher), on a ``teacher_slip_share`` of them: it swaps two neighbouring digits of
    the sorted answer, so the student can beat it on quality alone.
    """

    sft_steps: int = 1000
    sft_batch_size: int = 64
    sft_learning_rate: float = 3e-3
    hidden_size: int = 64
    num_layers: int = 2
    teacher_slip_min_digits: int | None = 6
    teacher_slip_share: float = 1.0
    teacher_style: str = "."  # the teacher's fixed style, one of ! ? .

    def __post_init__(self):
        if self.teacher_style not in ("!", "?", "."):
            raise ConfigError(f"toy.teacher_style must be one of '!', '?', '.', got {self.teacher_style!r}")
        if self.teacher_slip_min_digits is not None and self.teacher_slip_min_digits < 3:
            raise ConfigError(f"toy.teacher_slip_min_digits must be >= 3 or null, got {self.teacher_slip_min_digits}")
        if not 0 <= self.teacher_slip_share <= 1:
            raise ConfigError(f"toy.teacher_slip_share must be in [0, 1], got {self.teacher_slip_share}")


@dataclass(frozen=True)
class EvalSection:
    """Held-out prompts: ``prompts`` for reported win rates, ``validation_prompts`` to pick the
    best iterate. ``heldout_judges`` report every win rate a second time under judges the run
    never trained on (e.g. the toy judge's quality part alone)."""

    prompts: int = 1000
    validation_prompts: int = 200
    samples_per_prompt: int = 2
    heldout_judges: tuple[JudgeSection, ...] = ()

    def __post_init__(self):
        if self.prompts < 1 or self.validation_prompts < 1 or self.samples_per_prompt < 1:
            raise ConfigError("eval.prompts, eval.validation_prompts and eval.samples_per_prompt must be >= 1")
        labels = [j.label or j.kind for j in self.heldout_judges]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"eval.heldout_judges need distinct labels, got {labels}")


@dataclass(frozen=True)
class DNOConfig:
    """A whole DNO-Prct run (Algorithm 2) and its variants."""

    name: str = "toy"
    seed: int = 0
    output_dir: str = "runs"
    iterations: int = 3
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
        """A copy with top-level or dotted section fields replaced, e.g. ``{"training.beta": 0.5}``.

        Every key and value is checked as in a YAML file: an unknown section or field is named
        with the valid ones, a value of the wrong type with its key.
        """
        data = self.to_dict()
        for key, value in changes.items():
            parts = key.replace("__", ".").split(".")
            node, cls, where = data, DNOConfig, ""
            for part in parts[:-1]:
                hint = _field_hints(cls).get(part)
                if hint is None or not dataclasses.is_dataclass(hint):
                    sections = sorted(n for n, h in _field_hints(cls).items() if dataclasses.is_dataclass(h))
                    raise ConfigError(f"unknown config section {where + part!r} in {key!r}; "
                                      f"valid sections{' in ' + where.rstrip('.') if where else ''}: "
                                      f"{', '.join(sections)}")
                node, cls, where = node[part], hint, f"{where}{part}."
            if parts[-1] not in _field_hints(cls):
                raise ConfigError(f"unknown config key {key!r}; valid keys"
                                  f"{' in ' + where.rstrip('.') if where else ''}: "
                                  f"{', '.join(sorted(_field_hints(cls)))}")
            node[parts[-1]] = value
        return from_dict(data)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _field_hints(cls) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(hint) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(args[0])}s".replace("a list of a ", "a list of ").replace("an ", "")
    return _TYPE_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _coerce(hint, value, key: str):
    """``value`` checked against the field type ``hint`` (and converted: int → float, list → tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError:
                continue
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    elif dataclasses.is_dataclass(hint):
        return _build(hint, {} if value is None else value, f"{key}.")
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-7 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r} ({type(value).__name__})")


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or 'the config'} must be a mapping of keys to values, "
                          f"got {type(data).__name__}")
    hints = _field_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(repr(where + str(k)) for k in unknown)}; "
            f"valid keys{' in ' + where.rstrip('.') if where else ''}: {', '.join(sorted(hints))}")
    kwargs = {name: _coerce(hints[name], value, where + name) for name, value in data.items()}
    return cls(**kwargs)


def from_dict(data: dict) -> DNOConfig:
    """A checked config from a plain mapping."""
    return _build(DNOConfig, data or {}, "")


CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # the shipped YAML files


def config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the shipped config of that name (``"toy"`` → ``configs/toy.yaml``)."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"no config file {name_or_path!r} and no shipped config of that name; shipped: {names}")


def load_config(name_or_path: str | Path, overrides: dict | None = None) -> DNOConfig:
    """Read a YAML config (a path, or a shipped config's name); ``overrides`` are dotted keys."""
    path = config_path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    config = from_dict(data)
    return config.replace(**overrides) if overrides else config
