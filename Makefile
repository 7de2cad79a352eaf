# citybase — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JS_STAMP := tests/js/node_modules/.installed
PYTEST_ARGS ?=

.PHONY: help install run test unit integration fuzz lint format typecheck arch messages bench soak scale up-infra clean-test-topics down-infra infra-status tools deploy-check clean

help: ## List the targets
	@# bold names only on a terminal: a pipe or a file gets plain text
	@if [ -t 1 ]; then bold='\033[1m'; plain='\033[0m'; else bold=''; plain=''; fi; \
	awk -v bold="$$bold" -v plain="$$plain" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / \
	{printf "  %s%-14s%s %s\n", bold, $$1, plain, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# setuptools warns on every editable install that a folder named like the package may shadow
	@# it; here that folder is the package itself, so the screen of asterisks says nothing.
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	@touch $(JS_STAMP)

install: $(STAMP) ## Create the virtualenv and install citybase with its dev extra

run: $(STAMP) ## Serve the whole platform on embedded defaults (SQLite + embedded bus) at 127.0.0.1:8000
	$(BIN)/citybase up

test: $(STAMP) $(JS_STAMP) up-infra tools ## Everything: lint, types, architecture rule, and all tests on real Kafka and PostgreSQL
	$(MAKE) --no-print-directory lint typecheck arch
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(STAMP) $(JS_STAMP) ## Unit tests only (no Kafka or PostgreSQL needed)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP) up-infra ## Integration tests on real Kafka and PostgreSQL
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

FUZZ_EXAMPLES ?= 300
FUZZ_SECONDS ?= 900
fuzz: $(STAMP) up-infra ## Fuzz every service's OpenAPI at length, in process on 127.0.0.1 (FUZZ_EXAMPLES per operation and way, FUZZ_SECONDS per service)
	CITYBASE_FUZZ=1 CITYBASE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CITYBASE_FUZZ_SECONDS=$(FUZZ_SECONDS) \
		$(BIN)/python -m pytest tests/hostile/test_openapi_fuzzing.py -s -p no:cacheprovider -o timeout=0 $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check services citybase tests
	$(BIN)/ruff format --check services citybase tests

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix services citybase tests
	$(BIN)/ruff format services citybase tests

messages: $(STAMP) ## Extract the user-facing strings and update the Chinese catalog (then translate the new entries)
	$(BIN)/pybabel extract -F babel.cfg -k N_ --sort-by-file --no-location --project citybase --omit-header -o services/locale/citybase.pot .
	$(BIN)/pybabel update -i services/locale/citybase.pot -d services/locale -D citybase -l zh_CN --no-fuzzy-matching --ignore-obsolete

typecheck: $(STAMP) ## mypy on services/ and citybase/
	$(BIN)/mypy

arch: $(STAMP) ## The architecture rule: services never import each other (import-linter)
	$(BIN)/lint-imports

bench: $(STAMP) up-infra ## Benchmarks, each figure as a ratio to a baseline measured in the same run
	$(BIN)/python -m tests.bench

soak: $(STAMP) up-infra ## ingest -> feeds -> quality as processes at half the maximum rate (CITYBASE_SOAK_DURATION_S, 300); fails on memory growth or errors
	$(BIN)/python -m tests.soak

scale: $(STAMP) up-infra ## 1 then 2 replicas of ingest, feeds and quality as processes: nothing lost or doubled; throughput and CPU per record, raw and CPU-normalised (CITYBASE_SCALE_RECORDS, 100000)
	$(BIN)/python -m tests.scale

up-infra: ## Start Kafka (KRaft) and PostgreSQL on 127.0.0.1 (installs them if missing; idempotent)
	bash deploy/local/up.sh

clean-test-topics: $(STAMP) ## Delete the topics killed test runs left on the local Kafka (random hex suffix); a finished run deletes its own
	$(BIN)/python -m tests.support.kafka_topics

down-infra: ## Stop Kafka and PostgreSQL
	bash deploy/local/down.sh

tools: ## Install the tools the deploy/ and console tests use: promtool (no daemon), kustomize, chromium and chromedriver (idempotent)
	bash deploy/local/tools.sh up

deploy-check: $(STAMP) tools ## Check deploy/: metrics lint, Prometheus config and rules, dashboards, compose and k8s manifests
	$(BIN)/python -m pytest tests/unit/deploy $(PYTEST_ARGS)

infra-status: ## Show whether Kafka and PostgreSQL run
	bash deploy/local/kafka.sh status; bash deploy/local/postgres.sh status

clean: ## Remove the virtualenv and the local data of `make run`
	rm -rf $(VENV) .citybase .pytest_cache .mypy_cache .ruff_cache
