"""The run folder of a DNO run: its layout, its atomic writers, and what counts as done.

::

    runs/<name>/config.yaml                      the config the run was started with
    runs/<name>/judges.yaml                      the judges' classes and settings (training, held-out)
    runs/<name>/iter_00/policy/                  π₁ (the starting policy), eval_samples/, metrics.json
    runs/<name>/iter_NN/samples/, judgments/, pairs/     iteration NN's data (datasets)
    runs/<name>/iter_NN/policy/                  π_{NN+1}, train_log.json, eval_samples/, metrics.json
    runs/<name>/summary.json                     every iteration's metrics and the best iterate

Every stage is written into a temporary sibling and renamed, so a stage exists only when it is
complete; ``metrics.json`` is written last and marks its iteration done. This is the only
module that knows the layout: the loop, the evaluation, the experiments and the notebooks ask
it for paths and files.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import yaml

from ..utils import write_json
from .errors import ConfigError, CorruptRunError

METRICS, SUMMARY, CONFIG, TRAIN_LOG = "metrics.json", "summary.json", "config.yaml", "train_log.json"
JUDGES = "judges.yaml"
SAMPLES, JUDGMENTS, PAIRS, POLICY, EVAL_SAMPLES = "samples", "judgments", "pairs", "policy", "eval_samples"


@contextmanager
def atomic_dir(path: Path, enabled: bool = True):
    """Yield a temporary folder that replaces ``path`` only if the block finishes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if enabled:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        if enabled:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if enabled:
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)


