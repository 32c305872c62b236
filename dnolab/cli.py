"""The ``dnolab`` command.

* ``dnolab dno --config configs/toy.yaml [--set training.beta=0.5 ...]`` runs (or resumes) DNO;
  works the same under ``torchrun --nproc_per_node N`` and ``accelerate launch``.
* ``dnolab reevaluate runs/NAME --name NEW --set eval.samples_per_prompt=3`` measures a finished
  run's iterates again (more answers per prompt, another held-out judge) without training.
* ``dnolab toy-policy --out DIR`` builds the toy world's SFT starting policy.
* ``dnolab notebooks [--smoke] [--only 01]`` executes the notebooks (see dnolab.notebooks).
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml


def _parse_sets(items: list[str]) -> dict:
    """``--set key=value`` pairs; values are read as YAML (``3`` is a number, ``[0.3, 0.15]`` a list)."""
    from .lm.errors import ConfigError

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects key=value, e.g. --set training.beta=0.5, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key.strip()}: cannot read the value {value!r} ({err})") from None
    return out


def _dno(args) -> int:
    from .lm.errors import DNOError

    try:  # our own input errors print one line; anything else is a bug and keeps its traceback
        return _run_dno(args)
    except DNOError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run_dno(args) -> int:
    from .lm.config import load_config

    config = load_config(args.config)
    if args.method:  # the method first, so that --set can still change its settings
        from .lm.methods import method_config

        config = method_config(config, args.method)
    config = config.replace(**_parse_sets(args.set))  # checked before torch is even imported

    import torch

    from .lm.loop import run_dno
    from .utils import set_cpu_threads

    if not torch.cuda.is_available():
        set_cpu_threads()
    summary = run_dno(config, show_progress=not args.no_progress)
    last = summary["per_iteration"][-1]
    print(json.dumps({"run": str(config.run_dir()), "iterations_done": summary["iterations_done"],
                      "best_iterate": summary["best_iterate"],
                      "win_rate_vs_teacher": last.get("win_rate_vs_teacher")}, indent=2))
    return 0


def _reevaluate(args) -> int:
    from .lm.errors import DNOError

    try:
        from .lm.reevaluate import reevaluate_run

        summary = reevaluate_run(args.run, args.name, _parse_sets(args.set), show_progress=not args.no_progress)
    except DNOError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from pathlib import Path

    print(json.dumps({"run": str(Path(args.run).parent / args.name), "iterations_done": summary["iterations_done"],
                      "best_iterate": summary["best_iterate"]}, indent=2))
    return 0


def _toy_policy(args) -> int:
    from pathlib import Path

    from .lm.toy import SFTConfig, ToyWorld, build_initial_policy
    from .utils import set_cpu_threads

    set_cpu_threads()
    world = ToyWorld(sft=SFTConfig(steps=args.sft_steps, examples=args.sft_steps * 64))
    path = build_initial_policy(world, Path(args.out), seed=args.seed, show_progress=not args.no_progress)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["notebooks"]:
        from .notebooks import main as notebooks_main

        return notebooks_main(argv[1:])
    parser = argparse.ArgumentParser(prog="dnolab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dno = sub.add_parser("dno", help="run or resume a DNO run from a YAML config")
    dno.add_argument("--config", required=True,
                     help="YAML config, e.g. configs/toy.yaml, or a shipped config's name, e.g. toy")
    dno.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set iterations=2 --set training.beta=0.5")
    dno.add_argument("--method", help="a peer method or ablation of dnolab.lm.methods, e.g. spin, sppo")
    dno.add_argument("--no-progress", action="store_true", help="no progress bars")
    again = sub.add_parser("reevaluate", help="evaluate a finished run's iterates again, without training")
    again.add_argument("run", help="the folder of a DNO run, e.g. runs/smollm2_ifeval")
    again.add_argument("--name", required=True, help="the new run's folder name, next to the source")
    again.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="eval.samples_per_prompt or eval.heldout_judges, e.g. --set eval.samples_per_prompt=3")
    again.add_argument("--no-progress", action="store_true", help="no progress bars")
    toy = sub.add_parser("toy-policy", help="train the toy world's SFT starting policy")
    toy.add_argument("--out", required=True)
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--sft-steps", type=int, default=1000)
    toy.add_argument("--no-progress", action="store_true")
    sub.add_parser("notebooks", help="execute the notebooks with papermill (see --help there)")
    args = parser.parse_args(argv)
    return {"dno": _dno, "reevaluate": _reevaluate, "toy-policy": _toy_policy}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
