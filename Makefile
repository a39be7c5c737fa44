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

.PHONY: app test bench setup setup-dev demo browser clean

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

app: demo
	@echo "STCA Studio: open http://$(ADDRESS):$(PORT) in your browser (Ctrl+C stops it)"
	$(BIN)/streamlit run app/Home.py --server.headless true --server.port $(PORT) --server.address $(ADDRESS) \
	  --browser.gatherUsageStats false

test: $(VENV)/.installed-dev browser demo
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-dev demo
	$(BIN)/python benchmarks/engine_vs_peers.py
	$(BIN)/python benchmarks/encoder.py
	$(BIN)/python benchmarks/app.py

clean:
	rm -rf $(VENV) .pytest_cache