def save_pretrained_atomic(model, tokenizer, dest: Path) -> Path:
    """``save_pretrained`` of a model and its tokenizer into ``dest``, all or nothing."""
    with atomic_dir(Path(dest)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(dest)


def save_rows(rows: list[dict], dest: Path, enabled: bool = True) -> None:
    """A list of records saved as a ``datasets`` folder, atomically (only where ``enabled``)."""
    from datasets import Dataset

    with atomic_dir(dest, enabled) as tmp:
        if enabled:
            Dataset.from_list(rows).save_to_disk(str(tmp))


def load_rows(path: Path):
    from datasets import load_from_disk

    return load_from_disk(str(path))


class RunDir:
    """Paths and files of one run folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def iteration(self, t: int) -> Path:
        """``iter_NN``: iteration t's folder (0 holds the starting policy π₁)."""
        return self.path / f"iter_{t:02d}"

    def stage(self, t: int, name: str) -> Path:
        return self.iteration(t) / name

    def policy(self, t: int) -> Path:
        """The folder of π_{t+1}, the policy iteration t produced (t = 0: π₁)."""
        return self.stage(t, POLICY)

    def policy_done(self, t: int) -> bool:
        return (self.policy(t) / "config.json").exists()

    def metrics_path(self, t: int) -> Path:
        return self.stage(t, METRICS)

    def read_metrics(self, t: int) -> dict:
        path = self.metrics_path(t)
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CorruptRunError(
                f"{path} is unreadable ({err}); delete {path.parent} to redo that iteration") from None

    def write_metrics(self, t: int, metrics: dict) -> None:
        write_json(self.metrics_path(t), metrics)

    def write_train_log(self, t: int, log: dict) -> None:
        write_json(self.stage(t, TRAIN_LOG), log)

    def read_train_log(self, t: int) -> dict:
        return json.loads(self.stage(t, TRAIN_LOG).read_text())

    def done_iterations(self) -> list[int]:
        """Indices of finished iterations; checks that they are contiguous from 0 and complete."""
        done = sorted(int(p.name[5:]) for p in self.path.glob("iter_[0-9][0-9]") if (p / METRICS).exists())
        for expected, t in enumerate(done):
            if t != expected:
                raise CorruptRunError(
                    f"{self.path} has iteration {t} finished but iteration {expected} is not; "
                    f"delete {self.iteration(t)} and later iterations to recover")
            if not self.policy_done(t):
                raise CorruptRunError(
                    f"{self.iteration(t)} is marked done but has no policy; delete that folder to redo it")
            self.read_metrics(t)
        return done

    def prepare(self, config_dict: dict, is_main: bool, defaults: dict | None = None) -> None:
        """Create the run folder or check that an existing one was started with the same config.

        Only ``iterations`` may differ (to extend a finished run: the prompt partitions of the
        earlier iterations, validation and evaluation do not depend on it). A setting the stored
        config lacks (added to dnolab after the run started) counts as the same when the new
        value is its default in ``defaults``: a new option's default keeps the old behaviour.
        """
        stored_path = self.path / CONFIG
        if stored_path.exists():
            try:
                stored = yaml.safe_load(stored_path.read_text())
            except yaml.YAMLError as err:
                raise CorruptRunError(
                    f"{stored_path} is not valid YAML ({err}); delete {self.path} to start over") from None
            if not isinstance(stored, dict):
                raise CorruptRunError(f"{stored_path} does not hold a config; delete {self.path} to start over")
            diff = config_diff(stored, config_dict, defaults=defaults)
            if diff:
                raise ConfigError(
                    f"{self.path} was started with a different config ({'; '.join(diff[:5])}). "
                    "Use another name, or delete the folder to start over")
        elif is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = stored_path.with_name(f".{CONFIG}.tmp")
            tmp.write_text(yaml.safe_dump(config_dict, sort_keys=False))
            os.replace(tmp, stored_path)

    def check_judges(self, described: dict, is_main: bool) -> None:
        """Record the judges (``describe_judge`` per label) or check them against the record.

        The config names a judge's kind, not the settings of a judge object passed in code
        (``run_dno(config, judge=PanelJudge(cut_penalty=1))``); without this record such a run
        would resume under another judge and mix two judges' pairs. A folder started before the
        record existed gets one now.
        """
        path = self.path / JUDGES
        if path.exists():
            stored = yaml.safe_load(path.read_text()) or {}
            diff = config_diff(stored, described)
            if diff:
                raise ConfigError(
                    f"{self.path} was judged by different judges ({'; '.join(diff[:5])}). "
                    "Use another name, pass the same judges, or delete the folder to start over")
        elif is_main:
            tmp = path.with_name(f".{JUDGES}.tmp")
            tmp.write_text(yaml.safe_dump(described, sort_keys=False))
            os.replace(tmp, path)

    def eval_samples(self, t: int) -> dict[int, list[str]]:
        """Iterate t's responses to the evaluation prompts, ``{prompt index: [responses]}``."""
        return {int(r["prompt_index"]): [x.strip() for x in r["responses"]]
                for r in load_rows(self.stage(t, EVAL_SAMPLES))}

    def eval_finished(self, t: int) -> dict[int, list[bool]]:
        """Whether each evaluation response ended by itself (EOS) rather than being cut."""
        rows = load_rows(self.stage(t, EVAL_SAMPLES))
        return {int(r["prompt_index"]): list(r.get("finished") or [True] * len(r["responses"])) for r in rows}

    def load_eval(self, t: int) -> tuple[list[str], list[str] | None, dict[int, list[str]]]:
        """Evaluation prompts, gold answers and iterate t's responses."""
        rows = sorted(load_rows(self.stage(t, EVAL_SAMPLES)).to_list(), key=lambda r: r["prompt_index"])
        gold = [r["gold"] for r in rows] if rows and rows[0].get("gold") is not None else None
        return ([r["prompt"] for r in rows], gold,
                {i: [x.strip() for x in r["responses"]] for i, r in enumerate(rows)})

    def pairs(self, t: int):
        """Iteration t's new pairs (without the placeholder row of an empty pair set)."""
        return load_rows(self.stage(t, PAIRS)).filter(lambda r: r["iteration"] >= 0)

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / SUMMARY, summary)

    def read_summary(self) -> dict:
        return json.loads((self.path / SUMMARY).read_text())


def config_diff(old: dict, new: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """``key: old -> new`` for every setting that differs, except the top-level ``iterations``
    (extending a run continues it), the top-level ``output_dir`` (the folder is already found:
    a relative path spelled from another working directory, e.g. ``notebooks/``, names the same
    run) and a key ``old`` lacks whose new value is its value in ``defaults``."""
    out, defaults = [], defaults or {}
    for key in sorted(set(old) | set(new)):
        if prefix == "" and key in ("iterations", "output_dir"):
            continue
        a, b = old.get(key), new.get(key)
        if key not in old and key in defaults and b == defaults[key]:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = defaults.get(key)
            out += config_diff(a, b, f"{prefix}{key}.", sub if isinstance(sub, dict) else None)
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
