"""Running many DNO configurations side by side (notebook 05): seeds × methods, in parallel.

``workers`` worker processes (spawned, one torch thread each) take runs from a queue, so the
CPU cores are shared without the threads slowing each other down and each worker pays the
import of torch and transformers once. Finished run folders are reused by a later call (the
loop resumes). Plumbing only; the comparison itself is written out in the notebook.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from .config import DNOConfig, from_dict
from .errors import ConfigError
from .rundir import RunDir, config_diff


def _init_worker() -> None:
    from ..utils import set_cpu_threads

    set_cpu_threads()


def _run_config(data: dict) -> str:
    from .loop import run_dno

    config = from_dict(data)
    run_dno(config, show_progress=False)
    return str(config.run_dir())


def _build_policy(dest: str, config_data: dict) -> str:
    from .toy import build_initial_policy
    from .world import toy_world_from_config

    config = from_dict(config_data)
    return str(build_initial_policy(toy_world_from_config(config), Path(dest), seed=config.seed,
                                    show_progress=False))


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)


def _drain(futures, desc: str) -> None:
    for f in tqdm(as_completed(futures), total=len(futures), desc=desc):
        f.result()  # re-raises a worker's exception with its message


def build_toy_policies(config: DNOConfig, seeds, out_dir: str | Path, workers: int = 2) -> dict[int, Path]:
    """One SFT starting policy π₁ per seed, shared by every method of that seed, built from
    ``config``'s toy world (its ``toy`` section: SFT steps, batch size, learning rate, model
    size). A policy already in ``out_dir`` is reused only if it was built from the same world;
    otherwise the error names the folder to delete."""
    from .world import toy_world_from_config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {s: out_dir / f"sft_seed{s}" for s in seeds}
    world = toy_world_from_config(config).to_dict()
    todo = []
    for s in seeds:
        if not (paths[s] / "config.json").exists():
            todo.append(s)
            continue
        stored = paths[s] / "toy_world.json"
        if not stored.exists() or json.loads(stored.read_text()) != world:
            raise ConfigError(f"{paths[s]} holds a starting policy built from another toy world than this "
                              "config's; delete the folder to rebuild it")
    if todo:
        with _pool(min(workers, len(todo))) as pool:
            _drain([pool.submit(_build_policy, str(paths[s]), config.replace(seed=s).to_dict()) for s in todo],
                   "SFT policies")
    return paths


def run_configs(configs: list[DNOConfig], workers: int = 2, desc: str = "runs") -> list[dict]:
    """Run every config (resuming finished ones) and return their summaries, in order."""
    names = [c.run_dir() for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError("two configs share a run folder; give each a distinct name")
    with _pool(workers) as pool:
        _drain([pool.submit(_run_config, c.to_dict()) for c in configs], desc)
    return [summary(c.run_dir()) for c in configs]


# What may differ between two runs that share a reward model: nothing that changes the first
# iteration's samples and judgments, on which the reward model is fitted.
_SHAREABLE = ("name", "reference", "replay", "training.")


def share_reward_model(source: DNOConfig, target: DNOConfig) -> Path:
    """Give ``target``'s run the reward model that ``source``'s finished run fitted
    (``ranker: reward_model``; dnolab.lm.reward_model keeps it in ``<run>/reward_model``).

    The reward model is fitted on the first iteration's judgments, so two runs whose first
    iteration is the same (same seed, starting policy, prompts, candidates and judge) would fit
    the same model: sharing it saves the fit and makes the two runs differ in exactly what
    their configs change. Refused when the configs differ in anything else."""
    if source.ranker != "reward_model" or target.ranker != "reward_model":
        raise ConfigError("share_reward_model needs two runs with ranker: reward_model")
    differ = [d for d in config_diff(source.to_dict(), target.to_dict()) if not d.startswith(_SHAREABLE)]
    if differ:
        raise ConfigError(f"runs {source.name!r} and {target.name!r} do not start alike, so their reward models "
                          f"would differ: {'; '.join(differ)}")
    src, dst = source.run_dir() / "reward_model", target.run_dir() / "reward_model"
    if not (src / "config.json").exists():
        raise ConfigError(f"{src} does not exist yet: run {source.name!r} first")
    if not (dst / "config.json").exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(".reward_model.shared")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        tmp.rename(dst)
    return dst


def summary(run_dir: str | Path) -> dict:
    """The per-iteration metrics of a finished run."""
    return RunDir(run_dir).read_summary()


def final_metrics(run_dir: str | Path) -> dict:
    """metrics.json of the last finished iteration."""
    return RunDir(run_dir).read_metrics(summary(run_dir)["iterations_done"])


def seed_interval(values) -> dict:
    """Mean over seeds with a 95 % Student-t interval (n − 1 degrees of freedom)."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return {"mean": float(x.mean()), "ci95": float("nan"), "n": int(x.size)}
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return {"mean": float(x.mean()), "ci95": float(half), "n": int(x.size)}
