# The commands people type. Each creates .venv when missing (torch's CPU wheel first, so nothing
# pulls a CUDA build), then installs the project in editable mode.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench bench-serve bench-all lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kgfuse demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	$(BIN)/python bench/kg_load.py --json bench/results/kg_load.json

bench-serve: $(STAMP)
	$(BIN)/python bench/serve.py --threads 1 --json bench/results/serve.json

bench-all: bench
	$(BIN)/python bench/linking.py --json bench/results/linking.json
	$(BIN)/python bench/generalization.py --json bench/results/generalization.json
	$(BIN)/python bench/serve.py --threads 1 --json bench/results/serve.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
