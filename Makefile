# BookRecs: `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Metaflow rejects the user root and CI has no USER; implicit wants one BLAS thread.
export METAFLOW_USER ?= $(or $(filter-out root,$(USER)),bookrecs)
export USERNAME ?= $(METAFLOW_USER)
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export BENTOML_DO_NOT_TRACK ?= true
export BENTOML_HOME ?= $(CURDIR)/bentoml_home
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

DATASET ?= demo
PORT ?= 3000
RUN ?=
DATA_DIR ?=
TRAIN_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List every target
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create the virtualenv and install pinned dependencies

.PHONY: data
data: $(STAMP) ## Download the official Goodreads YA files into data/raw/
	$(BIN)/python -m bookrecs.data.download --dest data/raw

.PHONY: train
train: $(STAMP) ## Run the training flow (default: demo data) and print the metrics table
	$(BIN)/python flows/train.py --no-pylint run --dataset $(DATASET) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(TRAIN_ARGS)

.PHONY: test
test: $(STAMP) ## Run the test suite
	$(BIN)/python -m pytest -q

.PHONY: test-fast
test-fast: $(STAMP) ## Run the tests without the slow end-to-end ones
	$(BIN)/python -m pytest -q -m "not slow"

.PHONY: lint
lint: $(STAMP) ## Check lint and formatting with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: bench
bench: bench-pipeline bench-serving ## Run every benchmark; results go to docs/benchmarks*.md

.PHONY: bench-pipeline
bench-pipeline: $(STAMP) ## Time and peak memory of each training phase on full-size synthetic data
	$(BIN)/python -m bookrecs.bench --out docs/benchmarks.md

.PHONY: promote
promote: $(STAMP) ## Serve the model of training run RUN=<run id> (previous version kept for rollback)
	@test -n "$(RUN)" || { echo "error: RUN is missing: make promote RUN=<run id> (see python -m bentos.store list)"; exit 2; }
	$(BIN)/python -m bentos.store promote --run $(RUN)

.PHONY: rollback
rollback: $(STAMP) ## Serve the previous model version again
	$(BIN)/python -m bentos.store rollback

.PHONY: models
models: $(STAMP) ## List model versions in the store and show which one serves
	$(BIN)/python -m bentos.store list
	$(BIN)/python -m bentos.store show

.PHONY: serve
serve: $(STAMP) ## Serve the promoted model with bentoml serve on 127.0.0.1 (PORT=3000)
	$(BIN)/bentoml serve bentos.service:BookRecs --host 127.0.0.1 --port $(PORT)

.PHONY: bento
bento: $(STAMP) ## Build the bento (then: bentoml containerize bookrecs:latest)
	$(BIN)/bentoml build -f bentos/bentofile.yaml .

.PHONY: bench-serving
bench-serving: $(STAMP) ## Load-test the service at 100, 300 and 500 requests/s on 127.0.0.1
	$(BIN)/python -m bentos.bench --out docs/benchmarks-serving.md

.PHONY: pilot-plan
pilot-plan: $(STAMP) ## Print the pilot's sample size, duration and MDE tables; write the power curve
	$(BIN)/python -m pilot plan --plan pilot/plan.yaml --png reports/pilot/power_curve.png

.PHONY: drift-report
drift-report: $(STAMP) ## Drift report: recent interactions vs the training period (exit 3 = retrain)
	$(BIN)/python -m monitoring report --dataset $(DATASET) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(IMPRESSIONS),--impressions $(IMPRESSIONS)) $(DRIFT_ARGS)

.PHONY: test-infra
test-infra: $(STAMP) ## Validate the container, compose, Metaflow and Kubernetes files
	$(BIN)/python -m pytest -q tests/infra

.PHONY: image-train
image-train: ## Build the training image (needs a Docker engine)
	docker build -f infra/Dockerfile.train --build-arg BOOKRECS_COMMIT=$$(git rev-parse HEAD) -t bookrecs-train:0.1.0 .

.PHONY: staging-up
staging-up: ## Start the staging stack (needs a Docker engine; see infra/README.md)
	docker compose -f infra/compose.yaml up -d --build --wait

.PHONY: staging-down
staging-down: ## Stop the staging stack
	docker compose -f infra/compose.yaml down

.PHONY: clean
clean: ## Remove run outputs (keeps the virtualenv and downloaded data)
	rm -rf .metaflow reports .pytest_cache .ruff_cache
