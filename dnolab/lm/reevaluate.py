"""Measure a finished run's iterates again under another evaluation setting, without training.

One answer per evaluation prompt makes a head-to-head interval about ±0.04 wide on 200
prompts: enough to see a large gain, not to tell whether the third iterate beats the second
by five points. More answers per prompt narrow it, and adding a held-out judge asks a new
question of the same iterates; neither needs the samples, pairs or weights to be made again.

:func:`reevaluate_run` makes a new run folder next to the source whose config differs only in
the ``eval`` settings that leave every prompt partition as it was, hard-links the training
stages of each finished iteration into it (π₁, samples, judgments, pairs, π_{t+1} and its
training log), and lets the engine resume it: every stage is reused except the evaluation,
which runs as in any run and writes fresh ``metrics.json`` and ``summary.json``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import load_config
from .distributed import process_state
from .errors import ConfigError, CorruptRunError
from .rundir import CONFIG, JUDGES, JUDGMENTS, PAIRS, POLICY, SAMPLES, TRAIN_LOG, RunDir, atomic_dir

# eval.prompts and eval.validation_prompts are drawn from the same pool as the iterations'
# prompts (DNORun.parts), so changing them would pair reused samples with other prompts
CHANGEABLE = ("eval.samples_per_prompt", "eval.heldout_judges")
TRAINING_STAGES = (SAMPLES, JUDGMENTS, PAIRS, POLICY, TRAIN_LOG)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no space, no time); a copy where the file system has none."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_stage(src: Path, dst: Path) -> None:
    if dst.exists() or not src.exists():
        return
    if src.is_dir():
        with atomic_dir(dst) as tmp:
            shutil.copytree(src, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
    else:
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.unlink(missing_ok=True)
        _link_or_copy(str(src), str(tmp))
        os.replace(tmp, dst)


def reevaluation_config(source: str | os.PathLike, name: str, changes: dict):
    """The source run's config with ``changes`` (dotted ``eval`` keys) and the new name, in the
    source's parent folder; checked before anything is written."""
    source = Path(source)
    if not (source / CONFIG).exists():
        raise ConfigError(f"{source} is not a run folder (no {CONFIG}); pass the folder of a DNO run, "
                          "e.g. runs/smollm2_ifeval")
    if not changes:
        raise ConfigError(f"nothing to change: pass e.g. eval.samples_per_prompt=3 (changeable: {', '.join(CHANGEABLE)})")
    other = sorted(k for k in changes if k.replace("__", ".") not in CHANGEABLE)
    if other:
        raise ConfigError(f"only {', '.join(CHANGEABLE)} can change when a run is evaluated again, not "
                          f"{', '.join(other)}: the other settings made the samples, pairs and weights "
                          "being reused (eval.prompts and eval.validation_prompts too: they share one "
                          "pool of prompts with the iterations). Start a new run to change them")
    if not name or name == source.name or "/" in name or "\\" in name:
        raise ConfigError(f"the re-evaluated run needs a new folder name next to {source.name!r}, got {name!r}")
    done = RunDir(source).done_iterations()
    if not done:
        raise CorruptRunError(f"{source} has no finished iteration: nothing to evaluate again")
    return load_config(source / CONFIG).replace(
        name=name, output_dir=str(source.parent), iterations=done[-1], **changes)


def reevaluate_run(source: str | os.PathLike, name: str, changes: dict, show_progress: bool = True,
                   judge=None, heldout_judges=None) -> dict:
    """Evaluate the finished iterates of the run in ``source`` again under ``changes`` into
    ``<source's parent>/<name>`` and return its summary (as :func:`dnolab.lm.loop.run_dno`).

    The source folder is only read. Rerunning resumes, as any run does. ``judge`` and
    ``heldout_judges`` are passed on as in ``run_dno``; the training judge must be the one the
    source was trained under (its record in the source's judges.yaml is compared).
    """
    import yaml

    from .loop import DNORun

    config = reevaluation_config(source, name, changes)
    src, dst = RunDir(source), RunDir(config.run_dir())
    created = not dst.path.exists() and process_state().is_main_process  # only the main process removes it
    try:  # the new folder's config and judges' record; nothing is linked until they agree
        run = DNORun(config, show_progress=show_progress, judge=judge, heldout_judges=heldout_judges)
        before = (yaml.safe_load((src.path / JUDGES).read_text()) or {}).get("train") \
            if (src.path / JUDGES).exists() else None
        now = yaml.safe_load((dst.path / JUDGES).read_text())["train"]
        if before is not None and before != now:
            raise ConfigError(f"{src.path} was trained under another judge ({before}) than this one ({now}): "
                              "its pairs would be scored again by a judge that did not choose them. Pass the "
                              "judge the run was made with (judge=...)")
    except BaseException:
        if created:
            shutil.rmtree(dst.path, ignore_errors=True)
        raise
    if run.is_main:  # under torchrun one process links, the others wait
        for t in range(config.iterations + 1):
            dst.iteration(t).mkdir(exist_ok=True)
            for stage in TRAINING_STAGES:
                _link_stage(src.stage(t, stage), dst.stage(t, stage))
    run.state.wait_for_everyone()
    return run.run()
