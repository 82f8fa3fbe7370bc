# Every target does its own setup: a fresh machine needs only python3.12 (found on PATH or under pyenv).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
ARGS ?=

.PHONY: help setup run test test-unit lint bench package clean browser
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# infra/setup_venv.py (standard library only) prints one line a step; pip's own output: .local/setup.log.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: install Python 3.12 (the Lambda runtime)"; exit 1; }
	@$(PYTHON312) -P infra/setup_venv.py --venv $(VENV) --log .local/setup.log --stamp $(STAMP)

setup: $(STAMP)  ## create .venv with python3.12 and install everything (the other targets call it)

run: setup  ## start the whole service locally: embedded AWS (moto), tax sandbox, API, worker (ARGS="--api-port 8001")
	$(PY) -m infra.localstack $(ARGS)

test: setup  ## run every test: lint, unit, adapters, app, e2e, template lint
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup  ## the fast tier only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: setup  ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup  ## run the benchmarks and rewrite docs/benchmarks.md
	$(PY) -m bench

package: setup  ## build the deploy template (build/package) and lint it with cfn-lint
	$(PY) -m infra.package $(if $(STAGE),--stage $(STAGE),)

clean:  ## remove the virtualenv and build output
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .local
