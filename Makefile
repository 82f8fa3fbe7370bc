# Every target does its own setup: a fresh machine needs only python3.12 (found on PATH or under pyenv).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers for the test targets (`auto`: one a core); PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= auto
ARGS ?=

.PHONY: help setup run test test-unit test-app test-e2e test-browser lint openapi bench package clean browser
help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# infra/setup_venv.py (standard library only) prints one line a step; pip's own output: .local/setup.log.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: install Python 3.12 (the Lambda runtime)"; exit 1; }
	@$(PYTHON312) -P infra/setup_venv.py --venv $(VENV) --log .local/setup.log --stamp $(STAMP)

setup: $(STAMP)  ## create .venv with python3.12 and install everything (the other targets call it)

run: setup  ## start the whole service locally: embedded AWS (moto), tax sandbox, API, worker (ARGS="--api-port 8001")
	$(PY) -m infra.localstack $(ARGS)

test: setup browser  ## run every test: lint, unit, adapters, app, browser, e2e, template lint
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

browser: setup  ## the browser tier's Chromium + chromedriver (Debian packages; installed when root, else how to)
	@$(PY) -P infra/setup_browser.py

test-unit: setup  ## the fast tier only
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests/unit $(PYTEST_ARGS)

test-app: setup  ## the functional tier: contract, adapters, app (moto server, sandbox, the app in-process)
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests/contract tests/adapters tests/app $(PYTEST_ARGS)

test-e2e: setup  ## the local stack as `make run` starts it, as real processes
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests/e2e $(PYTEST_ARGS)

test-browser: setup browser  ## the customer pages in headless Chromium
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests/browser $(PYTEST_ARGS)

lint: setup  ## ruff + mypy + bandit + pip-audit (docs/operator.md, Security checks)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -q -r chalicelib app.py infra -c pyproject.toml
	$(PY) -m infra.security_audit

openapi: setup  ## regenerate docs/openapi.yaml from the routes and models (a test checks it is current)
	$(PY) -m infra.openapi

bench: setup  ## run the benchmarks and rewrite docs/benchmarks.md
	$(PY) -m bench

.PHONY: load
load: setup  ## bounded open-loop webhook load on the local stack, loopback (RATE=30 SECONDS=40 or ORDERS=; CONNECTIONS=16); rewrites its section of docs/benchmarks.md
	BENCH_LOAD=1 BENCH_LOAD_RATE=$(RATE) BENCH_LOAD_SECONDS=$(SECONDS) BENCH_LOAD_ORDERS=$(ORDERS) BENCH_LOAD_CONNECTIONS=$(CONNECTIONS) $(PY) -m bench --only load

.PHONY: chaos
chaos: ORDERS ?= 300
chaos: SEED ?= 7
chaos: setup  ## the chaos suite: ORDERS orders through a private local stack under faults, kills and freezes, then checked (ORDERS=300 SEED=7; docs/reliability.md)
	$(PY) -m chaos --orders $(ORDERS) --seed $(SEED)

package: setup  ## build the deploy template (build/package) and lint it with cfn-lint
	$(PY) -m infra.package $(if $(STAGE),--stage $(STAGE),)

clean:  ## remove the virtualenv and build output
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .local
