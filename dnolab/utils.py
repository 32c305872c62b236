"""Plumbing every notebook imports: seeding, device choice, Colab detection, CPU threads.

Introduced in notebooks/01_bradley_terry_limits.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np

# Measured on the 2-vCPU build machine (benchmarks/results/cpu_threads.md): one training step
# of a 132k-parameter Llama takes ~17 ms with one torch thread whether or not the other core is
# busy; with two threads it takes 12-19 ms on an idle machine but 25-38 ms when another process
# holds a core (OpenMP workers spin-wait on each other; earlier measurements saw 20-50x on
# bigger batches). One thread is the robust choice for the small models of this series; set
# DNOLAB_NUM_THREADS to override on bigger CPUs.
DEFAULT_CPU_THREADS = 1


def in_colab() -> bool:
    """True inside a Google Colab runtime (where notebooks install dnolab themselves)."""
    return "google.colab" in sys.modules


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch (if imported) and return a fresh NumPy generator.

    Notebooks pass the returned generator around instead of using global NumPy state, so a
    cell re-run gives the same numbers as a top-to-bottom run.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - for third-party code that uses the global state
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_cpu_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count for CPU work and return it.

    ``n=None`` reads ``DNOLAB_NUM_THREADS`` and falls back to ``DEFAULT_CPU_THREADS``.
    Call it once, before the first torch op, on every CPU run; GPU runs are unaffected.
    """
    if n is None:
        env = os.environ.get("DNOLAB_NUM_THREADS", "").strip()
        if env:
            try:
                n = int(env)
            except ValueError:
                raise ValueError(
                    f"DNOLAB_NUM_THREADS must be a positive integer, got {env!r}"
                ) from None
        else:
            n = DEFAULT_CPU_THREADS
    if n < 1:
        raise ValueError(f"number of CPU threads must be >= 1, got {n}")
    import torch

    torch.set_num_threads(n)
    return n


# A model of this many parameters or more does enough work per op for a second thread to pay:
# measured on the 2-vCPU build machine, SmolLM2-135M trains 1.4-1.8x faster on 2 threads than
# on one (benchmarks/results/real_model.md), while the 132k-parameter toy model is slower.
MANY_THREADS_FROM_PARAMETERS = 20_000_000


def threads_for_model(model) -> int:
    """Torch threads for a model on the CPU: ``DNOLAB_NUM_THREADS`` if set, else one thread for
    small models and every core for models of ``MANY_THREADS_FROM_PARAMETERS`` or more."""
    if os.environ.get("DNOLAB_NUM_THREADS", "").strip():
        return set_cpu_threads()
    n_params = sum(p.numel() for p in model.parameters())
    return set_cpu_threads(os.cpu_count() or 1 if n_params >= MANY_THREADS_FROM_PARAMETERS else DEFAULT_CPU_THREADS)


def get_device(prefer: str | None = None, verbose: bool = True):
    """Pick cuda → mps → cpu (or ``prefer``) and say which; on a CPU-only Colab, say how to get a GPU.

    On CPU it also applies :func:`set_cpu_threads`, because the default thread count is the
    single largest slowdown on small machines.
    """
    import torch

    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                "device 'cuda' was requested but no CUDA GPU is visible; "
                "attach a GPU or pass prefer=None to fall back to the CPU"
            )
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")

    if device.type == "cpu":
        threads = set_cpu_threads()
        if verbose:
            print(f"device: cpu ({threads} torch thread{'s' if threads > 1 else ''})")
            if in_colab():
                print(
                    "No GPU attached. For the GPU settings of notebooks 04-05 use "
                    "Runtime → Change runtime type → T4 GPU, then run all cells again."
                )
    elif verbose:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        print(f"device: {device.type} ({name})")
    return device


def to_plain(value, other=None):
    """Nested dicts, lists, tuples and NumPy values as plain Python data, NaN/inf as ``None``
    (what JSON and YAML files can hold); ``other`` maps any remaining object (default: kept)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v, other) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, other) for v in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist(), other)
    if isinstance(value, np.generic):
        return to_plain(value.item(), other)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if other is None or value is None or isinstance(value, (str, bool, int, float)):
        return value
    return other(value)


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as JSON atomically (temporary file + rename): the package's one writer.

    NumPy values become plain numbers and NaN/inf become ``null``, so every file is valid JSON
    (Python's ``json`` would otherwise write the non-standard ``NaN``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_plain(data), indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def save_metrics(metrics: dict, path: str | os.PathLike) -> Path:
    """Write a notebook's key numbers as JSON (see :func:`write_json`).

    The checks cell of every notebook calls this, so ``make run`` leaves one file per notebook
    in ``build/metrics/`` that READMEs and reports can quote.
    """
    return write_json(path, metrics)
