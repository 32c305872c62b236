#!/usr/bin/env bash
# The GPU check of notebook 06 (benchmarks/bench_gpu.py) on a machine with no network.
#
#   bash benchmarks/gpu_check.sh download   # here: the wheels the GPU image lacks, into .whl/,
#                                           # and SmolLM2's tokenizer into build/gpu_check/
#   bash benchmarks/gpu_check.sh            # there (carry .whl and build/gpu_check): installs the
#                                           # wheels into /tmp/site, prints versions, runs the check
#
# The wheels are the versions this project tests with (Python 3.12, manylinux x86-64); their own
# dependencies that a CUDA PyTorch image already holds are not carried.
set -o pipefail
cd "$(dirname "$0")/.."
WHEELS="transformers==5.25.0 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5
click==8.5.1 hf_xet==1.8.0 kernels==0.19.1 tomlkit==0.15.3 trl==1.16.0 datasets==5.2.0 dill==0.4.1
multiprocess==0.70.19 pyspellchecker==0.9.1 accelerate==1.16.0 tokenizers==0.23.3 fsspec==2026.9.0"
if [ "${1:-}" = download ]; then
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS && .venv/bin/python benchmarks/bench_gpu.py --prepare
    exit
fi
OUT=${OUT:-build/gpu_check/out}; mkdir -p "$OUT"
rm -rf /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/env.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/env.txt"
import importlib

for name in ["torch", "transformers", "trl", "datasets", "accelerate", "peft", "pyarrow", "numpy",
             "huggingface_hub", "tokenizers", "spellchecker", "dnolab"]:
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as err:  # a missing wheel shows here, before the check starts
        print(name, "FAILED:", type(err).__name__, err)
PY
timeout "${BENCH_TIMEOUT:-450}" python3 benchmarks/bench_gpu.py --out "$OUT/gpu.md" 2>&1 | tee "$OUT/bench.log"
