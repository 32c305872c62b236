"""DNO and its peers as configurations of one loop (notebook 05).

Every method is the same harness (sampling, judging, pair building, a Trainer step,
evaluation) with a few settings changed, so differences in the results come from the
method, not from the plumbing. ``method_config(base, name)`` applies a method to a config;
:data:`CHANGES` says in words what each one changes with respect to DNO-Prct.

| method | what changes with respect to DNO-Prct |
|---|---|
| ``dno_prct`` | nothing: Algorithm 2 (on-policy samples + gold, large-margin pairs, reference π_t) |
| ``dno_alg1`` | Algorithm 1: every candidate pair with soft label σ(r₁ − r₂), β = 0.1 |
| ``dno_restrictive`` | only teacher-beats-student pairs (the paper's DNO-Restrictive) |
| ``dno_regularized`` | Algorithm 4, Option II: samples from and reference π_t^(1−α)·π₁^α, α = τ/η = 0.1 |
| ``spin`` | the gold answer always beats every sample, no judge, reference π_t: SPIN as the DNO paper re-implements it |
| ``sppo`` | SPPO's squared loss toward the win rates of the best and worst sample, no gold, reference π_t |
| ``iterative_dpo_ref`` | one change: the reference stays π₁ |
| ``iterative_dpo_ranker`` | one change: a Bradley–Terry reward model fitted on iteration 1's judgments ranks the candidates |
| ``iterative_dpo_ref_ranker`` | both of the above |
| ``iterative_dpo`` | both, and no gold and one best-vs-worst pair per prompt: the RLHFlow / OpenRLHF recipe |
| ``offline_dpo`` | samples from π₁ only (never from the policy being trained), reference π₁, no gold, two epochs per partition |
| ``sft_gold`` | continued SFT on the gold answers (no judge, no contrast) |

Ablations (one ingredient of DNO-Prct removed or changed each): ``no_margin_filter`` keeps
every pair the judge decides (no band, no margin, no cap), ``no_gold``, ``beta_0.5``,
``beta_2``, ``replay`` (the paper's 30 % / 15 % of earlier pairs).
"""

from __future__ import annotations

from .config import DNOConfig
from .errors import ConfigError

_FIXED_REFERENCE = {"reference": "initial"}
_RM_RANKER = {"ranker": "reward_model"}

METHODS: dict[str, dict] = {
    "dno_prct": {},
    "dno_alg1": {"pairs.mode": "soft", "training.beta": 0.1, "training.learning_rate": 5e-4},
    "dno_restrictive": {"pairs.allowed_types": ["T>S"]},
    "dno_regularized": {"reference": "mixture", "sample_from": "mixture", "mixture_alpha": 0.1},
    "spin": {"pairs.mode": "spin"},
    "sppo": {"use_gold": False, "pairs.mode": "best_worst", "training.loss": "sppo", "training.beta": 0.1},
    "iterative_dpo_ref": {**_FIXED_REFERENCE},
    "iterative_dpo_ranker": {**_RM_RANKER},
    "iterative_dpo_ref_ranker": {**_FIXED_REFERENCE, **_RM_RANKER},
    "iterative_dpo": {**_FIXED_REFERENCE, **_RM_RANKER, "use_gold": False, "pairs.mode": "best_worst"},
    "offline_dpo": {"sample_from": "initial", "reference": "initial", "use_gold": False, "training.epochs": 2},
    "sft_gold": {"pairs.mode": "gold", "training.loss": "sft", "training.learning_rate": 1e-3},
}

# The pair rule's filter switched off: any positive (no band), any negative the judge ranks
# lower at all (a margin of 1e-6 in win rate: pairs the judge does not separate are not
# decided, and a tie would give both orders), and no cap on pairs per prompt.
NO_FILTER = {"pairs.positive_band": None, "pairs.positive_min": None, "pairs.margin_teacher": 1e-6,
             "pairs.margin_student": 1e-6, "pairs.max_pairs_per_prompt": 10_000}

ABLATIONS: dict[str, dict] = {
    "no_margin_filter": NO_FILTER,
    "no_gold": {"use_gold": False},
    "beta_0.5": {"training.beta": 0.5},
    "beta_2": {"training.beta": 2.0},
    "replay": {"replay": [0.3, 0.15]},
}

CHANGES: dict[str, str] = {
    "dno_prct": "DNO-Prct itself (Algorithm 2)",
    "dno_alg1": "soft labels on every pair, β = 0.1 (Algorithm 1)",
    "dno_restrictive": "only T≻S pairs",
    "dno_regularized": "samples, reference: mix of π_t and π₁",
    "spin": "gold always wins, no judge",
    "sppo": "SPPO loss, best vs worst, no gold",
    "iterative_dpo_ref": "reference π₁",
    "iterative_dpo_ranker": "BT reward model ranks",
    "iterative_dpo_ref_ranker": "reference π₁ + BT reward model",
    "iterative_dpo": "+ no gold, best vs worst",
    "offline_dpo": "π₁'s samples only, no gold, ref π₁",
    "sft_gold": "SFT on the gold answers",
    "no_margin_filter": "every decided pair",
    "no_gold": "no gold answer",
    "beta_0.5": "β = 0.5",
    "beta_2": "β = 2",
    "replay": "replay 30 % / 15 %",
}


def method_config(base: DNOConfig, name: str, **overrides) -> DNOConfig:
    """``base`` with method (or ablation) ``name`` applied; the run is named after it."""
    table = {**METHODS, **ABLATIONS}
    if name not in table:
        raise ConfigError(f"unknown method {name!r}; choose one of {sorted(table)}")
    return base.replace(**{"name": f"{base.name}_{name}", **table[name], **overrides})
