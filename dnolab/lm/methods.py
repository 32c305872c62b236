"""DNO and its peers as configurations of one loop (notebook 05).

Every method is the same harness (sampling, judging, pair building, a Trainer step,
evaluation) with a few settings changed, so differences in the results come from the
method, not from the plumbing. ``method_config(base, name)`` applies a method to a config.

| method | what changes |
|---|---|
| ``dno_prct`` | nothing: Algorithm 2 (on-policy samples + gold, large-margin pairs, reference π_t) |
| ``dno_alg1`` | Algorithm 1: every candidate pair with soft label σ(r₁ − r₂), β = 0.1 |
| ``dno_restrictive`` | only teacher-beats-student pairs (the paper's DNO-Restrictive) |
| ``dno_regularized`` | Algorithm 4, Option II: samples from and reference π_t^(1−α)·π₁^α, α = τ/η = 0.1 |
| ``spin`` | gold always beats every sample, no judge (Chen et al. 2024), reference π_t |
| ``sppo`` | SPPO's squared loss toward estimated win rates of best and worst sample, no gold, reference π_t |
| ``iterative_dpo`` | fixed reference π₁, best-vs-worst samples ranked by a BT reward model fitted on iteration 1's judgments, no gold (RLHFlow / OpenRLHF) |
| ``offline_dpo`` | fixed reference π₁, pairs from π₁'s samples only, two epochs per partition |
| ``sft_gold`` | continued SFT on the gold answers |
"""

from __future__ import annotations

from .config import DNOConfig
from .errors import ConfigError

METHODS: dict[str, dict] = {
    "dno_prct": {},
    "dno_alg1": {"pairs.mode": "soft", "training.beta": 0.1, "training.learning_rate": 5e-4},
    "dno_restrictive": {"pairs.allowed_types": ["T>S"]},
    "dno_regularized": {"reference": "mixture", "sample_from": "mixture", "mixture_alpha": 0.1},
    "spin": {"pairs.mode": "spin"},
    "sppo": {"use_gold": False, "pairs.mode": "best_worst", "training.loss": "sppo", "training.beta": 0.1},
    "iterative_dpo": {"use_gold": False, "reference": "initial", "ranker": "reward_model",
                      "pairs.mode": "best_worst"},
    "offline_dpo": {"sample_from": "initial", "reference": "initial", "training.epochs": 2},
    "sft_gold": {"pairs.mode": "gold", "training.loss": "sft", "training.learning_rate": 1e-3},
}

ABLATIONS: dict[str, dict] = {
    "no_margin_filter": {"pairs.positive_band": None, "pairs.margin_teacher": 1e-6,
                         "pairs.margin_student": 1e-6},
    "no_gold": {"use_gold": False},
    "beta_0.5": {"training.beta": 0.5},
    "beta_2": {"training.beta": 2.0},
    "replay": {"replay": [0.3, 0.15]},
}


def method_config(base: DNOConfig, name: str, **overrides) -> DNOConfig:
    """``base`` with method (or ablation) ``name`` applied; the run is named after it."""
    table = {**METHODS, **ABLATIONS}
    if name not in table:
        raise ConfigError(f"unknown method {name!r}; choose one of {sorted(table)}")
    return base.replace(**{"name": f"{base.name}_{name}", **table[name], **overrides})
