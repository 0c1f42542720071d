# logitlab: `make train` and `make test` are the whole set-up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
PORT   ?= 6006
LOGDIR ?= outputs

.DEFAULT_GOAL := help
.PHONY: help install train test test-fast tensorboard bench lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## build .venv (torch, lightning, hydra, ...) and install logitlab in it

train: $(STAMP) ## train the default experiment; overrides via ARGS="model=binary loss=bce"
	$(BIN)/python -m logitlab.train $(ARGS)

test: $(STAMP) ## run the whole test suite (a worker per core)
	$(BIN)/python -m pytest -n auto --dist loadfile $(ARGS)

test-fast: $(STAMP) ## the suite without the slow (training) tests
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not slow" $(ARGS)

tensorboard: $(STAMP) ## serve outputs/ (or LOGDIR=...) on http://localhost:$(PORT)
	$(BIN)/tensorboard --logdir $(LOGDIR) --port $(PORT)

bench: $(STAMP) ## logitlab (defaults, fastpath=true) vs minimal Lightning and bare loops: outputs/bench/latest.json, docs/benchmarks.md
	$(BIN)/python benchmarks/bench.py $(ARGS)

lint: $(STAMP) ## ruff check, format check and mypy (the hooks of .pre-commit-config.yaml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove run folders and caches (keeps .venv; `rm -rf .venv` for a fresh set-up)
	find outputs -mindepth 1 -not -name .gitkeep -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
